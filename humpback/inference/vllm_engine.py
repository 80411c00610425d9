"""The vLLM engine: the production path on GPUs (the `gpu` extra; vllm is imported only when one is built).

One `vllm.LLM` per engine, loaded with automatic prefix caching, so the rating rubric every prompt starts with
is computed once and reused across the batch. A PEFT LoRA adapter (humpback.models.resolve_model gives its base)
becomes a `LoRARequest` over its full base model, sent with every call; a full or merged model is loaded as is.
Prompts are rendered and tokenized here, exactly as the transformers engine does, and given to vLLM as token ids:
a text prompt would get a second BOS from the tokenizer on templates that write their own.

generate passes every request of the call to `LLM.generate` at once (vLLM batches continuously inside); each
request is seeded with `sampling.seed`, so its samples do not depend on what it was batched with. If the call
fails, the rows are retried one at a time so that only the failing row gets the error.

next_token_probs asks for one greedy token with `logprobs` (the top `max_logprobs`, default 20) and reads the
first position; with tokenizers that spell " 4" as a space then "4" (SmolLM2), the prompt plus the space token
is sent too (it shares the whole cached prefix) and the two distributions are combined by the chain rule
(rating.candidate_mass). Candidate tokens outside the top list count as 0.

Options: gpu_memory_utilization (0.85), enable_prefix_caching (true), max_model_len, tensor_parallel_size (1),
dtype (auto), seed (0), max_logprobs (20), enforce_eager (false).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from humpback.inference.base import (
    EngineSpec,
    Generation,
    Request,
    Sampling,
    TokenScores,
)
from humpback.inference.rating import CandidateSpellings, candidate_mass, renormalize
from humpback.inference.transformers_engine import (
    as_flag,
    encode_rows,
    error_text,
    tokenizer_spellings,
    with_row_fallback,
)
from humpback.models import ResolvedModel, resolve_model

GPU_EXTRA_MESSAGE = "the vllm engine needs the `gpu` extra: pip install humpback[gpu]"
ADAPTER_NAME = "humpback-adapter"
# vLLM accepts only these LoRA ranks as max_lora_rank; an adapter's rank is rounded up to the next one.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 512)
DEFAULT_LORA_RANK = 16


def import_vllm():
    """The vllm module and its LoRARequest class, or an ImportError that says how to install them."""
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError as error:
        raise ImportError(GPU_EXTRA_MESSAGE) from error
    return vllm, LoRARequest


def model_paths(resolved: ResolvedModel) -> tuple[str, str | None]:
    """(full model folder for vLLM to load, LoRA adapter folder or None)."""
    if not resolved.is_adapter:
        return resolved.path, None
    if resolved.base.is_adapter:
        raise ValueError(f"{resolved.ref!r} is an adapter over another adapter; vLLM applies one LoRA adapter "
                         "over a full model: merge the chain into a full model first")
    return resolved.base.path, resolved.path


def adapter_rank(adapter_path: str) -> int:
    """The largest LoRA rank in a PEFT adapter's config (its `r` and any per-module `rank_pattern`)."""
    try:
        config = json.loads(Path(adapter_path, "adapter_config.json").read_text())
    except FileNotFoundError:
        return DEFAULT_LORA_RANK
    ranks = [int(config.get("r") or DEFAULT_LORA_RANK), *map(int, (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_lora_rank(rank: int) -> int:
    return next((allowed for allowed in VLLM_LORA_RANKS if allowed >= rank), rank)


def llm_arguments(spec: EngineSpec, base_path: str, adapter_path: str | None) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` from the spec's options."""
    arguments: dict[str, Any] = {
        "model": base_path,
        "enable_prefix_caching": as_flag(spec.option("enable_prefix_caching", True)),
        "gpu_memory_utilization": float(spec.option("gpu_memory_utilization", 0.85)),
        "tensor_parallel_size": int(spec.option("tensor_parallel_size", 1)),
        "dtype": spec.option("dtype", "auto"),
        "seed": int(spec.option("seed", 0)),
        "max_logprobs": int(spec.option("max_logprobs", 20)),
        "enforce_eager": as_flag(spec.option("enforce_eager", False)),
    }
    if spec.option("max_model_len"):
        arguments["max_model_len"] = int(spec.option("max_model_len"))
    if adapter_path is not None:
        arguments.update(enable_lora=True, max_loras=1, max_lora_rank=vllm_lora_rank(adapter_rank(adapter_path)))
    return arguments


class VllmEngine:
    kind = "vllm"

    def __init__(self, model_ref: str, llm, vllm_module, lora_request=None, max_logprobs: int = 20):
        self.model_ref = model_ref
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.lora_request = lora_request
        self.max_logprobs = int(max_logprobs)
        self.max_model_len = llm.llm_engine.model_config.max_model_len
        self._sampling_params = vllm_module.SamplingParams

    @classmethod
    def from_spec(cls, spec: EngineSpec) -> VllmEngine:
        vllm, lora_request_class = import_vllm()
        # CUDA must not be initialised in a forked worker (Spark's python workers fork): vLLM's own workers spawn.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        base_path, adapter_path = model_paths(resolve_model(spec.model_ref))
        arguments = llm_arguments(spec, base_path, adapter_path)
        llm = vllm.LLM(**arguments)
        lora = lora_request_class(ADAPTER_NAME, 1, adapter_path) if adapter_path else None
        return cls(spec.model_ref, llm, vllm, lora_request=lora, max_logprobs=arguments["max_logprobs"])

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        limit = self.max_model_len - sampling.max_new_tokens
        encoded = encode_rows(self.tokenizer, requests, limit, results, Generation)
        runnable = [i for i, ids in enumerate(encoded) if ids is not None]
        sampled = sampling.temperature > 0
        per_row = sampling.n if sampled else 1  # greedy samples are all the same: decode once
        params = self._sampling_params(n=per_row, temperature=sampling.temperature,
                                       top_p=sampling.top_p if sampled else 1.0,
                                       max_tokens=sampling.max_new_tokens, seed=sampling.seed)

        def run(rows: list[int]) -> list[Generation]:
            outputs = self._run([encoded[i] for i in rows], params)
            return [Generation(texts=[choice.text for choice in output.outputs] * (sampling.n // per_row),
                               prompt_tokens=len(output.prompt_token_ids),
                               completion_tokens=sum(len(choice.token_ids) for choice in output.outputs))
                    for output in outputs]

        answers = with_row_fallback(runnable, run, lambda i, error: Generation(
            prompt_tokens=len(encoded[i]), error=error_text(error)))
        for i, answer in zip(runnable, answers):
            results[i] = answer
        return results

    def next_token_probs(self, requests: Sequence[Request], candidates: Sequence[str]) -> list[TokenScores]:
        results: list[TokenScores | None] = [None] * len(requests)
        spellings = [tokenizer_spellings(self.tokenizer, tuple(candidates), request.assistant_prefix)
                     for request in requests]
        encoded = encode_rows(self.tokenizer, requests, self.max_model_len - 2, results, TokenScores)
        runnable = [i for i, ids in enumerate(encoded) if ids is not None]
        params = self._sampling_params(max_tokens=1, temperature=0.0, logprobs=self.max_logprobs)

        def run(rows: list[int]) -> list[TokenScores]:
            prompts = [prompt for i in rows for prompt in _scoring_prompts(encoded[i], spellings[i])]
            distributions = iter([_first_position_probs(output) for output in self._run(prompts, params)])
            scores = []
            for i in rows:
                next_probs = next(distributions)
                after_bridge = next(distributions) if spellings[i].bridge is not None else None
                probs, mass = renormalize(candidate_mass(spellings[i], next_probs, after_bridge))
                scores.append(TokenScores(probs=probs, prompt_tokens=len(encoded[i]), candidate_mass=mass))
            return scores

        answers = with_row_fallback(runnable, run, lambda i, error: TokenScores(
            prompt_tokens=len(encoded[i]), error=error_text(error)))
        for i, answer in zip(runnable, answers):
            results[i] = answer
        return results

    def _run(self, prompts: list[list[int]], params) -> list:
        return self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params,
                                 lora_request=self.lora_request, use_tqdm=False)

    def close(self) -> None:
        self.llm = None  # vLLM frees the GPU when its engine is garbage-collected


def _scoring_prompts(ids: list[int], spelling: CandidateSpellings) -> list[list[int]]:
    """The prompt, and the prompt plus the bridge token when the candidates are spelled through one."""
    return [ids] if spelling.bridge is None else [ids, [*ids, spelling.bridge]]


def _first_position_probs(output) -> dict[int, float]:
    """{token id: probability} of the top tokens vLLM reported for the first generated position."""
    top = output.outputs[0].logprobs[0]
    return {token: math.exp(entry.logprob) for token, entry in top.items()}

