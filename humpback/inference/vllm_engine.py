"""The vLLM engine: the production path on GPUs (the `gpu` extra) and on CPUs (vLLM's CPU build, `make setup`).

One `vllm.LLM` per engine, loaded with automatic prefix caching, so the rating rubric every prompt starts with
is computed once and reused across the batch. A PEFT LoRA adapter (humpback.models.resolve_model gives its base)
becomes a `LoRARequest` over its full base model; a full or merged model is loaded as is. One engine serves one
adapter, or none: every request of every call carries the engine's own `lora_request`, so base and LoRA requests
never share a batch (on CPU, vLLM 0.32 applies the adapter to every request of a batch that mixes them).
Prompts are rendered and tokenized here, exactly as the transformers engine does, and given to vLLM as token ids:
a text prompt would get a second BOS from the tokenizer on templates that write their own.

generate passes every request of the call to `LLM.generate` at once (vLLM batches continuously inside). Sampled
generation sends one vLLM request per sample, n=1, seeded with that sample's own seed
(humpback.inference.seeding.request_seeds: the row's seed, else the run's seed and the row's place), so a row's
text does not depend on what it was batched with; greedy sends one request per row and repeats it n times.
Each sample's finish reason is kept ("length" when the token budget cut it, else "stop"). If the call fails,
the rows are retried one at a time so that only the failing row gets the error.

next_token_probs reads the exact log-probabilities of the candidates' tokens (`logprob_token_ids`: the
full-vocabulary log-softmax at the named ids, not a top-k list, so no candidate is ever missing); with
tokenizers that spell " 4" as a space then "4" (SmolLM2), the prompt plus the space token is sent too (it shares
the whole cached prefix) and the two distributions are combined by the chain rule (rating.candidate_mass), the
same arithmetic as the transformers engine, so both engines give the same scores.

Options (EngineSpec.options, from config [inference] and [inference.vllm]):
  dtype            CPU: bfloat16 where the CPU has it (AVX-512 BF16 or AMX), else float32; GPU: auto
  enforce_eager    CPU: true (a compiled start takes minutes); GPU: false
  enable_chunked_prefill  CPU: false (vLLM 0.32's CPU sampler crashes on a seeded request whose prefill is
                   split: "CPU Generator does not use offset"); GPU: vLLM's default
  max_num_seqs, max_num_batched_tokens, max_model_len, tensor_parallel_size (1), seed (0), max_logprobs (20),
  enable_prefix_caching (true), max_prompt_tokens (like the transformers engine's), max_lora_rank (default: the
                   adapter's rank rounded up to one vLLM accepts)
  cpu_kvcache_space  CPU: GiB of KV cache (1); the VLLM_CPU_KVCACHE_SPACE environment variable wins when set.
                   On CPU vLLM reads gpu_memory_utilization as a share of host memory (0.85 asks for most of it).
  cpu_cores        CPU: cores for this engine; the engine claims a free set of that many (a lock file per set,
                   held while the process lives) and binds vLLM's threads to it (VLLM_CPU_OMP_THREADS_BIND), so
                   engines of parallel Spark tasks on one machine never share a core. A VLLM_CPU_OMP_THREADS_BIND
                   in the environment wins. Without cpu_cores vLLM binds itself (on x86: all cores but one).
  gpu_memory_utilization  GPU: share of the GPU's memory (0.85)
"""
from __future__ import annotations

import fcntl
import gc
import json
import math
import multiprocessing
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from humpback.inference.base import (
    LENGTH,
    STOP,
    EngineSpec,
    Generation,
    Request,
    Sampling,
    TokenScores,
)
from humpback.inference.rating import CandidateSpellings, candidate_mass, renormalize
from humpback.inference.seeding import request_seeds
from humpback.inference.transformers_engine import (
    as_flag,
    encode_rows,
    error_text,
    tokenizer_spellings,
    with_row_fallback,
)
from humpback.models import ResolvedModel, resolve_model

