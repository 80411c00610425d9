"""`humpback train` on real Spark, Delta and MLflow with a tiny randomly initialised model (the embedded model's
tokenizer and chat template, a two-layer body) so that training, the gate and loading back take seconds."""
import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

from humpback.config import load_config
from humpback.stages import seed, train

SEED_FILE = Path(__file__).resolve().parents[2] / "data" / "sample" / "seed.jsonl"
TRAIN_SETTINGS = ["--max-steps", "2", "--set", "train.max_length=256", "--set", "train.batch_size=2",
                  "--set", "gate.max_examples=4", "--set", "gate.max_new_tokens=8", "--set", "gate.batch_size=2"]
SET_COLUMNS = "set_name string, iteration int, example_key string, instruction string, output string, " \
              "source string, tag string"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, embedded_model_dir):
    """A local model folder: SmolLM2's tokenizer over a two-layer Llama with random weights."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny-base")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def call(main, argv):
    """A stage's main in this process (it reuses the session's Spark): (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory, tiny_base, embedded_model_dir):
    """The seed loaded once, then a backward, a forward and a fully fine-tuned forward model trained on it."""
    from humpback.lakehouse import Lakehouse
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("train-stage")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    stores = ["--lakehouse", str(root / "lakehouse"), "--mlflow-uri", uri]
    # registry downloads are cached under the models folder: keep this module's apart from everyone else's
    models = root / "models"
    models.mkdir()
    (models / embedded_model_dir.name).symlink_to(embedded_model_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("HUMPBACK_MODELS", str(models))
        configure_mlflow(uri)
        code, _, err = call(seed.STAGE.main, ["--input", str(SEED_FILE), "--format", "jsonl", *stores])
        assert code == 0, err
        outputs = {}
        for direction, alias, extra in (("backward", "myx", []), ("forward", "m0", []),
                                        ("forward", "full", ["--full-finetune"])):
            argv = ["--direction", direction, "--dataset", "seed", "--alias", alias, "--base", str(tiny_base),
                    *TRAIN_SETTINGS, *extra, *stores]
            code, out, err = call(train.STAGE.main, argv)
            assert code == 0, err[-3000:]
            outputs[alias] = out + err
        yield {"lakehouse": Lakehouse(spark, str(root / "lakehouse")), "stores": stores, "outputs": outputs}


def _version(name, alias):
    from mlflow.tracking import MlflowClient

    return MlflowClient().get_model_version_by_alias(name, alias)


def _run(alias):
    from mlflow.tracking import MlflowClient

    model_version = _version("humpback-backward" if alias == "myx" else "humpback-forward", alias)
    return MlflowClient().get_run(model_version.run_id)


def test_models_are_registered_with_aliases_and_dataset_lineage(trained, tiny_base):
    seed_table = trained["lakehouse"].read("seed")
    n_all, n_train = seed_table.count(), seed_table.where("split = 'train'").count()
    assert n_all > n_train > 0
    for name, alias in (("humpback-backward", "myx"), ("humpback-forward", "m0"), ("humpback-forward", "full")):
        # Forward models train on the whole seed (the paper); the backward model leaves the dev split to its gate.
        n_trained, selection = (n_train, "split = 'train'") if alias == "myx" else (n_all, "all splits")
        version = _version(name, alias)
        assert version.tags["dataset"] == "seed@v0" and version.tags["dataset.version"] == "0"
        assert re.fullmatch(r"[0-9a-f]{64}", version.tags["dataset.sha256"])
        run = _run(alias)
        assert run.data.params["n_examples"] == str(n_trained)
        assert run.data.params["dataset.filter"] == selection
        assert run.data.params["dataset.sha256"] == version.tags["dataset.sha256"]
        assert run.data.params["train.max_length"] == "256" and run.data.params["train.max_steps"] == "2"
        assert run.data.params["base.ref"] == run.data.params["base.pinned_ref"] == str(tiny_base)
        assert re.fullmatch(r"[0-9a-f]{64}", run.data.params["base.fingerprint"])
        assert sum(int(run.data.params[f"truncation.{kind}"]) for kind in train.TRUNCATION_KINDS) == n_trained
        [dataset_input] = run.inputs.dataset_inputs
        assert dataset_input.dataset.name == "seed@v0" and dataset_input.dataset.source_type == "delta_table"
        assert dataset_input.dataset.digest == version.tags["dataset.sha256"][:train.DIGEST_CHARS]
        assert '"delta_table_version": 0' in dataset_input.dataset.source
        input_tags = {tag.key: tag.value for tag in dataset_input.tags}
        assert input_tags["delta.version"] == "0" and input_tags["content_sha256"] == version.tags["dataset.sha256"]
        assert input_tags["delta.path"] == trained["lakehouse"].path("seed")
        assert input_tags["delta.filter"] == selection
    assert "load it with humpback.models.load_model('models:/humpback-forward@m0')" in trained["outputs"]["m0"]


def test_loss_curve_and_throughput_are_logged(trained):
    from mlflow.tracking import MlflowClient

    run = _run("m0")
    history = MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [metric.step for metric in history] == [1, 2]
    assert all(metric.value > 0 for metric in history)
    assert run.data.metrics["train_tokens_per_second"] > 0 and run.data.metrics["steps"] == 2
    assert "'loss'" in trained["outputs"]["m0"]  # the trainer's progress reaches the terminal


def test_backward_gate_metrics_are_logged_and_printed(trained):
    from mlflow.tracking import MlflowClient

    run = _run("myx")
    assert run.data.metrics["gate.n"] == 4
    assert 0 <= run.data.metrics["gate.rougeL_f"] <= 1 and 0 <= run.data.metrics["gate.echo_share"] <= 1
    table = MlflowClient().load_table(run.info.experiment_id, "gate/dev_predictions.json", [run.info.run_id])
    assert list(table.columns) == ["example_id", "reference", "predicted"] and len(table) == 4
    assert _version("humpback-backward", "myx").tags["gate.n"] == "4"
    assert "gate: ROUGE-L F1" in trained["outputs"]["myx"]
    assert "gate.rougeL_f" not in _run("m0").data.metrics


def test_trained_models_are_logged_models_with_their_dataset(trained):
    """Each model is a LoggedModel: its run's output, with the run's parameters, its training metrics on the
    training set (the UI's "Datasets used"), its files, the registered version made from it."""
    import json

    from mlflow.tracking import MlflowClient

    from humpback.prompts import BACKWARD_TEMPLATE_VERSION
    from humpback.tracking import CONTENT_HASH_TAG, PROMPT_NAMES, linked_prompts, logged_model_id

    client = MlflowClient()
    for name, alias in (("humpback-backward", "myx"), ("humpback-forward", "m0"), ("humpback-forward", "full")):
        version, run = _version(name, alias), _run(alias)
        model_id = logged_model_id(version)
        assert version.source == f"models:/{model_id}"
        model = client.get_logged_model(model_id)
        assert (model.name, model.status, model.source_run_id) == (f"{name}-{alias}", "READY", run.info.run_id)
        assert model.model_type == ("backward" if alias == "myx" else "forward")
        assert model.params.items() <= run.data.params.items()  # the run's own, less the stage's settings.*
        assert model.params["dataset.sha256"] == version.tags["dataset.sha256"] and "train.max_steps" in model.params
        assert model.tags["dataset.sha256"] == version.tags["dataset.sha256"] and model.tags["humpback.alias"] == alias
        assert {"name": name, "version": int(version.version)} in json.loads(model.tags["mlflow.modelVersions"])
        assert [output.model_id for output in run.outputs.model_outputs] == [model_id]
        [dataset_input] = run.inputs.dataset_inputs  # the training set, once
        on_dataset = {metric.key for metric in model.metrics
                      if (metric.dataset_name, metric.dataset_digest) == (dataset_input.dataset.name,
                                                                          dataset_input.dataset.digest)}
        assert on_dataset == {"train_tokens_per_second", "tokens_seen", "steps", "final_loss"}
        assert "humpback_model.json" in {item.path for item in client.list_logged_model_artifacts(model_id)}
    backward = client.get_logged_model(logged_model_id(_version("humpback-backward", "myx")))
    assert {metric.key for metric in backward.metrics} >= {"gate.rougeL_f", "gate.echo_share", "gate.n"}
    # the backward model trains on the backward prompt: its run and the model link the registered version
    [(prompt, prompt_version)] = linked_prompts(_run("myx").info.run_id)
    assert prompt == PROMPT_NAMES["backward"]
    assert client.get_prompt_version(prompt, prompt_version).tags[CONTENT_HASH_TAG] == BACKWARD_TEMPLATE_VERSION
    assert json.loads(backward.tags["mlflow.linkedPrompts"]) == [{"name": prompt, "version": prompt_version}]
    assert linked_prompts(_run("m0").info.run_id) == []


def test_the_gate_prints_progress_after_each_batch(trained):
    lines = [line for line in trained["outputs"]["myx"].splitlines() if re.match(r"gate: \d+/", line)]
    assert [line.split(" (")[0] for line in lines] == ["gate: 2/4 examples", "gate: 4/4 examples"]
    assert re.fullmatch(r"gate: 4/4 examples \(100%\), \d+ tokens/s \(\d+ generated/s\), [\d.]+ examples/s, ETA 0s",
                        lines[-1])


def test_gate_batches_of_similar_length_keep_the_prompts_order(tiny_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from humpback.reporting import Progress

    tokenizer, model = AutoTokenizer.from_pretrained(tiny_base), AutoModelForCausalLM.from_pretrained(tiny_base)
    prompts = ["short", "a much longer prompt " * 8, "medium length prompt", "long " * 30]
    one_by_one = [train.generate(model, tokenizer, [prompt], 4, 1, Progress("gate", 1)) for prompt in prompts]
    assert train.generate(model, tokenizer, prompts, 4, 2, Progress("gate", 4)) == [texts[0] for texts in one_by_one]


def test_the_gate_warning_reads_right_alone_and_inside_demo_or_iterate():
    warning = train.gate_warning({"rougeL_f": 0.05, "echo_share": 0.5}, load_config()["gate"])
    assert "ROUGE-L F1 0.050 < gate.min_rougeL_f 0.1" in warning and "prompt echoes 50.0% > gate.max_echo_share 0.2" in warning
    # inside demo or iterate augmentation follows at once: the warning asks for nothing between the stages
    assert "before augmenting" not in warning and "gate/dev_predictions.json" in warning
    assert train.gate_warning({"rougeL_f": 0.3, "echo_share": 0.0}, load_config()["gate"]) is None


@pytest.mark.parametrize("alias", ["m0", "full"])
def test_forward_model_loads_by_alias_and_generates(trained, alias):
    from humpback.models import load_model, resolve_model

    ref = f"models:/humpback-forward@{alias}"
    assert resolve_model(ref).is_adapter == (alias == "m0")
    tokenizer, model = load_model(ref, device="cpu")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is pip?"}], tokenize=False,
                                           add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 3


@pytest.fixture(scope="module")
def training_sets(trained, spark):
    """`training_sets`: version 0 empty, version 1 with set a5 (a seed and an augmented pair)."""
    from humpback.training.sft import SEED_TAG, WEB_TAG

    lakehouse = trained["lakehouse"]
    lakehouse.write(spark.createDataFrame([], SET_COLUMNS), "training_sets")
    rows = [("a5", 1, "k1", "What is pip?", "The installer.", "seed", SEED_TAG),
            ("a5", 1, "k2", "What is a wheel?", "A built package.", "augmented", WEB_TAG)]
    lakehouse.write(spark.createDataFrame(rows, SET_COLUMNS), "training_sets")
    return lakehouse


def test_unknown_or_empty_dataset_fails_in_one_line_before_loading_a_model(trained, training_sets, monkeypatch):
    import humpback.models

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(humpback.models, "load_model", no_model)
    monkeypatch.setattr(humpback.models, "resolve_model", no_model)
    cases = {"a4": "no training set 'a4' in training_sets@v1 (nothing to train on); sets there: a5",
             "a5@0": "no training set 'a5' in training_sets@v0 (nothing to train on); sets there: none",
             "a5@v7": "`training_sets` has versions 0..1, not 7",
             "a5@latest": "--dataset 'a5@latest': the version after @ must be a number, e.g. a5@3"}
    for dataset, message in cases.items():
        code, out, err = call(train.STAGE.main, ["--direction", "forward", "--dataset", dataset, "--alias", "m1",
                                           *trained["stores"]])
        assert (code, out, err) == (2, "", f"humpback train: error: {message}\n")


def test_training_set_rows_keep_their_source_tags_and_digest(training_sets):
    from humpback.training.sft import SEED_TAG, WEB_TAG

    data = train.read_training_data(training_sets, train.parse_dataset("a5"))
    assert data.label == "a5@v1" and [row["example_key"] for row in data.rows] == ["k1", "k2"]
    assert [train.forward_tag(row) for row in data.rows] == [SEED_TAG, WEB_TAG]
    pinned = train.read_training_data(training_sets, train.parse_dataset("a5@v1"))
    assert pinned.sha256 == data.sha256


def test_training_says_what_the_seed_table_holds_and_what_it_trains_on(trained):
    seed_table = trained["lakehouse"].read("seed")
    n_all, n_dev = seed_table.count(), seed_table.where("split = 'dev'").count()
    holds = f"train: seed@v0 holds {n_all} pairs (dev {n_dev}, train {n_all - n_dev}) from 1 file(s); "
    assert holds + f"the forward model trains on all {n_all} pairs (train and dev)" in trained["outputs"]["m0"]
    assert holds + (f"the backward model trains on the {n_all - n_dev} train-split pairs and holds out {n_dev} "
                    "for its gate") in trained["outputs"]["myx"]


def _seed_table(spark, lakehouse, n_rows):
    """A seed of n_rows pairs split by the project's own hash rule (about 10% dev)."""
    from humpback.seeds import example_id, split_for

    pairs = [(f"Question {i}?", f"Answer {i}.") for i in range(n_rows)]
    rows = [(example_id(q, a), q, a, "test", split_for(example_id(q, a)), "test.jsonl") for q, a in pairs]
    lakehouse.write(spark.createDataFrame(rows, "example_id string, instruction string, output string, "
                                                "source string, split string, source_file string"), "seed")


def test_the_batch_rule_counts_the_examples_each_direction_trains_on(spark, tmp_path):
    from humpback.lakehouse import Lakehouse
    from humpback.training.trainer import TrainSettings

    lakehouse = Lakehouse(spark, str(tmp_path / "lakehouse"))
    # 3,100 pairs: the forward model trains on all of them (>= 3,000: batch 32), the backward model on the train
    # split only (about 2,790 < 3,000: batch 8), so the same table gives the two models different batches.
    _seed_table(spark, lakehouse, 3_100)
    settings = TrainSettings()
    forward = train.read_training_data(lakehouse, train.parse_dataset("seed"), "forward")
    backward = train.read_training_data(lakehouse, train.parse_dataset("seed"), "backward")
    n_train = lakehouse.read("seed").where("split = 'train'").count()
    assert forward.n_examples == 3_100 and backward.n_examples == n_train < 3_000
    assert "(3100 examples)" in train.describe_plan(forward, settings, "forward", "base") and \
        "batch 4x8," in train.describe_plan(forward, settings, "forward", "base")
    assert "batch 4x2," in train.describe_plan(backward, settings, "backward", "base")


def test_the_batch_rule_counts_upsampled_copies_of_a_training_set(spark, tmp_path):
    from humpback.lakehouse import Lakehouse
    from humpback.training.sft import SEED_TAG
    from humpback.training.trainer import TrainSettings

    lakehouse = Lakehouse(spark, str(tmp_path / "lakehouse"))
    # 1,600 distinct pairs, each twice (seed_upsample = 2): the model sees 3,200 examples, so batch 32.
    rows = [("up", 1, f"k{i}-{copy}", f"Q{i}?", f"A{i}.", "seed", SEED_TAG) for i in range(1_600) for copy in (1, 2)]
    lakehouse.write(spark.createDataFrame(rows, SET_COLUMNS), "training_sets")
    data = train.read_training_data(lakehouse, train.parse_dataset("up"), "forward")
    assert data.n_examples == 3_200
    assert "batch 4x8," in train.describe_plan(data, TrainSettings(), "forward", "base")


@pytest.fixture
def own_mlflow_store(tmp_path, monkeypatch):
    """A fresh MLflow store for one test; the module's store is pointed at again afterwards."""
    import mlflow

    from humpback.tracking import configure_mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield configure_mlflow(uri)
    configure_mlflow(previous)


def test_training_reads_the_seed_as_it_is_after_a_replace(spark, tmp_path, tiny_base, own_mlflow_store):
    import json

    from humpback.lakehouse import Lakehouse

    uri = own_mlflow_store
    stores = ["--lakehouse", str(tmp_path / "lakehouse"), "--mlflow-uri", uri]
    files = {}
    for name, pairs in (("old", [("What is pip?", "The installer."), ("What is venv?", "Environments.")]),
                        ("new", [("What is uv?", "A fast installer."), ("What is a wheel?", "A built package."),
                                 ("What is an sdist?", "A source archive.")])):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in pairs))
    assert call(seed.STAGE.main, ["--input", str(files["old"]), "--format", "jsonl", *stores])[0] == 0
    assert call(seed.STAGE.main, ["--input", str(files["new"]), "--format", "jsonl", "--replace", *stores])[0] == 0
    code, out, err = call(train.STAGE.main, ["--direction", "forward", "--dataset", "seed", "--alias", "m0", "--base",
                                       str(tiny_base), "--max-steps", "1", "--set", "train.max_length=64",
                                       "--set", "train.batch_size=1", *stores])
    assert code == 0, err[-3000:]
    # The latest version is exactly the new file: none of the old file's pairs are trained on.
    assert "train: seed@v1 holds 3 pairs" in out and "from 1 file(s)" in out
    assert "the forward model trains on all 3 pairs" in out
    assert _run("m0").data.params["n_examples"] == "3"
    lakehouse = Lakehouse(spark, str(tmp_path / "lakehouse"))
    assert {row["source_file"] for row in lakehouse.read("seed").collect()} == {str(files["new"])}


