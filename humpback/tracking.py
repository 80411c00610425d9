"""MLflow at the edge: the default store, run tags, the model registry (aliases, not stages), LoggedModels and the
prompt registry.

Trained models are MLflow LoggedModels: the run that trained one lists it as its output, the model carries its
parameters and its training metrics with the training set attached (MLflow's "Datasets used"), its files are the
model's artifacts, and the registered version is made from it (`models:/<model_id>`), so the registry, the run and
the model point at each other. An evaluation attaches its metrics to the model it evaluated (log_model_metrics).

The prompts the pipeline sends (backward, rubric, judge) are MLflow prompts. MLflow numbers their versions 1, 2, ...;
ours are the content hashes of humpback.prompts, kept on each version as the tag `humpback.content_hash` and as the
alias `sha-<hash>` (`prompts:/humpback-backward-prompt@sha-<hash>`), so a template is registered once per hash, and
every run that used a prompt links to the version it used (MLflow's `mlflow.linkedPrompts` run tag).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Iterator

from humpback.ids import config_hash

EXPERIMENT = "humpback"
# The registered models: the backward model Myx (alias myx) and the forward models M0, M1, ... (aliases m0, m1, ...).
REGISTERED_MODELS = {"backward": "humpback-backward", "forward": "humpback-forward"}
FORWARD_MODEL = REGISTERED_MODELS["forward"]


def iteration_model(k: int) -> str:
    """M_k's URI: the forward model trained on iteration k's set (M0 on the seed alone)."""
    return f"models:/{FORWARD_MODEL}@m{k}"

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
    """The source checkout's commit (`-dirty` with uncommitted changes); `unknown` for an installed wheel."""
    from humpback.resources import source_checkout

    root = source_checkout()
    if root is None:  # git here would describe whatever repository the site-packages folder happens to sit in
        return "unknown"
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


# ----- LoggedModels -----

MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
_MODEL_ID_URI = re.compile(r"models:/(?P<model_id>m-[0-9a-f]{32})/?")


def _active_run_id(what: str) -> str:
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(f"{what} needs an active MLflow run")
    return run.info.run_id


@contextlib.contextmanager
def logged_model(name: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
                 model_type: str | None = None) -> Iterator[Any]:
    """A LoggedModel made by the active run (listed as the run's output): PENDING while the block runs, READY
    after it, FAILED when it raises. Yields the mlflow.entities.LoggedModel."""
    import mlflow
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    run_id = _active_run_id("logged_model")
    model = mlflow.initialize_logged_model(name=name, source_run_id=run_id, model_type=model_type,
                                           params={key: str(value) for key, value in (params or {}).items()},
                                           tags={key: str(value) for key, value in (tags or {}).items()})
    client = mlflow.MlflowClient()
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    try:
        yield model
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)


def log_model_files(model_id: str, local_dir: str | Path) -> None:
    """A model folder as the LoggedModel's artifacts (what `models:/<model_id>` downloads)."""
    import mlflow

    mlflow.MlflowClient().log_model_artifacts(model_id, str(local_dir))


def register_logged_model(model_id: str, name: str, alias: str, tags: Mapping[str, Any] | None = None) -> int:
    """Register the LoggedModel as a new version of `name` (its source `models:/<model_id>`, its run the model's
    run), tag it and point `alias` at it; returns the version number."""
    import mlflow

    # mlflow.register_model also records the version on the LoggedModel (its "Model versions" in the UI); it prints
    # two lines of its own on stderr, which the stage's own "registered" line replaces.
    with contextlib.redirect_stderr(io.StringIO()):
        version = mlflow.register_model(f"models:/{model_id}", name,
                                        tags={key: str(value) for key, value in (tags or {}).items()})
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version.version)
    return int(version.version)


def register_model_dir(local_dir: str | Path, name: str, alias: str, model_name: str | None = None,
                       params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None) -> int:
    """A model folder as a LoggedModel of the active run (named `model_name`, default `<name>-<alias>`), registered
    under `name` with `alias` pointing at it; returns the version number."""
    _active_run_id("register_model_dir")
    with logged_model(model_name or f"{name}-{alias}", params=params) as model:
        log_model_files(model.model_id, local_dir)
    return register_logged_model(model.model_id, name, alias, tags)


