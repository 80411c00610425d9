"""`humpback rewrite` with the embedded model: which pairs, rows with lineage and flags, reruns, resume after a
failure, one-line errors; then `trainset --output-source rewritten` over what it wrote."""
import hashlib
import json

import mlflow
import pytest

from humpback.stages import rewrite, trainset
from humpback.tables import table_frame

MODEL = "embedded:smollm2-135m-instruct"
SCORER = "models:/humpback-forward/1"
TEXTS = {
    "s1": "To boil an egg, place it in a pot of cold water, bring the water to a boil, then lower the heat and "
          "let it simmer. Nine minutes gives a firm yolk; six minutes leaves it soft.",
    "s2": "A leap year has 366 days instead of 365. It happens every four years, except for years divisible by "
          "100 that are not divisible by 400. So 2000 was a leap year, but 1900 was not.",
    "s3": "Python lists are ordered and mutable. You can append items with append(), remove them with remove() "
          "or pop(), and sort them in place with sort().",
    "s4": "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make "
          "glucose and release oxygen.",
}
INSTRUCTIONS = {"s1": "How long should I boil an egg?", "s2": "What is a leap year?",
                "s3": "How do I change a Python list?", "s4": "What is photosynthesis?"}
PAIRS_OF_ITERATION_1 = {"s1", "s2", "s3"}
FAST = ["--set", "rewrite.max_new_tokens=24", "--set", f"rewrite.model={MODEL}", "--set", "inference.chunk_rows=8",
        "--set", "inference.partitions=1"]


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def write_inputs(spark, lakehouse):
    """Segments and candidates, and training sets: iteration 1's web sets `iter1` and `a5` (s1 in both), a set of
    iteration 1 built from rewrites (its output is no segment text), and iteration 2's set (s4)."""
    def augmented(set_name, iteration, sid, output=None):
        return {"set_name": set_name, "iteration": iteration, "example_key": f"{set_name}-{sid}",
                "instruction": INSTRUCTIONS[sid], "output": output or TEXTS[sid], "source": "augmented",
                "backward_model": "myx"}

    sets = [augmented("iter1", 1, sid) for sid in ("s1", "s2", "s3")] + [augmented("a5", 1, "s1"),
            augmented("iter1-rw", 1, "s1", output="Boil it for six to nine minutes."), augmented("iter2", 2, "s4"),
            {"set_name": "iter1", "iteration": 1, "example_key": "seed-1", "instruction": "What is a set?",
             "output": "Unique items.", "source": "seed"}]
    frames = {
        "segments": table_frame(spark, "segments", [{"segment_id": sid, "text": text} for sid, text in TEXTS.items()]),
        "candidates": table_frame(spark, "candidates", [
            {"segment_id": sid, "instruction": INSTRUCTIONS[sid], "instruction_hash": digest(INSTRUCTIONS[sid]),
             "backward_model": "myx", "prompt_version": "v1", "status": "ok", "flags": []} for sid in TEXTS]),
        "training_sets": table_frame(spark, "training_sets", sets),
    }
    for table, frame in frames.items():
        lakehouse.write(frame, table)
    return lakehouse


def stage_args(lakehouse, uri):
    return ["--lakehouse", lakehouse.root, "--mlflow-uri", uri, *FAST]


@pytest.fixture(scope="module")
def rewritten(spark, tmp_path_factory):
    """One lakehouse whose iteration 1 was rewritten once (the rewriter: rewrite.model, as no M1 is registered)."""
    from humpback.lakehouse import Lakehouse
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("rewrite")
    lakehouse = write_inputs(spark, Lakehouse(spark, str(root / "lakehouse")))
    uri = configure_mlflow(f"sqlite:///{root / 'mlflow.db'}")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = rewrite.STAGE.main(["--iteration", "1", *stage_args(lakehouse, uri)])
    return lakehouse, uri, root, code, out.getvalue()