GPU_EXTRA_MESSAGE = ("the vllm engine needs vLLM: on a CUDA machine pip install humpback[gpu]; on a CPU with "
                     "AVX-512 `make setup` installs vLLM's CPU build")
ADAPTER_NAME = "humpback-adapter"
# vLLM accepts only these LoRA ranks as max_lora_rank; an adapter's rank is rounded up to the next one.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 512)
DEFAULT_LORA_RANK = 16
DEFAULT_CPU_KVCACHE_GIB = 1
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")
# Lock files, one per core: a process that holds one owns that core for its vLLM engine (HUMPBACK_CORE_LOCKS moves
# the folder: engines that should not see each other's claims use different folders).
DEFAULT_CORE_LOCKS = Path(tempfile.gettempdir()) / "humpback-vllm-cores"


class EngineStartError(ValueError):
    """vLLM cannot serve this model (or adapter) with these settings: one line that says why."""


def import_vllm():
    """The vllm module and its LoRARequest class, or an ImportError that says how to install them."""
    # No usage statistics leave the machine, and vLLM's per-weight INFO/WARNING lines stay out of the job's log
    # (the user's own settings win).
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError as error:
        raise ImportError(GPU_EXTRA_MESSAGE) from error
    return vllm, LoRARequest


def on_cpu() -> bool:
    """Whether the installed vLLM runs on the CPU (its CPU build, or no GPU it can use)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_has_bf16() -> bool:
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


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


def llm_arguments(spec: EngineSpec, base_path: str, adapter_path: str | None, cpu: bool = False) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` from the spec's options, with the defaults that work on this device."""
    arguments: dict[str, Any] = {
        "model": base_path,
        "enable_prefix_caching": as_flag(spec.option("enable_prefix_caching", True)),
        "tensor_parallel_size": int(spec.option("tensor_parallel_size", 1)),
        "dtype": spec.option("dtype") or (("bfloat16" if cpu_has_bf16() else "float32") if cpu else "auto"),
        "seed": int(spec.option("seed", 0)),
        "max_logprobs": int(spec.option("max_logprobs", 20)),
        "enforce_eager": as_flag(spec.option("enforce_eager", cpu)),
    }
    if cpu:
        arguments["enable_chunked_prefill"] = as_flag(spec.option("enable_chunked_prefill", False))
        space = float(spec.option("cpu_kvcache_space") or DEFAULT_CPU_KVCACHE_GIB)
        arguments["kv_cache_memory_bytes"] = int(space * 2 ** 30)  # VLLM_CPU_KVCACHE_SPACE, when set, wins
    else:
        arguments["gpu_memory_utilization"] = float(spec.option("gpu_memory_utilization", 0.85))
        if spec.option("enable_chunked_prefill") is not None:
            arguments["enable_chunked_prefill"] = as_flag(spec.option("enable_chunked_prefill"))
    for name in ("max_model_len", "max_num_seqs", "max_num_batched_tokens"):
        if spec.option(name):
            arguments[name] = int(spec.option(name))
    if adapter_path is not None:
        rank = adapter_rank(adapter_path)
        limit = int(spec.option("max_lora_rank") or vllm_lora_rank(rank))
        if rank > limit:
            raise EngineStartError(f"the LoRA adapter {adapter_path} has rank {rank}, above the engine's "
                                   f"max_lora_rank {limit}: raise [inference.vllm] max_lora_rank to "
                                   f"{vllm_lora_rank(rank)} or leave it unset")
        arguments.update(enable_lora=True, max_loras=1, max_lora_rank=limit)
    return arguments