def logged_model_id(model: Any) -> str | None:
    """The id of the LoggedModel behind `model`: a LoggedModel id (`m-...`), `models:/<model_id>`,
    `models:/NAME@ALIAS`, `models:/NAME/VERSION` or a registered ModelVersion. None when there is none: a local
    folder, a hub id, a served model's name, or a version registered from run artifacts (before LoggedModels)."""
    if model is None:
        return None
    if not isinstance(model, str):  # a ModelVersion
        model_id = getattr(model, "model_id", None)
        match = _MODEL_ID_URI.fullmatch(str(getattr(model, "source", "") or ""))
        return model_id or (match["model_id"] if match else None)
    if MODEL_ID.fullmatch(model):
        return model
    if match := _MODEL_ID_URI.fullmatch(model):
        return match["model_id"]
    match = re.fullmatch(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))", model)
    if not match:
        return None
    if match["alias"]:
        return logged_model_id(model_version_by_alias(match["name"], match["alias"]))
    return logged_model_id(model_version_by_number(match["name"], match["version"]))


def log_model_metrics(model: Any, metrics: Mapping[str, float], step: int | None = None,
                      dataset: Any = None) -> str | None:
    """Log `metrics` to the active run, attached to the LoggedModel behind `model` (see logged_model_id), which
    the run then lists as an input; `dataset` (an mlflow.data Dataset) is the data they were measured on. Without a
    LoggedModel they are plain run metrics. Returns the model id or None."""
    import mlflow

    run_id = _active_run_id("log_model_metrics")
    model_id = logged_model_id(model)
    # run_id given: MLflow reads the run afresh, so a model or dataset the run already lists is not listed twice.
    mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step, run_id=run_id,
                       model_id=model_id, dataset=dataset)
    return model_id


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


# ----- the prompt registry -----

CONTENT_HASH_TAG = "humpback.content_hash"
HASH_ALIAS_PREFIX = "sha-"
PROMPT_NAMES = {"backward": "humpback-backward-prompt", "rubric": "humpback-rubric-prompt",
                "judge": "humpback-judge-prompt", "rewrite": "humpback-rewrite-prompt"}  # "humpback-backward" itself is a registered model's name
_SINGLE_BRACES = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOUBLE_BRACES = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}")


def humpback_prompts() -> dict[str, tuple[str, str]]:
    """Each prompt the pipeline sends: registry name -> (template, content hash)."""
    from humpback.evaluation.judge import JUDGE_TEMPLATE
    from humpback.prompts import (
        BACKWARD_TEMPLATE,
        BACKWARD_TEMPLATE_VERSION,
        RATING_TEMPLATE,
        RATING_TEMPLATE_VERSION,
        REWRITE_SYSTEM,
        REWRITE_TEMPLATE,
        REWRITE_TEMPLATE_VERSION,
        template_version,
    )

    return {PROMPT_NAMES["backward"]: (BACKWARD_TEMPLATE, BACKWARD_TEMPLATE_VERSION),
            # the hash covers the "Score:" prefill too (humpback.prompts), which the template alone does not show
            PROMPT_NAMES["rubric"]: (RATING_TEMPLATE, RATING_TEMPLATE_VERSION),
            PROMPT_NAMES["judge"]: (JUDGE_TEMPLATE, template_version(JUDGE_TEMPLATE)),
            # the system message and the template, as the hash covers them
            PROMPT_NAMES["rewrite"]: (f"{REWRITE_SYSTEM}\n{REWRITE_TEMPLATE}", REWRITE_TEMPLATE_VERSION)}


def to_mlflow_template(template: str) -> str:
    """`{name}` placeholders as MLflow's `{{name}}`. A template with `{{` or `}}` of its own is refused: it could
    not be told apart from a placeholder on the way back."""
    if "{{" in template or "}}" in template:
        raise ValueError("a template with literal '{{' or '}}' cannot be stored as an MLflow prompt unambiguously")
    return _SINGLE_BRACES.sub(r"{{\1}}", template)


def from_mlflow_template(template: str) -> str:
    """The inverse of to_mlflow_template."""
    return _DOUBLE_BRACES.sub(r"{\1}", template)


def hash_alias(version_hash: str) -> str:
    return f"{HASH_ALIAS_PREFIX}{version_hash}"