def test_rewrite_writes_one_row_per_curated_pair_with_lineage_seeds_and_flags(rewritten):
    from humpback.ids import pair_key
    from humpback.inference.seeding import row_seed
    from humpback.prompts import REWRITE_TEMPLATE_VERSION
    from humpback.quality.rewrite_flags import rewrite_flags, rewrite_measures
    from humpback.tables import TABLES, schema_differences

    lakehouse, _, _, code, out = rewritten
    assert code == 0
    table = lakehouse.read("rewrites")
    assert schema_differences(TABLES["rewrites"], table.schema) == []
    rows = {row.segment_id: row for row in table.collect()}
    # iteration 1's web pairs, once each: not iteration 2's, not the seed, not a set built from rewrites
    assert set(rows) == PAIRS_OF_ITERATION_1
    for sid, row in rows.items():
        assert row.status == "ok" and row.error is None and row.output
        assert row.instruction == INSTRUCTIONS[sid] and row.instruction_hash == digest(INSTRUCTIONS[sid])
        assert row.model_uri == MODEL and row.rewriter_model.startswith(MODEL + "#")
        assert row.prompt_version == REWRITE_TEMPLATE_VERSION
        assert row.seed == row_seed(0, pair_key(sid, row.instruction_hash))  # each pair's own seed
        assert json.loads(row.sampling) == {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 24, "n": 1,
                                            "run_seed": 0, "seed": row.seed}
        assert row.finish_reason in ("stop", "length") and row.completion_tokens > 0
        assert row.flags == rewrite_flags(row.output, TEXTS[sid], 0.3, 0.8, truncated=row.finish_reason == "length")
        measures = rewrite_measures(row.output, TEXTS[sid])
        assert (row.content_overlap, row.copied_share) == pytest.approx(
            (measures["content_overlap"], measures["copied_share"]))
    assert len({row.seed for row in rows.values()}) == 3
    assert "M1 (models:/humpback-forward@m1) is not registered" in out  # the default rewriter's fallback
    assert "3/3 rows (100%)" in out and "rewrites by status" in out