def check_loadable(ref: str, base_path: str, supported: set[str]) -> None:
    """One clear line, before any process starts, for a model folder vLLM cannot load."""
    folder = Path(base_path)
    if not folder.is_dir():
        return  # a hub id: vLLM resolves it itself (offline: from the local cache)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise EngineStartError(f"vLLM cannot load {ref!r}: no readable config.json in {folder} ({error})") from None
    architectures = config.get("architectures") or []
    if not any(name in supported for name in architectures):
        raise EngineStartError(f"vLLM cannot load {ref!r}: its architecture {architectures or 'unknown'} is not one "
                               "this vLLM supports; use --engine transformers")
    if not any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise EngineStartError(f"vLLM cannot load {ref!r}: no weights (*.safetensors, *.bin) in {folder}")


# ----- CPU cores per engine

_held_cores: dict[str, list] = {}  # core list -> its cores' open lock files, while this process's engine uses them


def claim_cores(per_engine: int, available: Sequence[int] | None = None) -> str | None:
    """A core list ("0,1") of `per_engine` cores none of which another live process holds, claimed until
    release_cores (a lock file per core; a dead process's locks go with it); None when no such set is free
    (then the engine shares cores rather than fail)."""
    cores = sorted(available if available is not None else os.sched_getaffinity(0))
    per_engine = max(1, min(int(per_engine), len(cores)))
    locks = Path(os.environ.get("HUMPBACK_CORE_LOCKS") or DEFAULT_CORE_LOCKS)
    locks.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(cores) - per_engine + 1, per_engine):
        chosen = cores[start:start + per_engine]
        key = ",".join(map(str, chosen))
        if key in _held_cores:
            return key
        handles = []
        for core in chosen:
            handle = open(locks / f"core-{core}.lock", "a")  # noqa: SIM115 - held open while claimed
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                break
            handles.append(handle)
        if len(handles) == len(chosen):
            _held_cores[key] = handles
            return key
        for handle in handles:
            handle.close()  # closing a file drops its lock
    return None


def release_cores(chosen: str | None) -> None:
    for handle in _held_cores.pop(chosen, []) if chosen else []:
        handle.close()


