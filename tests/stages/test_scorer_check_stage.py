"""`humpback scorer-check` end to end on a few seed dev pairs with the embedded model, and its settings."""
import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest

from humpback.stages import scorer_check

MODEL = "embedded:smollm2-135m-instruct"
SEED = [  # three dev pairs (two sentences each: each also gives a first-sentence negative) and one train pair
    ("What does len() return?", "The number of items in a container. It works on lists, strings and dicts.", "dev"),
    ("How do I reverse a list?", "Call its reverse() method. Or slice it with [::-1] for a reversed copy.", "dev"),
    ("What is a tuple?", "An immutable sequence. Once made, its items cannot be changed.", "dev"),
    ("What is pip?", "Python's package installer. It installs packages from PyPI.", "train"),
]
LABELLED = [{"instruction": "What is 2 + 2?", "output": "4", "label": 1},
            {"instruction": "What is 2 + 2?", "output": "Bananas are yellow.", "label": "bad"}]


def write_seed(spark, lakehouse):
    from humpback.ids import example_id
    from humpback.tables import table_frame

    rows = [{"example_id": example_id(i, o), "instruction": i, "output": o, "split": split, "source": "test"}
            for i, o, split in SEED]
    lakehouse.write(table_frame(spark, "seed", rows), "seed")
    return lakehouse


@pytest.fixture(scope="module")
def check(spark, tmp_path_factory, embedded_model_dir):
    """One check: 3 dev pairs and 2 hand-labelled pairs, logprob, threshold 1 (everything accepted); (lakehouse,
    MLflow store, argv, what it printed)."""
    from humpback.lakehouse import Lakehouse
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("scorer_check")
    lakehouse = write_seed(spark, Lakehouse(spark, str(root / "lakehouse")))
    labelled = root / "labelled.jsonl"
    labelled.write_text("".join(json.dumps(row) + "\n" for row in LABELLED))
    uri = configure_mlflow(f"sqlite:///{root / 'mlflow.db'}")
    argv = ["--scorer", MODEL, "--labelled", str(labelled), "--threshold", "1", "--engine", "transformers",
            "--set", "inference.partitions=1", "--lakehouse", lakehouse.root, "--mlflow-uri", uri]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert scorer_check.STAGE.main(argv) == 0
    return lakehouse, uri, argv, out.getvalue()


def test_every_labelled_pair_gets_a_row_with_its_score_and_lineage(check):
    from humpback.models import resolve_model, stable_model_ref
    from humpback.tables import TABLES, schema_differences

    lakehouse = check[0]
    frame = lakehouse.read("scorer_checks")
    assert schema_differences(TABLES["scorer_checks"], frame.schema) == []
    rows = frame.collect()
    kinds = sorted(row.kind for row in rows)
    # 3 true pairs, 3 swapped instructions, 3 first sentences, and the file's 2 pairs
    assert kinds == sorted(["true"] * 3 + ["swapped_instruction"] * 3 + ["first_sentence"] * 3 + ["labelled_file"] * 2)
    assert len({row.check_id for row in rows}) == 1 and len({row.pair_id for row in rows}) == 11
    assert {row.label for row in rows if row.kind == "true"} == {1}
    assert {row.label for row in rows if row.kind in ("swapped_instruction", "first_sentence")} == {0}
    assert sorted(row.label for row in rows if row.kind == "labelled_file") == [0, 1]
    assert "What is pip?" not in {row.instruction for row in rows}  # train pairs are not in the set
    for row in rows:
        assert row.status == "ok" and row.error is None and 1.0 <= row.score <= 5.0
        assert set(row.score_probs) == {"1", "2", "3", "4", "5"} and row.score_source == "logprob"
        assert row.scorer_model == stable_model_ref(resolve_model(MODEL)) and row.scorer_uri == MODEL
        assert row.mode == "logprob" and row.set_seed == 0 and row.checked_at is not None
        assert row.source == ("seed:dev" if row.kind != "labelled_file" else str(Path(row.source)))


def test_metrics_plot_and_report_are_in_mlflow(check):
    import mlflow

    lakehouse, uri, _, _ = check
    mlflow.set_tracking_uri(uri)
    [run] = mlflow.search_runs(experiment_names=["humpback"], output_format="list",
                               filter_string="tags.`humpback.stage` = 'scorer-check'")
    metrics, params = run.data.metrics, run.data.params
    # threshold 1 accepts every pair: recall 1, precision the share of positives (3 true pairs + 1 from the file)
    assert metrics["n"] == 11 and metrics["positives"] == 4 and metrics["accepted"] == 11
    assert metrics["recall"] == 1.0 and metrics["precision"] == pytest.approx(4 / 11)
    assert 0.0 <= metrics["auc"] <= 1.0 and "paper_threshold" in metrics
    assert metrics["pairs.true"] == 3 and metrics["pairs.labelled_file"] == 2
    assert params["threshold"] == "1.0" and params["threshold_source"] == "--threshold" and params["set_seed"] == "0"
    assert params["check_id"] == lakehouse.read("scorer_checks").first().check_id
    assert run.info.run_name == "scorer-check-logprob"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "scorer_check")}
    assert artifacts == {"scorer_check/score_distribution.png", "scorer_check/report.json"}


