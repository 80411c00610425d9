"""A real SQLite-backed MLflow store: runs with lineage tags, registered versions found by alias, LoggedModels with
their metrics, and the prompt registry (one version per content hash, linked to the runs that used it)."""
import json
from pathlib import Path

import mlflow
import pytest

from humpback import tracking
from humpback.config import load_config
from humpback.ids import config_hash


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


# ----- LoggedModels -----

def _model_folder(tmp_path, text="not really weights"):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "weights.txt").write_text(text)
    (folder / "adapter").mkdir(exist_ok=True)
    (folder / "adapter" / "config.json").write_text("{}")
    return folder


def test_a_registered_model_is_a_logged_model_of_its_run(mlflow_store, tmp_path):
    client = mlflow.MlflowClient()
    with tracking.start_run("register", {}) as run:
        version = tracking.register_model_dir(_model_folder(tmp_path), "unit-model", "m0", params={"lr": 0.1},
                                              tags={"dataset": "seed@v0"})
    registered = tracking.model_version_by_alias("unit-model", "m0")
    model_id = tracking.logged_model_id(registered)
    assert version == 1 and tracking.MODEL_ID.fullmatch(model_id)
    assert registered.source == f"models:/{model_id}" and registered.run_id == run.info.run_id
    assert registered.tags["dataset"] == "seed@v0"
    model = client.get_logged_model(model_id)
    assert (model.name, str(model.status), model.source_run_id) == ("unit-model-m0", "READY", run.info.run_id)
    assert model.params == {"lr": "0.1"}
    assert {"name": "unit-model", "version": 1} in json.loads(model.tags["mlflow.modelVersions"])  # the UI's link
    assert [output.model_id for output in client.get_run(run.info.run_id).outputs.model_outputs] == [model_id]
    assert sorted(item.path for item in client.list_logged_model_artifacts(model_id)) == ["adapter", "weights.txt"]
    for ref in ("models:/unit-model@m0", "models:/unit-model/1", f"models:/{model_id}", model_id):
        assert tracking.logged_model_id(ref) == model_id
    assert tracking.logged_model_id("HuggingFaceTB/SmolLM2-135M-Instruct") is None


def test_a_failed_block_leaves_a_failed_logged_model(mlflow_store):
    with tracking.start_run("fails", {}) as run:
        with pytest.raises(RuntimeError, match="training broke"):
            with tracking.logged_model("unit-failed") as model:
                raise RuntimeError("training broke")
    assert mlflow.MlflowClient().get_logged_model(model.model_id).status == "FAILED"
    assert mlflow.MlflowClient().get_logged_model(model.model_id).source_run_id == run.info.run_id


def test_evaluation_metrics_reach_the_logged_model_behind_an_alias(mlflow_store, tmp_path):
    import pandas as pd

    client = mlflow.MlflowClient()
    with tracking.start_run("train", {}):
        tracking.register_model_dir(_model_folder(tmp_path), "unit-forward", "m1")
    model_id = tracking.logged_model_id("models:/unit-forward@m1")
    prompts = mlflow.data.from_pandas(pd.DataFrame({"instruction": ["What is rain?"]}), name="eval-prompts")
    with tracking.start_run("evaluate", {}) as run:
        assert tracking.log_model_metrics("models:/unit-forward@m1", {"win_rate": 0.6, "wins": 3}, step=1,
                                          dataset=prompts) == model_id
        assert tracking.log_model_metrics("HuggingFaceTB/SmolLM2-135M-Instruct", {"other": 1.0}) is None
    metrics = {metric.key: metric for metric in client.get_logged_model(model_id).metrics}
    assert set(metrics) == {"win_rate", "wins"}
    assert (metrics["win_rate"].value, metrics["win_rate"].step, metrics["win_rate"].run_id) == (0.6, 1, run.info.run_id)
    assert (metrics["win_rate"].dataset_name, metrics["win_rate"].dataset_digest) == (prompts.name, prompts.digest)
    evaluated = client.get_run(run.info.run_id)
    assert evaluated.data.metrics == {"win_rate": 0.6, "wins": 3.0, "other": 1.0}  # the run's metrics as before
    assert [model.model_id for model in evaluated.inputs.model_inputs] == [model_id]  # the model it evaluated
    assert [item.dataset.name for item in evaluated.inputs.dataset_inputs] == ["eval-prompts"]