@pytest.mark.parametrize("alias,reason", [("latest", "reserved"), ("LATEST", "reserved"), ("v3", "reserved"),
                                          ("my alias", "alphanumerics"), ("m1@x", "alphanumerics")])
def test_an_alias_the_registry_refuses_fails_before_any_work(spark, tmp_path, own_mlflow_store, monkeypatch, alias,
                                                             reason):
    """MLflow refuses `latest`, `v<N>` and odd characters: told in one line before data, model or training."""
    import humpback.models
    from humpback.lakehouse import Lakehouse

    def no_model(*args, **kwargs):
        raise AssertionError("a model was resolved or loaded")

    monkeypatch.setattr(humpback.models, "load_model", no_model)
    monkeypatch.setattr(humpback.models, "resolve_model", no_model)
    _seed_table(spark, Lakehouse(spark, str(tmp_path / "lakehouse")), 6)
    code, out, err = call(train.STAGE.main, ["--direction", "forward", "--dataset", "seed", "--alias", alias,
                                       "--lakehouse", str(tmp_path / "lakehouse"), "--mlflow-uri", own_mlflow_store])
    assert code == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith(f"humpback train: error: --alias {alias!r}") and reason in err, err
    from mlflow.tracking import MlflowClient

    assert MlflowClient().search_model_versions() == []  # no unaliased version left behind


def test_an_unreachable_registry_fails_before_any_work(spark, tmp_path, own_mlflow_store, monkeypatch):
    import time

    import humpback.models
    from humpback.lakehouse import Lakehouse

    def no_model(*args, **kwargs):
        raise AssertionError("a model was resolved or loaded")

    monkeypatch.setattr(humpback.models, "load_model", no_model)
    monkeypatch.setattr(humpback.models, "resolve_model", no_model)
    _seed_table(spark, Lakehouse(spark, str(tmp_path / "lakehouse")), 6)
    started = time.monotonic()
    code, out, err = call(train.STAGE.main, ["--direction", "forward", "--dataset", "seed", "--alias", "m0",
                                       "--lakehouse", str(tmp_path / "lakehouse"),
                                       "--mlflow-uri", "http://127.0.0.1:9"])  # nothing listens on port 9
    assert code == 2 and err.count("\n") == 1, err
    assert "at http://127.0.0.1:9 cannot be reached" in err and time.monotonic() - started < 60