def test_the_summary_fits_one_screen_and_names_the_numbers(check):
    out = check[3]
    summary = out[out.index("scorer-check: " + MODEL):]
    assert "precision 0.36, recall 1.00" in summary and "ROC AUC" in summary
    assert "the paper's acceptance share (8.3%) needs threshold" in summary and "M0 0.44/0.09" in summary
    assert len(summary.splitlines()) <= 24


def test_a_rerun_of_the_same_check_rates_nothing_again(check, capsys):
    lakehouse, _, argv, _ = check
    before = lakehouse.read("scorer_checks").count()
    assert scorer_check.STAGE.main(argv) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "precision 0.36, recall 1.00" in out
    assert lakehouse.read("scorer_checks").count() == before


def test_humpback_scorer_check_is_the_command(capsys):
    from humpback import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0 and "\n  scorer-check " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["scorer-check", "--help"])
    assert "usage: humpback scorer-check" in capsys.readouterr().out


def test_without_a_seed_table_it_says_which_command_writes_one(tmp_path, mlflow_store, capsys):
    assert scorer_check.STAGE.main(["--lakehouse", str(tmp_path / "l"), "--mlflow-uri", mlflow_store]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no `seed` table" in err and "humpback seed" in err


def threshold_of(overrides, threshold=None):
    from humpback.config import load_config

    return scorer_check.check_threshold(argparse.Namespace(threshold=threshold), load_config(None, overrides))


def test_the_threshold_is_the_flag_else_the_setting_else_the_curation_threshold():
    assert threshold_of([]) == (4.5, "trainset.min_score")
    assert threshold_of(["trainset.min_score=2.75"]) == (2.75, "trainset.min_score")
    assert threshold_of(["scorer_check.threshold=3"]) == (3.0, "scorer_check.threshold")
    assert threshold_of(["scorer_check.threshold=3"], threshold=4.0) == (4.0, "--threshold")


class Recorder:
    """A stand-in for a stage: records its calls, returns a fixed summary."""

    def __init__(self, name, calls, summary=None):
        self.name, self.calls, self.summary = name, calls, summary

    def call(self, ctx, **options):
        self.calls.append((self.name, options))
        return self.summary


@pytest.mark.parametrize("run_in_iterate", [True, False])
def test_iterate_checks_each_scorer_before_it_curates_and_logs_it_at_the_iteration(
        run_in_iterate, tmp_path, monkeypatch):
    import mlflow

    from humpback.stage import Context
    from humpback.stages import iterate
    from humpback.tracking import configure_mlflow, start_run

    calls = []
    summary = {"precision": 0.5, "recall": 0.25, "auc": 0.75, "n": 9.0}
    for name, module in (("scorer_check", iterate.scorer_check), ("curate", iterate.curate),
                         ("trainset", iterate.trainset), ("train", iterate.train)):
        monkeypatch.setattr(module, "STAGE", Recorder(name, calls, summary if name == "scorer_check" else None))
    args = argparse.Namespace(lakehouse=str(tmp_path / "l"), mlflow_uri=None, config=None, verbose=False,
                              overrides=[f"scorer_check.run_in_iterate={str(run_in_iterate).lower()}"])
    ctx = Context(args)
    configure_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with start_run("iterate", ctx.config) as run:
        iterate.run_iteration(ctx, 2, "models:/humpback-forward/7", "logprob", ctx.config["iterate"])
    names = [name for name, _ in calls]
    if not run_in_iterate:
        assert names == ["curate", "trainset", "train"]
        return
    assert names == ["scorer_check", "curate", "trainset", "train"]
    assert calls[0][1] == {"scorer": "models:/humpback-forward/7", "iteration": 2, "mode": "logprob"}
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "scorer_check.auc")
    assert [(m.step, m.value) for m in history] == [(2, 0.75)]
    assert set(mlflow.get_run(run.info.run_id).data.metrics) == {
        "scorer_check.precision", "scorer_check.recall", "scorer_check.auc"}


def test_a_scorer_check_that_cannot_run_does_not_stop_the_iteration(tmp_path, monkeypatch, capsys):
    from humpback.stage import Context, StageError
    from humpback.stages import iterate

    class Failing:
        def call(self, ctx, **options):
            raise StageError("scorer-check: the `seed` table has no dev pairs")

    calls = []
    monkeypatch.setattr(iterate.scorer_check, "STAGE", Failing())
    for name, module in (("curate", iterate.curate), ("trainset", iterate.trainset), ("train", iterate.train)):
        monkeypatch.setattr(module, "STAGE", Recorder(name, calls))
    ctx = Context(argparse.Namespace(lakehouse=str(tmp_path / "l"), mlflow_uri=None, config=None, verbose=False,
                                     overrides=[]))
    iterate.run_iteration(ctx, 1, "models:/humpback-forward/1", "logprob", ctx.config["iterate"])
    assert [name for name, _ in calls] == ["curate", "trainset", "train"]
    assert "iterate: no scorer check for M0 (scorer-check: the `seed` table has no dev pairs); going on" in \
        capsys.readouterr().out
