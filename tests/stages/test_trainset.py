"""`humpback trainset`: Delta versions per materialization, time travel, lineage in MLflow, one-line errors."""
import hashlib
import json

import pytest

from humpback.stages import trainset
from humpback.tables import table_frame

SEGMENTS = [("seg-a", "Cacti need gritty soil and little water.", None),
            ("seg-b", "Tides follow the moon.", None),
            ("seg-c", "Owls hunt at night.", None),
            ("seg-d", "Glass is made from sand.", "too_short")]
CANDIDATES = [("seg-a", "How do I care for a cactus?"), ("seg-b", "Why are there tides?"),
              ("seg-c", "When do owls hunt?"), ("seg-d", "How is glass made?")]
SCORES = {"seg-a": 5.0, "seg-b": 4.0, "seg-c": 4.5, "seg-d": 5.0}
SEED = [("e1", "What is a list?", "An ordered collection.", "train"),
        ("e2", "What is a set?", "Unique items.", "train"),
        ("e3", "What is a dict?", "A mapping.", "dev")]


SCORER = "models:/humpback-forward/1"
SCORER_ARGS = ["--backward-model", "myx"]


def write_inputs(spark, lakehouse, seed_rows):
    """The four input tables, shaped by the table registry (the other columns NULL)."""
    def candidate(sid, text):
        return {"segment_id": sid, "instruction": text, "instruction_hash": hashlib.sha256(text.encode()).hexdigest(),
                "backward_model": "myx", "prompt_version": "v1", "sampling": "{}", "status": "ok", "flags": []}

    def rating(sid, text):
        return {"segment_id": sid, "instruction_hash": hashlib.sha256(text.encode()).hexdigest(), "iteration": 1,
                "scorer_model": SCORER, "mode": "generate", "score": SCORES[sid], "parse_status": "ok",
                "score_source": "parsed", "backward_model": "myx"}

    frames = {
        "segments": table_frame(spark, "segments", [dict(zip(("segment_id", "text", "drop_reason"), row))
                                                    for row in SEGMENTS]),
        "candidates": table_frame(spark, "candidates", [candidate(sid, text) for sid, text in CANDIDATES]),
        "ratings": table_frame(spark, "ratings", [rating(sid, text) for sid, text in CANDIDATES]),
        "seed": table_frame(spark, "seed", [dict(zip(("example_id", "instruction", "output", "split"), row))
                                            for row in seed_rows]),
    }
    for table, frame in frames.items():
        lakehouse.write(frame, table)


@pytest.fixture(scope="module")
def materialized(spark, tmp_path_factory):
    """Two materializations of `a5` (min_score 4.5, then 4.0) and one of `a4-keep`."""
    from humpback.lakehouse import Lakehouse
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("trainset")
    lakehouse = Lakehouse(spark, str(root / "lakehouse"))
    write_inputs(spark, lakehouse, SEED)
    prompts = root / "eval.jsonl"
    prompts.write_text(json.dumps({"instruction": "When do owls hunt?"}) + "\n")
    common = ["--lakehouse", lakehouse.root, "--mlflow-uri", configure_mlflow(f"sqlite:///{root / 'mlflow.db'}"),
              "--eval-prompts", str(prompts), *SCORER_ARGS]
    versions = []
    for name, min_score in (("a5", 4.5), ("a5", 4.0), ("a4-keep", 4.0)):
        assert trainset.STAGE.main(["--name", name, "--iteration", "1", "--set", f"trainset.min_score={min_score}",
                              *common]) == 0
        versions.append(lakehouse.version("training_sets"))
    return lakehouse, versions, common


def augmented_instructions(lakehouse, version, name="a5"):
    rows = lakehouse.read("training_sets", version).where(f"set_name = '{name}' AND source = 'augmented'").collect()
    return sorted(row.instruction for row in rows)


def test_each_materialization_is_a_new_version_and_time_travel_returns_the_first(materialized):
    lakehouse, versions, _ = materialized
    assert versions == sorted(set(versions)) and len(versions) == 3
    # seg-c's instruction is an evaluation prompt; seg-d's segment was dropped.
    assert augmented_instructions(lakehouse, versions[0]) == ["How do I care for a cactus?"]
    assert augmented_instructions(lakehouse, versions[1]) == ["How do I care for a cactus?", "Why are there tides?"]