def test_trainset_builds_a_set_from_the_rewrites_and_counts_the_pairs_left_out(rewritten, capsys):
    from delta.tables import DeltaTable

    lakehouse, uri, root, _, _ = rewritten
    spark = lakehouse.spark
    ratings = [{"segment_id": sid, "instruction_hash": digest(INSTRUCTIONS[sid]), "iteration": 1,
                "scorer_model": SCORER, "mode": "logprob", "score": 4.0, "parse_status": "ok",
                "backward_model": "myx", "status": "ok"} for sid in TEXTS]
    lakehouse.write(table_frame(spark, "ratings", ratings), "ratings")
    lakehouse.write(table_frame(spark, "seed", [{"example_id": "e1", "instruction": "What is a set?",
                                                 "output": "Unique items.", "split": "train"}]), "seed")
    prompts = root / "eval.jsonl"
    prompts.write_text(json.dumps({"instruction": "Name three prime numbers below ten."}) + "\n")
    common = ["--iteration", "1", "--backward-model", "myx", "--scorer", SCORER, "--mode", "logprob",
              "--eval-prompts", str(prompts), "--set", "trainset.min_score=1", "--lakehouse", lakehouse.root,
              "--mlflow-uri", uri]
    assert trainset.STAGE.main(["--name", "web-set", *common]) == 0
    assert trainset.STAGE.main(["--name", "rw-set", "--output-source", "rewritten", *common]) == 0
    out = capsys.readouterr().out

    sets = lakehouse.read("training_sets").where("source = 'augmented'")
    web = {row.instruction: row.output for row in sets.where("set_name = 'web-set'").collect()}
    assert web == {INSTRUCTIONS[sid]: TEXTS[sid] for sid in TEXTS}  # every rated pair, with its web text
    usable = {row.instruction: row.output for row in lakehouse.read("rewrites").collect() if not row.flags}
    assert {row.instruction: row.output for row in sets.where("set_name = 'rw-set'").collect()} == usable
    left_out = len(TEXTS) - len(usable)  # flagged ones and s4, which was never rewritten

    run = mlflow.search_runs(experiment_names=["humpback"], filter_string="tags.`humpback.trainset` = 'rw-set'").iloc[0]
    assert run["params.trainset.output_source"] == "rewritten" and run["tags.humpback.output_source"] == "rewritten"
    assert run["params.trainset.rewriter_model"].startswith(MODEL + "#")
    assert run["metrics.rewrites.left_out"] == left_out and run["metrics.rewrites.missing"] == 1
    assert run["metrics.rewrites.ok"] == len(usable) and run["metrics.augmented"] == len(usable)
    history = DeltaTable.forPath(spark, lakehouse.path("training_sets")).history(1).first()
    metadata = json.loads(history["userMetadata"])
    assert metadata["set_name"] == "rw-set" and metadata["output_source"] == "rewritten"
    assert metadata["rewrite_counts"]["missing"] == 1 and "rewritten_pairs.sql" in metadata["sql_sha256"]
    assert f"{len(usable)} of {len(TEXTS)} curated pairs have a usable rewrite; {left_out} left out" in out
    web_run = mlflow.search_runs(experiment_names=["humpback"],
                                 filter_string="tags.`humpback.trainset` = 'web-set'").iloc[0]
    assert web_run["params.trainset.output_source"] == "web"

    # The sets just built are iteration 1's too: the web set's pairs (s4 now among them) are rewritten by the next
    # run, the rewritten set's are not (their outputs are no segment texts).
    from humpback.stage import Context

    ctx = Context(rewrite.STAGE.parser().parse_args(["--iteration", "1", *stage_args(lakehouse, uri)]))
    assert {row.segment_id for row in rewrite.iteration_pairs(ctx, 1, None).collect()} == set(TEXTS)
    assert rewrite.iteration_pairs(ctx, 1, "rw-set").count() == 0
    # A rerun for set iter1 finds every pair done.
    assert rewrite.STAGE.main(["--iteration", "1", "--name", "iter1", *stage_args(lakehouse, uri)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert lakehouse.read("rewrites").count() == 3


def test_a_killed_rewrite_resumes_with_no_duplicates_and_no_gaps(spark, lakehouse, mlflow_store, capsys):
    write_inputs(spark, lakehouse)
    # Two chunks for three pairs (chunks are a hash of the keys: s1 in one, s2 and s3 in the other)
    args = ["--iteration", "1", *stage_args(lakehouse, mlflow_store), "--set", "inference.chunk_rows=2"]
    assert rewrite.STAGE.main([*args, "--set", "inference.fail_after_rows=1"]) == 1
    assert "injected failure" in capsys.readouterr().err
    partial = [row.segment_id for row in lakehouse.read("rewrites").collect()]
    assert 0 < len(partial) < 3 and len(set(partial)) == len(partial)
    assert rewrite.STAGE.main(args) == 0
    assert f"{3 - len(partial)} rows to do" in capsys.readouterr().out  # only the missing pairs are rewritten
    final = [row.segment_id for row in lakehouse.read("rewrites").collect()]
    assert sorted(final) == sorted(PAIRS_OF_ITERATION_1)


@pytest.mark.parametrize("argv, message", [
    (["--iteration", "3"], "no curated pairs for iteration 3 in `training_sets`"),
    (["--iteration", "1", "--name", "nope"], "no curated pairs of set 'nope' for iteration 1"),
])
def test_no_pairs_is_a_one_line_error(argv, message, spark, lakehouse, mlflow_store, capsys):
    write_inputs(spark, lakehouse)
    assert rewrite.STAGE.main([*argv, *stage_args(lakehouse, mlflow_store)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not lakehouse.exists("rewrites")


def test_trainset_without_rewrites_says_to_run_rewrite(spark, lakehouse, mlflow_store, capsys):
    write_inputs(spark, lakehouse)
    lakehouse.write(table_frame(spark, "ratings", [{"segment_id": "s1", "instruction_hash": digest(INSTRUCTIONS["s1"]),
                                                    "iteration": 1, "scorer_model": SCORER, "mode": "logprob",
                                                    "score": 4.0, "parse_status": "ok", "backward_model": "myx"}]),
                    "ratings")
    lakehouse.write(table_frame(spark, "seed", [{"example_id": "e1", "instruction": "Q?", "output": "A.",
                                                 "split": "train"}]), "seed")
    code = trainset.STAGE.main(["--name", "rw", "--iteration", "1", "--backward-model", "myx", "--output-source",
                                "rewritten", "--lakehouse", lakehouse.root, "--mlflow-uri", mlflow_store])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "run `humpback rewrite --iteration 1` first" in err and len(err.splitlines()) == 1
