"""`humpback trainset`: Delta versions per materialization, time travel, lineage in MLflow, one-line errors."""
import hashlib
import json

import pytest

from humpback.tables import table_frame
from pipelines import trainset

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
        assert trainset.main(["--name", name, "--iteration", "1", "--set", f"trainset.min_score={min_score}",
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
    assert trainset.main(["--name", "x", "--iteration", "1", "--mode", "logprob", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no ratings for mode logprob" in err
    assert f"--scorer {SCORER} --mode generate --backward-model myx (4 ratings)" in err


def test_an_empty_set_stops_before_writing(spark, tmp_path, mlflow_store, capsys):
    from humpback.lakehouse import Lakehouse

    lakehouse = Lakehouse(spark, str(tmp_path / "lakehouse"))
    write_inputs(spark, lakehouse, [])
    code = trainset.main(["--name", "empty", "--iteration", "1", "--set", "trainset.min_score=6",
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
    assert trainset.main([*argv, "--lakehouse", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