def test_a_set_replaces_only_its_own_rows(materialized):
    lakehouse, versions, _ = materialized
    latest = lakehouse.read("training_sets", versions[2])
    counts = {r.set_name: r["count"] for r in latest.groupBy("set_name").count().collect()}
    assert counts == {"a5": 5, "a4-keep": 5}  # 3 seed (the whole seed) + 2 augmented each
    assert augmented_instructions(lakehouse, versions[2]) == augmented_instructions(lakehouse, versions[1])


def test_lineage_is_in_mlflow_and_in_the_delta_commit(materialized):
    import mlflow
    from delta.tables import DeltaTable

    from humpback.sqlfiles import load_sql

    lakehouse, versions, _ = materialized
    runs = mlflow.search_runs(experiment_names=["humpback"], filter_string="tags.`humpback.trainset` = 'a5'",
                              order_by=["start_time ASC"])
    first = runs.iloc[0]
    assert first["params.trainset.curated_pairs_sql_sha256"] == load_sql("curated_pairs").sha256
    assert first["params.trainset.training_set_sql_sha256"] == load_sql("training_set").sha256
    assert first["params.trainset.min_score"] == "4.5" and first["params.delta.version"] == str(versions[0])
    assert first["tags.humpback.trainset_version"] == str(versions[0])
    assert first["metrics.examples"] == 4 and first["metrics.augmented"] == 1
    assert first["params.trainset.scorer_model"] == SCORER and first["params.trainset.rating_mode"] == "generate"
    assert first["params.trainset.backward_model"] == "myx"
    assert first["metrics.acceptance_rate"] == pytest.approx(1 / 4)
    assert first["metrics.output_chars_mean.seed"] == pytest.approx((22 + 13 + 10) / 3)
    history = DeltaTable.forPath(lakehouse.spark, lakehouse.path("training_sets")).history()
    metadata = json.loads(history.where(f"version = {versions[0]}").first()["userMetadata"])
    assert metadata["set_name"] == "a5" and metadata["settings"]["min_score"] == 4.5
    assert metadata["sql_sha256"]["curated_pairs.sql"] == load_sql("curated_pairs").sha256


def test_rows_carry_the_scorer_mode_and_backward_model_that_chose_them(materialized):
    lakehouse, versions, _ = materialized
    rows = lakehouse.read("training_sets", versions[0]).where("set_name = 'a5'").collect()
    assert {(row.scorer_model, row.rating_mode) for row in rows} == {(SCORER, "generate")}
    assert {row.backward_model for row in rows if row.source == "augmented"} == {"myx"}
    assert {row.backward_model for row in rows if row.source == "seed"} == {None}