def prompt_version_by_hash(name: str, version_hash: str):
    """The registered version of prompt `name` whose content hash is `version_hash`, or None."""
    import mlflow
    from mlflow.prompt.constants import IS_PROMPT_TAG_KEY

    client = mlflow.MlflowClient()
    found = client.search_model_versions(f"name = '{name}' AND tags.`{IS_PROMPT_TAG_KEY}` = 'true' "
                                         f"AND tags.`{CONTENT_HASH_TAG}` = '{version_hash}'")
    if not found:
        return None
    return client.get_prompt_version(name, str(min(int(version.version) for version in found)))


def register_prompt(name: str, template: str, version_hash: str):
    """The PromptVersion of `name` with this content hash, registered first when no version has it (so a template
    is registered once, and a changed one becomes the next version). `{name}` placeholders are stored as MLflow's
    `{{name}}`; the version carries the hash as the tag humpback.content_hash and the alias sha-<hash>."""
    import mlflow

    client = mlflow.MlflowClient()
    version = prompt_version_by_hash(name, version_hash)
    if version is None:
        version = client.register_prompt(name, to_mlflow_template(template), tags={CONTENT_HASH_TAG: version_hash},
                                         commit_message=f"humpback content hash {version_hash}")
        _join_prompt_listing_threads()
    if hash_alias(version_hash) not in (version.aliases or []):
        client.set_prompt_alias(name, hash_alias(version_hash), int(version.version))
        version = client.get_prompt_version(name, str(version.version))
    return version


def prompt_name(name: str) -> str:
    """A prompt's registry name from its short name (backward, rubric, judge) or its registry name."""
    if name in PROMPT_NAMES:
        return PROMPT_NAMES[name]
    if name in PROMPT_NAMES.values():
        return name
    raise ValueError(f"unknown prompt {name!r}: expected one of {', '.join(PROMPT_NAMES)}")


def link_prompts(names: Iterable[str], model_id: str | None = None) -> list:
    """Link the active run (and the LoggedModel `model_id`, if given) to the registered versions of these prompts
    (short names backward, rubric, judge, or registry names), registering them first where needed; also list the
    prompts on the run's experiment (its Prompts tab). Returns the PromptVersions."""
    import mlflow

    run_id = _active_run_id("link_prompts")
    client = mlflow.MlflowClient()
    catalog = humpback_prompts()
    linked = []
    for name in dict.fromkeys(prompt_name(name) for name in names):
        version = register_prompt(name, *catalog[name])
        client.link_prompt_version_to_run(run_id, version)
        if model_id:
            client.link_prompt_version_to_model(name, str(version.version), model_id)
        _list_on_experiment(name, mlflow.active_run().info.experiment_id)
        linked.append(version)
    return linked


def _list_on_experiment(name: str, experiment_id: str) -> None:
    """Put the prompt on the experiment's Prompts tab. MLflow does this itself, in a background thread, only when it
    registers a new version; a prompt registered before (or from another experiment) is listed here."""
    import mlflow

    try:
        from mlflow.prompt.constants import PROMPT_EXPERIMENT_IDS_TAG_KEY
    except ImportError:  # another MLflow: its own listing is all there is
        return
    client = mlflow.MlflowClient()
    existing = (client.get_prompt(name).tags or {}).get(PROMPT_EXPERIMENT_IDS_TAG_KEY, "")
    ids = [part for part in existing.split(",") if part.strip()]
    if experiment_id not in ids:
        client.set_prompt_tag(name, PROMPT_EXPERIMENT_IDS_TAG_KEY, f",{','.join([*ids, experiment_id])},")


def _join_prompt_listing_threads(timeout: float = 10.0) -> None:
    """Wait for the background threads in which MLflow lists a newly registered prompt on an experiment: they
    rewrite the same prompt tag as _list_on_experiment, and one finishing after it would undo its change."""
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("link_prompt_to_experiment_thread") and thread is not threading.current_thread():
            thread.join(timeout)


def linked_prompts(run_id: str) -> list[tuple[str, str]]:
    """(name, version) of every prompt version the run links to (its mlflow.linkedPrompts tag)."""
    import mlflow

    value = mlflow.MlflowClient().get_run(run_id).data.tags.get("mlflow.linkedPrompts")
    return [(entry["name"], str(entry["version"])) for entry in json.loads(value)] if value else []
