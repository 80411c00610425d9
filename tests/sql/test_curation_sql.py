"""sql/curated_pairs.sql and sql/training_set.sql on small in-memory tables: exactly the expected rows kept."""
import hashlib

import pytest

from humpback.decontamination import build_index, eval_overlap, register_eval_overlap
from humpback.prompts import SEED_TAG, WEB_TAG
from humpback.sqlfiles import load_sql, run_sql
from humpback.tables import table_frame

EVAL_PROMPTS = ["Please describe the history of the old stone bridge in our village for a school project.",
                "Write a haiku about tea."]
BRIDGE = "Describe the history of the old stone bridge in our village"
# segment_id -> (instruction, drop_reason, candidate status, flags,
#                [(iteration, scorer, mode, score, parse_status, score_source)])
CASES = {
    "s01-kept": ("How do I repot a cactus without getting hurt?", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s02-low-score": ("What is a mortgage?", None, "ok", [], [(1, "m0", "generate", 4.0, "ok", "parsed")]),
    "s03-average-4.5": ("How do tides work?", None, "ok", [], [(1, "m0", "generate", 4.5, "ok", "parsed")]),
    "s04-average-4.33": ("Why do cats purr?", None, "ok", [], [(1, "m0", "generate", 13 / 3, "ok", "parsed")]),
    "s05-flagged": ("Tell me about owls.", None, "ok", ["prompt_echo"], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s06-errored": ("List three rivers.", None, "error", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s07-dropped-segment": ("How is glass made?", "too_short", "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s08-duplicate-first": ("Explain how a compass works.", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s09-duplicate-tie": ("  explain HOW a  compass works. ", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s10-duplicate-lower": ("What is a sourdough starter?", None, "ok", [], [(1, "m0", "logprob", 4.6, "ok", "logprob")]),
    "s11-duplicate-higher": ("what is a sourdough starter?", None, "ok", [], [(1, "m0", "logprob", 4.9, "ok", "logprob")]),
    "s12-eval-copy": (BRIDGE + ".", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s13-overlap-0.57": (BRIDGE + " and its builders", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s14-overlap-0.5": (BRIDGE + " and its first builders", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s15-overlap-0.44": (BRIDGE + " and its many old builders", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s16-short-eval-copy": ("Now write a HAIKU about tea for me", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "parsed")]),
    "s17-unparsed": ("How do I tie a bowline?", None, "ok", [], [(1, "m0", "generate", 5.0, "invalid", "parsed")]),
    "s18-logprob-kept": ("How do solar panels work?", None, "ok", [], [(1, "m0", "logprob", 4.8, "n/a", "logprob")]),
    "s19-other-iteration": ("What is jazz?", None, "ok", [], [(2, "m1", "generate", 5.0, "ok", "parsed")]),
    "s20-other-scorer": ("How are maps drawn?", None, "ok", [], [(1, "m1", "generate", 5.0, "ok", "parsed")]),
    "s21-constrained": ("How do I brew green tea?", None, "ok", [], [(1, "m0", "generate", 5.0, "ok", "constrained")]),
    "s22-output-has-eval-prompt": ("What makes a good school project?", None, "ok", [],
                                   [(1, "m0", "generate", 5.0, "ok", "parsed")]),
}
# Segment texts other than "text of <segment_id>": this one pastes an evaluation prompt into the output.
TEXTS = {"s22-output-has-eval-prompt": "Ideas. " + EVAL_PROMPTS[0] + " Start early and ask for help."}
OTHER_BACKWARD = ("s23-other-backward-model", "How do bees make honey?")
KEPT = {"s01-kept", "s03-average-4.5", "s08-duplicate-first", "s15-overlap-0.44"}  # m0, generate, myx
SEED = [("seed-1", "What is a list?", "A list is an ordered collection.", "train"),
        ("seed-2", "What is a dict?", "A dict maps keys to values.", "train"),
        ("seed-3", "What is a set?", "A set holds unique items.", "dev"),
        ("seed-4", "Write a haiku about tea.", "Steam curls from the cup.", "train")]
VIEWS = ("segments", "candidates", "ratings", "seed", "curated_pairs")


def instruction_hash(instruction: str) -> str:
    return hashlib.sha256(instruction.encode()).hexdigest()


def params(**overrides):
    values = {"iteration": 1, "min_score": 4.5, "scorer_model": "m0", "mode": "generate", "backward_model": "myx",
              "include_constrained": False, "max_eval_overlap": 0.5}
    return {**values, **overrides}


def candidate(segment_id, instruction, status="ok", flags=(), backward_model="myx", prompt_version="v1"):
    return {"segment_id": segment_id, "instruction": instruction, "instruction_hash": instruction_hash(instruction),
            "backward_model": backward_model, "prompt_version": prompt_version, "sampling": "{}", "status": status,
            "flags": list(flags)}


def rating(segment_id, instruction, iteration, scorer, mode, score, parse_status, source):
    return {"segment_id": segment_id, "instruction_hash": instruction_hash(instruction), "iteration": iteration,
            "scorer_model": scorer, "mode": mode, "score": score, "parse_status": parse_status,
            "score_source": source}


@pytest.fixture(scope="module")
def tables(spark):
    """The four input tables as temporary views (dropped afterwards: they would shadow tables) and the
    eval_overlap function for EVAL_PROMPTS."""
    segments, candidates, ratings = [], [], []
    for segment_id, (instruction, drop_reason, status, flags, scores) in CASES.items():
        segments.append({"segment_id": segment_id, "text": TEXTS.get(segment_id, f"text of {segment_id}"),
                         "drop_reason": drop_reason})
        candidates.append(candidate(segment_id, instruction, status=status, flags=flags))
        for iteration, scorer, mode, score, parse_status, source in scores:
            ratings.append(rating(segment_id, instruction, iteration, scorer, mode, score, parse_status, source))
    # A wrong instruction's rating, and the kept pair written again by a second backward prompt version.
    ratings.append(rating("s02-low-score", "another instruction", 1, "m0", "generate", 5.0, "ok", "parsed"))
    candidates.append(candidate("s01-kept", CASES["s01-kept"][0], prompt_version="v2"))
    # A pair whose instruction another backward model wrote.
    segment_id, instruction = OTHER_BACKWARD
    segments.append({"segment_id": segment_id, "text": f"text of {segment_id}"})
    candidates.append(candidate(segment_id, instruction, backward_model="myx-2"))
    ratings.append(rating(segment_id, instruction, 1, "m0", "generate", 5.0, "ok", "parsed"))
    # Shaped by the table registry: every column the stages write, not just those the SQL reads.
    table_frame(spark, "segments", segments).createOrReplaceTempView("segments")
    table_frame(spark, "candidates", candidates).createOrReplaceTempView("candidates")
    table_frame(spark, "ratings", ratings).createOrReplaceTempView("ratings")
    table_frame(spark, "seed", [dict(zip(("example_id", "instruction", "output", "split"), row)) for row in SEED]) \
        .createOrReplaceTempView("seed")
    register_eval_overlap(spark, build_index(EVAL_PROMPTS, 8))
    yield spark
    for view in VIEWS:
        spark.catalog.dropTempView(view)


def curated(spark, **overrides) -> dict:
    rows = run_sql(spark, load_sql("curated_pairs"), params(**overrides)).collect()
    return {row.segment_id: row for row in rows}


def test_curated_pairs_keep_exactly_the_expected_rows(tables):
    assert set(curated(tables)) == KEPT


def test_curated_pairs_carry_segment_text_and_scores(tables):
    rows = curated(tables)
    assert rows["s03-average-4.5"].score == pytest.approx(4.5) and rows["s03-average-4.5"].n_ratings == 1
    # Two candidate rows with the same instruction still count the one rating once.
    assert rows["s01-kept"].n_ratings == 1
    assert rows["s01-kept"].output == "text of s01-kept"
    assert list(rows["s01-kept"].asDict()) == ["segment_id", "instruction", "output", "score", "n_ratings"]


def test_one_scorer_one_mode_one_backward_model(tables):
    assert set(curated(tables, scorer_model="m1")) == {"s20-other-scorer"}
    assert set(curated(tables, mode="logprob")) == {"s11-duplicate-higher", "s18-logprob-kept"}
    assert set(curated(tables, iteration=2, scorer_model="m1")) == {"s19-other-iteration"}
    assert set(curated(tables, backward_model="myx-2")) == {OTHER_BACKWARD[0]}
    assert "s02-low-score" in curated(tables, min_score=4.0)


def test_constrained_scores_are_left_out_unless_included(tables):
    assert "s21-constrained" not in curated(tables)
    assert set(curated(tables, include_constrained=True)) == KEPT | {"s21-constrained"}


def test_sql_decontamination_agrees_with_the_python_rule(tables):
    index = build_index(EVAL_PROMPTS, 8)
    overlaps = {sid: eval_overlap(CASES[sid][0], index) for sid in ("s12-eval-copy", "s13-overlap-0.57",
                                                                    "s14-overlap-0.5", "s15-overlap-0.44")}
    assert overlaps == pytest.approx({"s12-eval-copy": 1.0, "s13-overlap-0.57": 4 / 7, "s14-overlap-0.5": 0.5,
                                      "s15-overlap-0.44": 4 / 9})
    kept = curated(tables, max_eval_overlap=0.45)
    assert {sid for sid in overlaps if sid in kept} == {sid for sid, value in overlaps.items() if value < 0.45}
    # A short evaluation prompt inside an instruction, and a long one pasted into an output, both match.
    assert eval_overlap(CASES["s16-short-eval-copy"][0], index) == 1.0
    assert eval_overlap(TEXTS["s22-output-has-eval-prompt"], index) == 1.0
    assert not {"s16-short-eval-copy", "s22-output-has-eval-prompt"} & set(curated(tables))
    # Above 1.0 nothing is excluded as contaminated.
    everything = set(curated(tables, max_eval_overlap=1.01))
    assert {"s12-eval-copy", "s16-short-eval-copy", "s22-output-has-eval-prompt"} <= everything


def training_set_params(**overrides):
    values = {"set_name": "a5", "iteration": 1, "seed_upsample": 1, "seed_tag": SEED_TAG, "web_tag": WEB_TAG,
              "scorer_model": "models:/humpback-forward/1", "rating_mode": "generate", "backward_model": "myx",
              "max_eval_overlap": 0.5}
    return {**values, **overrides}


def test_training_set_tags_sources_upsamples_seed_and_carries_lineage(tables):
    run_sql(tables, load_sql("curated_pairs"), params()).createOrReplaceTempView("curated_pairs")
    sql = load_sql("training_set")
    once = run_sql(tables, sql, training_set_params()).collect()
    twice = run_sql(tables, sql, training_set_params(seed_upsample=2)).collect()
    assert once[0].asDict().keys() == {"set_name", "iteration", "example_key", "instruction", "output", "source",
                                       "tag", "scorer_model", "rating_mode", "backward_model"}
    by_source = {source: [r for r in once if r.source == source] for source in ("seed", "augmented")}
    # The whole seed (both splits) except seed-4, which is an evaluation prompt.
    assert sorted(r.instruction for r in by_source["seed"]) == ["What is a dict?", "What is a list?", "What is a set?"]
    assert len(by_source["augmented"]) == len(KEPT)
    assert {r.tag for r in by_source["seed"]} == {SEED_TAG} and {r.tag for r in by_source["augmented"]} == {WEB_TAG}
    assert {r.set_name for r in once} == {"a5"} and {r.iteration for r in once} == {1}
    assert {(r.scorer_model, r.rating_mode) for r in once} == {("models:/humpback-forward/1", "generate")}
    assert {r.backward_model for r in by_source["augmented"]} == {"myx"}
    assert {r.backward_model for r in by_source["seed"]} == {None}
    # Keys are unique and stable; upsampling adds copies with new keys and keeps the first copies' keys.
    assert len({r.example_key for r in twice}) == len(twice) == len(once) + len(by_source["seed"])
    assert {r.example_key for r in once} < {r.example_key for r in twice}
    expected = hashlib.sha256("\0".join(["seed", SEED[0][1], SEED[0][2]]).encode()).hexdigest()[:32]
    assert expected in {r.example_key for r in once}


def test_a_missing_parameter_is_named(tables):
    with pytest.raises(ValueError, match="missing: min_score"):
        run_sql(tables, load_sql("curated_pairs"), {k: v for k, v in params().items() if k != "min_score"})