def test_an_unknown_scorer_or_mode_lists_what_exists(materialized, capsys):
    lakehouse, _, common = materialized
    assert trainset.STAGE.main(["--name", "x", "--iteration", "1", "--mode", "logprob", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no ratings for mode logprob" in err
    assert f"--scorer {SCORER} --mode generate --backward-model myx (4 ratings)" in err


def test_an_empty_set_stops_before_writing(spark, tmp_path, mlflow_store, capsys):
    from humpback.lakehouse import Lakehouse

    lakehouse = Lakehouse(spark, str(tmp_path / "lakehouse"))
    write_inputs(spark, lakehouse, [])
    code = trainset.STAGE.main(["--name", "empty", "--iteration", "1", "--set", "trainset.min_score=6",
                          "--lakehouse", lakehouse.root, "--mlflow-uri", mlflow_store, *SCORER_ARGS])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "would be empty" in err and "nothing written" in err
    assert not lakehouse.exists("training_sets")


@pytest.mark.parametrize("argv, message", [
    (["--name", "a5'; DROP", "--iteration", "1"], "use only letters, digits"),
    (["--name", "a5", "--iteration", "1", "--set", "trainset.min_scor=4"], "trainset.min_scor: unknown setting"),
])
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, capsys):
    try:  # a bad name is refused by the parser (SystemExit), an unknown setting by the runner (return code)
        code = trainset.STAGE.main([*argv, "--lakehouse", str(tmp_path / "none")])
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_set_from_rewritten_outputs_takes_the_usable_rewrites_and_counts_the_pairs_left_out(materialized, capsys):
    """--output-source rewritten: a curated pair takes its output from its rewrite (status ok, no flag) by the
    chosen rewriter under the current rewrite prompt; one with a flagged rewrite is left out, and counted."""
    import mlflow
    from delta.tables import DeltaTable

    from humpback.prompts import REWRITE_TEMPLATE_VERSION

    lakehouse, _, common = materialized
    spark = lakehouse.spark
    instructions = dict(CANDIDATES)

    def rewrite(sid, output, rewriter="rw-model", flags=(), prompt_version=REWRITE_TEMPLATE_VERSION):
        return {"segment_id": sid, "instruction_hash": hashlib.sha256(instructions[sid].encode()).hexdigest(),
                "rewriter_model": rewriter, "prompt_version": prompt_version, "instruction": instructions[sid],
                "output": output, "status": "ok", "flags": list(flags)}

    lakehouse.write(table_frame(spark, "rewrites", [
        rewrite("seg-a", "Plant a cactus in gritty soil and water it only when the soil is dry."),
        rewrite("seg-a", "A rewrite under an older prompt.", prompt_version="0ld"),  # never used
        rewrite("seg-b", "According to the text, the moon does it.", flags=["context_reference"]),
        rewrite("seg-b", "The moon's pull raises the sea on the side of the Earth facing it.", rewriter="rw-other"),
    ]), "rewrites")
    argv = ["--name", "a4-rewritten", "--iteration", "1", "--set", "trainset.min_score=4.0", "--output-source",
            "rewritten", *common]

    # two rewriters: name one
    assert trainset.STAGE.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--rewriter rw-model (2 rewrites); --rewriter rw-other (1 rewrites)" in err

    assert trainset.STAGE.main([*argv, "--rewriter", "rw-model"]) == 0
    out = capsys.readouterr().out
    rows = lakehouse.read("training_sets").where("set_name = 'a4-rewritten'").collect()
    # curated at 4.0: seg-a and seg-b (as in a4-keep); seg-b's rewrite is flagged, so it is left out
    assert [(row.instruction, row.output) for row in rows if row.source == "augmented"] == [
        ("How do I care for a cactus?", "Plant a cactus in gritty soil and water it only when the soil is dry.")]
    assert sum(row.source == "seed" for row in rows) == 3
    assert "1 of 2 curated pairs have a usable rewrite; 1 left out (1 flagged, 0 not rewritten" in out

    run = mlflow.search_runs(experiment_names=["humpback"],
                             filter_string="tags.`humpback.trainset` = 'a4-rewritten'").iloc[0]
    assert run["params.trainset.output_source"] == "rewritten" and run["params.trainset.rewriter_model"] == "rw-model"
    assert run["params.trainset.rewrite_prompt_version"] == REWRITE_TEMPLATE_VERSION
    assert run["metrics.rewrites.left_out"] == 1 and run["metrics.rewrites.flagged"] == 1
    assert run["metrics.rewrites.ok"] == 1 and run["metrics.augmented"] == 1
    metadata = json.loads(DeltaTable.forPath(spark, lakehouse.path("training_sets")).history(1).first()["userMetadata"])
    assert metadata["output_source"] == "rewritten" and metadata["rewriter_model"] == "rw-model"
    assert metadata["rewrite_counts"] == {"ok": 1, "missing": 0, "error": 0, "flagged": 1, "decontaminated": 0}
    assert set(metadata["sql_sha256"]) == {"curated_pairs.sql", "training_set.sql", "rewritten_pairs.sql"}
    web = mlflow.search_runs(experiment_names=["humpback"], filter_string="tags.`humpback.trainset` = 'a4-keep'")
    assert set(web["params.trainset.output_source"]) == {"web"}  # the default: the web texts, as in the paper

    # the other rewriter's rewrite of seg-b is usable; seg-a has none by it
    assert trainset.STAGE.main([*argv, "--rewriter", "rw-other"]) == 0
    rows = lakehouse.read("training_sets").where("set_name = 'a4-rewritten' AND source = 'augmented'").collect()
    assert [row.output for row in rows] == ["The moon's pull raises the sea on the side of the Earth facing it."]
    assert "1 of 2 curated pairs have a usable rewrite; 1 left out (0 flagged, 1 not rewritten" in capsys.readouterr().out
