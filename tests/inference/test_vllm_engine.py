"""The vLLM engine: its arguments and bookkeeping without vllm (a stand-in LLM), the clear error when the `gpu`
extra is missing, and a real run where CUDA and vllm are both present."""
import importlib.util
import json
import math
import sys
from types import SimpleNamespace

import pytest

from humpback.inference.base import EngineSpec, Request, Sampling, build_engine
from humpback.inference.vllm_engine import (
    GPU_EXTRA_MESSAGE,
    VllmEngine,
    adapter_rank,
    llm_arguments,
    model_paths,
    vllm_lora_rank,
)
from humpback.models import ResolvedModel
from humpback.prompts import SCORE_PREFIX, SCORE_TOKENS, rating_prompt

EMBEDDED = "embedded:smollm2-135m-instruct"


def ask(text: str, prefix: str = "") -> Request:
    return Request(messages=({"role": "user", "content": text},), assistant_prefix=prefix)


def test_without_vllm_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if the `gpu` extra were not installed
    with pytest.raises(ImportError, match=r"needs the `gpu` extra: pip install humpback\[gpu\]"):
        build_engine(EngineSpec(kind="vllm", model_ref=EMBEDDED))
    assert GPU_EXTRA_MESSAGE == "the vllm engine needs the `gpu` extra: pip install humpback[gpu]"


def full_model(path="/models/base") -> ResolvedModel:
    return ResolvedModel(ref="base", kind="local", path=path)


def test_a_full_model_is_loaded_directly():
    assert model_paths(full_model()) == ("/models/base", None)
    arguments = llm_arguments(EngineSpec(kind="vllm", model_ref="base"), "/models/base", None)
    assert arguments["model"] == "/models/base"
    assert arguments["enable_prefix_caching"] is True
    assert arguments["gpu_memory_utilization"] == 0.85
    assert "enable_lora" not in arguments and "max_model_len" not in arguments


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


def test_an_adapter_over_an_adapter_is_refused():
    inner = ResolvedModel(ref="inner", kind="local", path="/a", base=full_model())
    with pytest.raises(ValueError, match="merge"):
        model_paths(ResolvedModel(ref="outer", kind="local", path="/b", base=inner))


def test_lora_rank_comes_from_the_adapter_config(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 16, "rank_pattern": {"q_proj": 96}}))
    assert adapter_rank(str(tmp_path)) == 96
    assert vllm_lora_rank(96) == 128 and vllm_lora_rank(16) == 16 and vllm_lora_rank(1) == 8


# ----- bookkeeping, with a stand-in for vllm.LLM -----

class StandInLLM:
    """Answers like vllm.LLM.generate: one output per prompt; logprobs favour '4' after a space."""

    def __init__(self, tokenizer, max_model_len=8192, fail_on=None):
        self.tokenizer = tokenizer
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=max_model_len))
        self.fail_on = fail_on
        self.calls = []
        self.space = tokenizer(" ", add_special_tokens=False)["input_ids"][0]
        self.digit = {d: tokenizer(d, add_special_tokens=False)["input_ids"][0] for d in SCORE_TOKENS}

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        self.calls.append((prompts, params, lora_request))
        if any(prompt["prompt_token_ids"] == self.fail_on for prompt in prompts):
            raise RuntimeError("engine failure")
        return [self._answer(prompt["prompt_token_ids"], params) for prompt in prompts]

    def _answer(self, ids, params):
        if params.kwargs.get("logprobs"):
            top = ({self.digit["4"]: math.log(0.7), self.digit["5"]: math.log(0.3)} if ids[-1] == self.space
                   else {self.space: math.log(0.9), self.digit["3"]: math.log(0.05)})
            logprobs = [{token: SimpleNamespace(logprob=value) for token, value in top.items()}]
            outputs = [SimpleNamespace(text="x", token_ids=[1], logprobs=logprobs)]
        else:
            outputs = [SimpleNamespace(text=f"answer to {len(ids)} tokens", token_ids=[7, 8, 9], logprobs=None)
                       for _ in range(params.kwargs["n"])]
        return SimpleNamespace(prompt_token_ids=ids, outputs=outputs)


class StandInSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@pytest.fixture(scope="module")
def tokenizer(embedded_model_dir):
    from humpback.models import load_tokenizer

    return load_tokenizer(EMBEDDED)


def stand_in_engine(tokenizer, **settings) -> VllmEngine:
    llm = StandInLLM(tokenizer, **settings)
    return VllmEngine(EMBEDDED, llm, SimpleNamespace(SamplingParams=StandInSamplingParams), lora_request="lora")


def test_generate_sends_token_ids_with_the_lora_and_keeps_the_order(tokenizer):
    engine = stand_in_engine(tokenizer)
    sampling = Sampling(temperature=0.7, top_p=0.9, max_new_tokens=32, seed=3, n=2)
    results = engine.generate([ask("short"), ask("a somewhat longer question here")], sampling)
    prompts, params, lora = engine.llm.calls[0]
    assert lora == "lora" and len(prompts) == 2
    assert params.kwargs == {"n": 2, "temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "seed": 3}
    assert [r.texts for r in results] == [[f"answer to {r.prompt_tokens} tokens"] * 2 for r in results]
    assert results[0].prompt_tokens < results[1].prompt_tokens and results[0].completion_tokens == 6


def test_generate_failures_stay_on_their_rows(tokenizer):
    from humpback.inference.transformers_engine import encode_request

    bad = ask("this one breaks the engine")
    engine = stand_in_engine(tokenizer, max_model_len=60, fail_on=encode_request(tokenizer, bad))
    results = engine.generate([ask("fine"), bad, ask("word " * 80)], Sampling(temperature=0.0, max_new_tokens=8, n=2))
    assert results[0].error is None and len(results[0].texts) == 2
    assert results[1].error == "RuntimeError: engine failure"
    assert results[2].error.startswith("prompt too long: ") and results[2].error.endswith("tokens > 52")
    assert engine.llm.calls[0][1].kwargs["n"] == 1  # greedy: one decode, repeated


def test_next_token_probs_reads_both_positions_through_the_space(tokenizer):
    engine = stand_in_engine(tokenizer)
    scores = engine.next_token_probs([ask("Rate A.", SCORE_PREFIX), ask("Rate B, longer.", SCORE_PREFIX)],
                                     SCORE_TOKENS)
    prompts, params, _ = engine.llm.calls[0]
    assert params.kwargs == {"max_tokens": 1, "temperature": 0.0, "logprobs": 20}
    assert len(prompts) == 4 and prompts[1]["prompt_token_ids"][-1] == engine.llm.space
    for score in scores:
        # P(4) = 0.9 * 0.7, P(5) = 0.9 * 0.3, P(3) = 0.05, renormalized
        assert score.probs["4"] == pytest.approx(0.63 / 0.95)
        assert score.probs["3"] == pytest.approx(0.05 / 0.95)
        assert score.candidate_mass == pytest.approx(0.95)


# ----- for real, where a GPU and vllm are both present -----

def gpu_and_vllm() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_and_vllm(), reason="needs a CUDA GPU and vllm (the `gpu` extra)")
def test_vllm_engine_on_the_embedded_model(embedded_model_dir):
    engine = build_engine(EngineSpec(kind="vllm", model_ref=EMBEDDED, options=(
        ("gpu_memory_utilization", 0.3), ("max_model_len", 2048), ("enforce_eager", True))))
    try:
        generations = engine.generate([ask("What is the capital of France?"), ask("Name a color."),
                                       ask("word " * 3000)], Sampling(temperature=0.0, max_new_tokens=16))
        assert all(g.error is None and g.texts[0].strip() for g in generations[:2])
        assert generations[2].error.startswith("prompt too long")
        pairs = [("What is 2+2?", "2+2 equals 4."), ("Who wrote Hamlet?", "Buy cheap shoes here!")]
        scores = engine.next_token_probs([ask(rating_prompt(*pair), SCORE_PREFIX) for pair in pairs], SCORE_TOKENS)
        for score in scores:
            assert score.error is None and sum(score.probs.values()) == pytest.approx(1.0, abs=1e-6)
            assert score.prompt_tokens > 100
    finally:
        engine.close()
