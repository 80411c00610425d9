"""MLflow at the edge: the default store, run tags, and the model registry (aliases, not stages)."""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

from humpback.config import config_hash

EXPERIMENT = "humpback"
# MLflow 3's UI opens an experiment on the page its kind names; without this tag it guesses, and an experiment of
# LLM runs opens on an empty GenAI overview instead of our training runs.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
_QUIET_LOGGERS = ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent", "mlflow.store.model_registry")


class ModelAliasError(LookupError):
    """A registered model or alias that does not exist."""


def default_tracking_uri() -> str:
    """A SQLite store in the working folder: the registry works with no server to run."""
    return f"sqlite:///{Path('mlflow.db').resolve()}"


def configure_mlflow(uri: str | None = None) -> str:
    """Point MLflow at `uri`, else MLFLOW_TRACKING_URI, else the local SQLite store; return the URI used."""
    import mlflow

    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    os.environ["MLFLOW_TRACKING_URI"] = uri  # Spark workers and child processes see the same store.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(name: str = EXPERIMENT) -> str:
    """The experiment's id, created on first use; its kind tag set (also on experiments made before the tag)."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id
    artifact_location = None
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        # Keep artifacts beside the SQLite file rather than wherever the process happens to run.
        db_file = Path(mlflow.get_tracking_uri().removeprefix("sqlite:///"))
        artifact_location = (db_file.parent / "mlartifacts").resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location,
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@contextlib.contextmanager
def start_run(run_name: str, config: dict[str, Any], stage: str | None = None, nested: bool = False,
              tags: dict[str, str] | None = None) -> Iterator[Any]:
    """An MLflow run tagged with the git commit and the settings' hash; nested when a run is already active."""
    import mlflow

    experiment_id = ensure_experiment()
    nested = nested or mlflow.active_run() is not None
    run_tags = {"humpback.git_commit": git_commit(), "humpback.config_hash": config_hash(config)}
    if stage:
        run_tags["humpback.stage"] = stage
    run_tags.update(tags or {})
    with mlflow.start_run(run_name=run_name, experiment_id=experiment_id, nested=nested, tags=run_tags) as run:
        yield run


def register_model_dir(local_dir: str | Path, name: str, alias: str, artifact_path: str = "model") -> int:
    """Log a model folder as artifacts of the active run, register it under `name` and point `alias` at it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_model_dir needs an active MLflow run")
    mlflow.log_artifacts(str(local_dir), artifact_path=artifact_path)
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
    version = client.create_model_version(name, source=source, run_id=run.info.run_id)
    client.set_registered_model_alias(name, alias, version.version)
    return int(version.version)


def model_version_by_alias(name: str, alias: str):
    """The registered version behind `name@alias`; a missing alias names the aliases that exist."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        registered = client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        names = sorted(model.name for model in client.search_registered_models())
        raise ModelAliasError(f"no registered model {name!r}; registered models: {', '.join(names) or 'none'}") from None
    aliases = dict(registered.aliases or {})
    if alias not in aliases:
        known = ", ".join(f"@{a} (v{v})" for a, v in sorted(aliases.items())) or "none"
        raise ModelAliasError(f"model {name!r} has no alias {alias!r}; its aliases: {known}")
    return client.get_model_version(name, aliases[alias])


def model_version_by_number(name: str, version: str):
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient().get_model_version(name, version)
    except Exception:
        raise ModelAliasError(f"model {name!r} has no version {version!r}") from None