def test_a_version_registered_from_run_artifacts_has_no_logged_model(mlflow_store):
    """Versions registered before LoggedModels: their metrics stay on the evaluation run."""
    client = mlflow.MlflowClient()
    with tracking.start_run("old", {}) as run:
        client.create_registered_model("old-model")
        client.create_model_version("old-model", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        client.set_registered_model_alias("old-model", "m0", "1")
        assert tracking.log_model_metrics("models:/old-model@m0", {"win_rate": 0.5}) is None
    assert client.get_run(run.info.run_id).data.metrics == {"win_rate": 0.5}


# ----- the prompt registry -----

def test_a_prompt_is_registered_once_per_content_hash(mlflow_store):
    first = tracking.register_prompt("unit-prompt", "Text:\n{output}", "aaaa11112222")
    again = tracking.register_prompt("unit-prompt", "Text:\n{output}", "aaaa11112222")
    changed = tracking.register_prompt("unit-prompt", "Text, changed:\n{output}", "bbbb33334444")
    assert (int(first.version), int(again.version), int(changed.version)) == (1, 1, 2)
    assert len(mlflow.MlflowClient().search_prompt_versions("unit-prompt")) == 2
    # our hash finds the version: as a tag, as an alias, and through prompt_version_by_hash
    assert first.tags[tracking.CONTENT_HASH_TAG] == "aaaa11112222" and "sha-aaaa11112222" in first.aliases
    by_alias = mlflow.genai.load_prompt("prompts:/unit-prompt@sha-aaaa11112222", link_to_model=False)
    assert int(by_alias.version) == 1 and by_alias.template == "Text:\n{{output}}"
    assert int(tracking.prompt_version_by_hash("unit-prompt", "bbbb33334444").version) == 2
    assert tracking.prompt_version_by_hash("unit-prompt", "cccc55556666") is None
    # the old template again (say, an older checkout): its version is found, not registered a third time
    assert int(tracking.register_prompt("unit-prompt", "Text:\n{output}", "aaaa11112222").version) == 1


def test_templates_round_trip_through_the_prompt_registry(mlflow_store):
    from humpback.evaluation.judge import judge_prompt
    from humpback.prompts import backward_prompt, rating_prompt

    prompts = tracking.humpback_prompts()
    assert set(prompts) == set(tracking.PROMPT_NAMES.values())
    for name, (template, version_hash) in prompts.items():
        stored = tracking.register_prompt(name, template, version_hash)
        assert "{{" in stored.template and tracking.from_mlflow_template(stored.template) == template
        assert stored.to_single_brace_format() == template  # MLflow's own conversion agrees
    backward, rubric, judge, rewrite = (tracking.register_prompt(name, *prompts[name])
                                        for name in tracking.PROMPT_NAMES.values())
    assert backward.variables == {"output"} and rubric.variables == {"instruction", "output"}
    assert judge.variables == {"instruction", "answer_a", "answer_b"}
    assert rewrite.variables == {"instruction", "text"}
    # filled by MLflow, each renders exactly what the pipeline sends
    assert backward.format(output="Pip installs packages.") == backward_prompt("Pip installs packages.")
    assert rubric.format(instruction="What is pip?", output="An installer.") == rating_prompt("What is pip?",
                                                                                            "An installer.")
    assert judge.format(instruction="Q?", answer_a="A.", answer_b="B.") == judge_prompt("Q?", "A.", "B.")
    for template in ("Braces {x} and {not a placeholder} and {}", "{a}{b} {0} { c }"):
        assert tracking.from_mlflow_template(tracking.to_mlflow_template(template)) == template
    with pytest.raises(ValueError, match="literal"):
        tracking.to_mlflow_template("already {{doubled}}")


def test_runs_link_the_prompt_versions_they_used(mlflow_store):
    from humpback.prompts import BACKWARD_TEMPLATE_VERSION

    client = mlflow.MlflowClient()
    with tracking.start_run("augment", {}) as first:
        linked = tracking.link_prompts(["backward", "judge", "backward"])
    with tracking.start_run("augment-again", {}) as second:
        tracking.link_prompts(["humpback-backward-prompt"])
        with pytest.raises(ValueError, match="unknown prompt 'nope'"):
            tracking.link_prompts(["nope"])
    backward, judge = tracking.PROMPT_NAMES["backward"], tracking.PROMPT_NAMES["judge"]
    assert [(version.name, str(version.version)) for version in linked] == [(backward, "1"), (judge, "1")]
    assert tracking.linked_prompts(first.info.run_id) == [(backward, "1"), (judge, "1")]
    assert tracking.linked_prompts(second.info.run_id) == [(backward, "1")]  # the same version, not a new one
    assert json.loads(client.get_run(second.info.run_id).data.tags["mlflow.linkedPrompts"]) == [
        {"name": backward, "version": "1"}]  # the tag the MLflow UI reads
    assert len(client.search_prompt_versions(backward)) == 1
    assert client.get_prompt_version(backward, 1).tags[tracking.CONTENT_HASH_TAG] == BACKWARD_TEMPLATE_VERSION
    # the experiment's Prompts tab lists them
    listed = mlflow.genai.search_prompts(filter_string=f"experiment_id = '{first.info.experiment_id}'")
    assert {prompt.name for prompt in listed} == {backward, judge}
    # prompts are not models: the registry's model list stays as it was
    assert client.search_registered_models() == []
    with pytest.raises(RuntimeError, match="active MLflow run"):
        tracking.link_prompts(["backward"])


def test_a_prompt_links_to_a_logged_model(mlflow_store):
    with tracking.start_run("train-backward", {}):
        with tracking.logged_model("unit-backward-myx") as model:
            tracking.link_prompts(["backward"], model_id=model.model_id)
    tag = mlflow.MlflowClient().get_logged_model(model.model_id).tags["mlflow.linkedPrompts"]
    assert json.loads(tag) == [{"name": tracking.PROMPT_NAMES["backward"], "version": "1"}]
