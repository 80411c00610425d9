"""sql/curated_pairs.sql and sql/training_set.sql on small in-memory tables: exactly the expected rows kept."""
import hashlib

import pytest

from humpback.decontamination import ngram_index, overlap
from humpback.prompts import SEED_TAG, WEB_TAG
from humpback.sqlfiles import load_sql, run_sql

EVAL_PROMPTS = ["Please describe the history of the old stone bridge in our village for a school project.",
                "Write a haiku about tea."]
BRIDGE = "Describe the history of the old stone bridge in our village"
# segment_id -> (instruction, drop_reason, candidate status, flags, [(iteration, scorer, mode, score, parse_status)])
CASES = {
    "s01-kept": ("How do I repot a cactus without getting hurt?", None, "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s02-low-score": ("What is a mortgage?", None, "ok", [], [(1, "m0", "generate", 4.0, "ok")]),
    "s03-average-4.5": ("How do tides work?", None, "ok", [], [(1, "m0", "generate", 5.0, "ok"),
                                                                  (1, "m0", "generate", 4.0, "ok")]),
    "s04-average-4.33": ("Why do cats purr?", None, "ok", [], [(1, "m0", "generate", 5.0, "ok"),
                                                               (1, "m0", "generate", 4.0, "ok"),
                                                               (1, "m0", "generate", 4.0, "ok")]),
    "s05-flagged": ("Tell me about owls.", None, "ok", ["prompt_echo"], [(1, "m0", "generate", 5.0, "ok")]),
    "s06-errored": ("List three rivers.", None, "error", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s07-dropped-segment": ("How is glass made?", "too_short", "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s08-duplicate-first": ("Explain how a compass works.", None, "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s09-duplicate-tie": ("  explain HOW a  compass works. ", None, "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s10-duplicate-lower": ("What is a sourdough starter?", None, "ok", [], [(1, "m0", "logprob", 4.6, "ok")]),
    "s11-duplicate-higher": ("what is a sourdough starter?", None, "ok", [], [(1, "m0", "logprob", 4.9, "ok")]),
    "s12-eval-copy": (BRIDGE + ".", None, "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s13-overlap-0.57": (BRIDGE + " and its builders", None, "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s14-overlap-0.5": (BRIDGE + " and its first builders", None, "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s15-overlap-0.44": (BRIDGE + " and its many old builders", None, "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s16-short-eval-copy": ("write a HAIKU about tea", None, "ok", [], [(1, "m0", "generate", 5.0, "ok")]),
    "s17-unparsed": ("How do I tie a bowline?", None, "ok", [], [(1, "m0", "generate", 5.0, "invalid")]),
    "s18-logprob-kept": ("How do solar panels work?", None, "ok", [], [(1, "m0", "logprob", 4.8, "n/a")]),
    "s19-other-iteration": ("What is jazz?", None, "ok", [], [(2, "m1", "generate", 5.0, "ok")]),
    "s20-other-scorer": ("How are maps drawn?", None, "ok", [], [(1, "m1", "generate", 5.0, "ok")]),
}
KEPT = {"s01-kept", "s03-average-4.5", "s08-duplicate-first", "s11-duplicate-higher", "s15-overlap-0.44",
        "s18-logprob-kept", "s20-other-scorer"}
SEED = [("seed-1", "What is a list?", "A list is an ordered collection.", "train"),
        ("seed-2", "What is a dict?", "A dict maps keys to values.", "train"),
        ("seed-3", "What is a set?", "A set holds unique items.", "dev")]
VIEWS = ("segments", "candidates", "ratings", "seed", "eval_ngrams", "curated_pairs")


def instruction_hash(instruction: str) -> str:
    return hashlib.sha256(instruction.encode()).hexdigest()


def params(**overrides):
    values = {"iteration": 1, "min_score": 4.5, "scorer_model": None, "mode": None, "ngram": 8,
              "max_eval_overlap": 0.5}
    return {**values, **overrides}


@pytest.fixture(scope="module")
def tables(spark):
    """The four input tables and eval_ngrams as temporary views (dropped afterwards: they would shadow tables)."""
    segments, candidates, ratings = [], [], []
    for segment_id, (instruction, drop_reason, status, flags, scores) in CASES.items():
        segments.append((segment_id, f"text of {segment_id}", drop_reason))
        candidates.append((segment_id, instruction, "myx", "v1", "{}", status, None, flags))
        for iteration, scorer, mode, score, parse_status in scores:
            ratings.append((segment_id, instruction_hash(instruction), iteration, scorer, mode, score, parse_status))
    # A wrong instruction's rating, and the kept pair written again by a second backward prompt version.
    ratings.append(("s02-low-score", instruction_hash("another instruction"), 1, "m0", "generate", 5.0, "ok"))
    candidates.append(("s01-kept", CASES["s01-kept"][0], "myx", "v2", "{}", "ok", None, []))
    spark.createDataFrame(segments, "segment_id string, text string, drop_reason string") \
        .createOrReplaceTempView("segments")
    spark.createDataFrame(candidates, "segment_id string, instruction string, backward_model string, "
                                      "prompt_version string, sampling string, status string, error string, "
                                      "flags array<string>").createOrReplaceTempView("candidates")
    spark.createDataFrame(ratings, "segment_id string, instruction_hash string, iteration int, scorer_model string, "
                                   "mode string, score double, parse_status string").createOrReplaceTempView("ratings")
    spark.createDataFrame(SEED, "example_id string, instruction string, output string, split string") \
        .createOrReplaceTempView("seed")
    spark.createDataFrame([(g,) for g in ngram_index(EVAL_PROMPTS, 8)], "ngram string") \
        .createOrReplaceTempView("eval_ngrams")
    yield spark
    for view in VIEWS:
        spark.catalog.dropTempView(view)


def curated(spark, **overrides) -> dict:
    rows = run_sql(spark, load_sql("curated_pairs"), params(**overrides)).collect()
    return {row.segment_id: row for row in rows}


def test_curated_pairs_keep_exactly_the_expected_rows(tables):
    assert set(curated(tables)) == KEPT


def test_curated_pairs_carry_segment_text_and_averaged_scores(tables):
    rows = curated(tables)
    assert rows["s03-average-4.5"].score == pytest.approx(4.5) and rows["s03-average-4.5"].n_ratings == 2
    # Two candidate rows with the same instruction still count the one rating once.
    assert rows["s01-kept"].n_ratings == 1
    assert rows["s01-kept"].output == "text of s01-kept"
    assert list(rows["s01-kept"].asDict()) == ["segment_id", "instruction", "output", "score", "n_ratings"]


def test_scorer_mode_and_threshold_parameters_filter(tables):
    assert "s20-other-scorer" not in curated(tables, scorer_model="m0")
    assert set(curated(tables, mode="logprob")) == {"s11-duplicate-higher", "s18-logprob-kept"}
    assert "s19-other-iteration" in curated(tables, iteration=2)
    assert "s02-low-score" in curated(tables, min_score=4.0)


def test_sql_decontamination_agrees_with_the_python_rule(tables):
    index = ngram_index(EVAL_PROMPTS, 8)
    overlaps = {sid: overlap(CASES[sid][0], index, 8) for sid in ("s12-eval-copy", "s13-overlap-0.57",
                                                                  "s14-overlap-0.5", "s15-overlap-0.44")}
    assert overlaps == pytest.approx({"s12-eval-copy": 1.0, "s13-overlap-0.57": 4 / 7, "s14-overlap-0.5": 0.5,
                                      "s15-overlap-0.44": 4 / 9})
    kept = curated(tables, max_eval_overlap=0.45)
    assert {sid for sid in overlaps if sid in kept} == {sid for sid, value in overlaps.items() if value < 0.45}
    # Above 1.0 nothing is excluded as contaminated.
    assert {"s12-eval-copy", "s16-short-eval-copy"} <= set(curated(tables, max_eval_overlap=1.01))


def test_training_set_tags_sources_and_upsamples_seed(tables):
    run_sql(tables, load_sql("curated_pairs"), params()).createOrReplaceTempView("curated_pairs")
    sql = load_sql("training_set")
    once = run_sql(tables, sql, {"set_name": "a5", "iteration": 1, "seed_upsample": 1}).collect()
    twice = run_sql(tables, sql, {"set_name": "a5", "iteration": 1, "seed_upsample": 2}).collect()
    assert once[0].asDict().keys() == {"set_name", "iteration", "example_key", "instruction", "output", "source",
                                       "tag"}
    by_source = {source: [r for r in once if r.source == source] for source in ("seed", "augmented")}
    assert len(by_source["seed"]) == 2 and len(by_source["augmented"]) == len(KEPT)
    assert {r.tag for r in by_source["seed"]} == {SEED_TAG} and {r.tag for r in by_source["augmented"]} == {WEB_TAG}
    assert {r.set_name for r in once} == {"a5"} and {r.iteration for r in once} == {1}
    # Keys are unique and stable; upsampling adds copies with new keys and keeps the first copies' keys.
    assert len({r.example_key for r in twice}) == len(twice) == len(once) + 2
    assert {r.example_key for r in once} < {r.example_key for r in twice}
    expected = hashlib.sha256("\0".join(["seed", SEED[0][1], SEED[0][2]]).encode()).hexdigest()[:32]
    assert expected in {r.example_key for r in once}


def test_a_missing_parameter_is_named(tables):
    with pytest.raises(ValueError, match="missing: min_score"):
        run_sql(tables, load_sql("curated_pairs"), {k: v for k, v in params().items() if k != "min_score"})