class VllmEngine:
    kind = "vllm"

    def __init__(self, model_ref: str, llm, vllm_module, lora_request=None, max_prompt_tokens: int | None = None,
                 cores: str | None = None):
        self.model_ref = model_ref
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.lora_request = lora_request
        self.max_prompt_tokens = int(max_prompt_tokens) if max_prompt_tokens else None
        self.max_model_len = llm.llm_engine.model_config.max_model_len
        self.cores = cores
        self._sampling_params = vllm_module.SamplingParams

    @classmethod
    def from_spec(cls, spec: EngineSpec) -> VllmEngine:
        vllm, lora_request_class = import_vllm()
        base_path, adapter_path = model_paths(resolve_model(spec.model_ref))
        check_loadable(spec.model_ref, base_path, set(vllm.ModelRegistry.get_supported_archs()))
        cpu = on_cpu()
        arguments = llm_arguments(spec, base_path, adapter_path, cpu=cpu)
        cores = None
        if cpu and spec.option("cpu_cores") and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            cores = claim_cores(int(spec.option("cpu_cores")))
        try:
            if cores is not None:
                os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cores  # read when the engine's worker starts
            llm = vllm.LLM(**arguments)
        except Exception as error:  # noqa: BLE001 - the engine's own log (stderr) has the details
            release_cores(cores)
            raise EngineStartError(f"vLLM could not start {spec.model_ref!r} ({base_path}): "
                                   f"{error_text(error).splitlines()[0]}") from error
        finally:
            if cores is not None:
                os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)
        lora = lora_request_class(ADAPTER_NAME, 1, adapter_path) if adapter_path else None
        return cls(spec.model_ref, llm, vllm, lora_request=lora, max_prompt_tokens=spec.option("max_prompt_tokens"),
                   cores=cores)

    def prompt_limit(self, new_tokens: int) -> int:
        """Most prompt tokens a request may have, leaving room for `new_tokens`."""
        limit = self.max_model_len - new_tokens
        return min(limit, self.max_prompt_tokens) if self.max_prompt_tokens else limit

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        encoded = encode_rows(self.tokenizer, requests, self.prompt_limit(sampling.max_new_tokens), results, Generation)
        runnable = [i for i, ids in enumerate(encoded) if ids is not None]
        sampled = sampling.temperature > 0
        per_row = sampling.n if sampled else 1  # greedy samples are all the same: decode once
        seeds = request_seeds(requests, sampling.seed, sampling.n) if sampled else [[] for _ in requests]
        greedy = self._sampling_params(n=1, temperature=0.0, max_tokens=sampling.max_new_tokens)

        def params(seed: int):
            return self._sampling_params(n=1, temperature=sampling.temperature, top_p=sampling.top_p,
                                         max_tokens=sampling.max_new_tokens, seed=seed)

        def run(rows: list[int]) -> list[Generation]:
            prompts = [encoded[i] for i in rows for _ in range(per_row)]
            settings = [params(seed) for i in rows for seed in seeds[i]] if sampled else greedy
            outputs = iter(self._run(prompts, settings))
            generations = []
            for i in rows:
                choices = [next(outputs).outputs[0] for _ in range(per_row)]
                repeat = sampling.n // per_row
                generations.append(Generation(
                    texts=[choice.text for choice in choices] * repeat,
                    finish_reasons=[LENGTH if choice.finish_reason == LENGTH else STOP for choice in choices] * repeat,
                    seeds=list(seeds[i]), prompt_tokens=len(encoded[i]),
                    completion_tokens=sum(len(choice.token_ids) for choice in choices)))
            return generations

        answers = with_row_fallback(runnable, run, lambda i, error: Generation(
            prompt_tokens=len(encoded[i]), error=error_text(error)))
        for i, answer in zip(runnable, answers):
            results[i] = answer
        return results

    def next_token_probs(self, requests: Sequence[Request], candidates: Sequence[str]) -> list[TokenScores]:
        results: list[TokenScores | None] = [None] * len(requests)
        spellings = [tokenizer_spellings(self.tokenizer, tuple(candidates), request.assistant_prefix)
                     for request in requests]
        encoded = encode_rows(self.tokenizer, requests, self.prompt_limit(2), results, TokenScores)
        runnable = [i for i, ids in enumerate(encoded) if ids is not None]

        def run(rows: list[int]) -> list[TokenScores]:
            prompts, settings = [], []
            for i in rows:
                # the exact log-probabilities of every token a candidate can be spelled with, at both positions
                read = self._sampling_params(max_tokens=1, temperature=0.0,
                                             logprob_token_ids=sorted(spellings[i].tokens()))
                for prompt in _scoring_prompts(encoded[i], spellings[i]):
                    prompts.append(prompt)
                    settings.append(read)
            distributions = iter([_first_position_probs(output) for output in self._run(prompts, settings)])
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
        """One LLM.generate call; every request carries this engine's adapter (or none): one adapter per batch."""
        if self.llm is None:
            raise RuntimeError("the vLLM engine is closed")
        return self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params,
                                 lora_request=self.lora_request, use_tqdm=False)

    def close(self) -> None:
        """Stop vLLM's engine processes and free the model's memory (and this engine's cores)."""
        llm, self.llm = self.llm, None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # noqa: BLE001, S110 - already stopped (or died): nothing left to free
                pass
            del llm
            gc.collect()
            multiprocessing.active_children()  # reaps the engine's exited processes (no zombies left behind)
        release_cores(self.cores)
        self.cores = None


def _scoring_prompts(ids: list[int], spelling: CandidateSpellings) -> list[list[int]]:
    """The prompt, and the prompt plus the bridge token when the candidates are spelled through one."""
    return [ids] if spelling.bridge is None else [ids, [*ids, spelling.bridge]]


def _first_position_probs(output) -> dict[int, float]:
    """{token id: probability} of the tokens vLLM reported for the first generated position."""
    first = output.outputs[0].logprobs[0]
    return {token: math.exp(entry.logprob) for token, entry in first.items()}
