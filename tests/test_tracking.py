"""A real SQLite-backed MLflow store: runs with lineage tags, registered versions found by alias."""
from pathlib import Path

import mlflow
import pytest

from humpback import tracking
from humpback.config import config_hash, load_config


def test_default_store_is_sqlite_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.configure_mlflow()
    assert uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.start_run("default-store", {}):
        mlflow.log_metric("x", 1.0)
    assert (tmp_path / "mlflow.db").exists()


def test_explicit_uri_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    assert tracking.configure_mlflow(f"sqlite:///{tmp_path / 'flag.db'}").endswith("flag.db")


def test_runs_are_tagged_with_commit_and_config_hash(mlflow_store):
    config = load_config()
    with tracking.start_run("tagged", config, stage="unit") as run:
        mlflow.log_param("p", 1)
    stored = mlflow.get_run(run.info.run_id)
    assert stored.data.tags["humpback.config_hash"] == config_hash(config)
    assert stored.data.tags["humpback.stage"] == "unit"
    assert stored.data.tags["humpback.git_commit"]


def test_the_experiment_opens_on_its_training_runs(mlflow_store):
    """MLflow 3's UI picks the landing page from mlflow.experimentKind; untagged, it showed a GenAI overview."""
    client = mlflow.MlflowClient()
    legacy = client.create_experiment("made-before-the-tag")  # an experiment from an older humpback
    for name in (tracking.EXPERIMENT, "made-before-the-tag"):
        experiment_id = tracking.ensure_experiment(name)
        assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert tracking.ensure_experiment("made-before-the-tag") == legacy


def test_model_version_registered_with_alias_is_found_by_alias(mlflow_store, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.txt").write_text("not really weights")
    with tracking.start_run("register", {}):
        first = tracking.register_model_dir(folder, "unit-model", "m0")
    with tracking.start_run("register-again", {}):
        second = tracking.register_model_dir(folder, "unit-model", "m1")
    assert (first, second) == (1, 2)
    assert str(tracking.model_version_by_alias("unit-model", "m0").version) == "1"
    assert str(tracking.model_version_by_alias("unit-model", "m1").version) == "2"
    downloaded = mlflow.artifacts.download_artifacts(tracking.model_version_by_alias("unit-model", "m1").source,
                                                     dst_path=str(tmp_path / "dl"))
    [weights] = list(Path(downloaded).rglob("weights.txt"))
    assert weights.read_text() == "not really weights"


def test_missing_alias_names_the_aliases_that_exist(mlflow_store, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    with tracking.start_run("register", {}):
        tracking.register_model_dir(folder, "alias-model", "m0")
    with pytest.raises(tracking.ModelAliasError, match=r"no alias 'm7'.*@m0 \(v1\)"):
        tracking.model_version_by_alias("alias-model", "m7")
    with pytest.raises(tracking.ModelAliasError, match="no registered model 'nobody'.*alias-model"):
        tracking.model_version_by_alias("nobody", "m0")
