"""The settings the code reads beyond those conf/defaults.toml lists, declared once.

conf/defaults.toml is the schema: each of its keys takes values of its default's type. extra_settings() adds the
sections and keys that are optional there (engine options, every TrainSettings field); its types win over a
default's (cpu_kvcache_space's default is written as an int). humpback.config checks every settings file and `--set`
against both.
A schema entry is a type (int, float, bool, str, list), a section ({key: entry}), or `dict`: a free table.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

# Engine options, each read by its engine's from_spec: an [inference.<engine>] table, or [inference] for all engines.
TRANSFORMERS_OPTIONS = {"batch_size": int, "device": str, "max_prompt_tokens": int, "prefix_cache": bool,
                        "cpu_threads": int}
VLLM_OPTIONS = {  # humpback/inference/vllm_engine.py llm_arguments and from_spec
    "gpu_memory_utilization": float, "enable_prefix_caching": bool, "cpu_kvcache_space": float, "dtype": str,
    "enforce_eager": bool, "enable_chunked_prefill": bool, "max_num_seqs": int, "max_num_batched_tokens": int,
    "max_model_len": int, "max_lora_rank": int, "tensor_parallel_size": int, "seed": int, "max_logprobs": int,
    "max_prompt_tokens": int, "cpu_cores": int,
}
OPENAI_OPTIONS = {"base_url": str, "served_model": str, "api_key": str, "concurrency": int, "max_retries": int,
                  "timeout_s": float, "backoff_s": float, "top_logprobs": int, "prefix_mode": str,
                  "choice_constraint": bool}


def toml_type(annotation: Any) -> type:
    """The TOML type for a dataclass field: a None-able field takes its other type (TOML has no null), a tuple a list."""
    if isinstance(annotation, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    base = typing.get_origin(annotation) or annotation
    return list if base is tuple else base


def train_fields() -> dict[str, type]:
    from humpback.training.settings import TrainSettings

    hints = typing.get_type_hints(TrainSettings)
    return {field.name: toml_type(hints[field.name]) for field in dataclasses.fields(TrainSettings)}


def extra_settings() -> dict[str, Any]:
    return {
        "spark": {"conf": dict},  # Spark's own settings, passed on as they are (humpback.spark.session_settings)
        "inference": {
            # engine_spec hands every [inference] key but the scheduling ones to whichever engine runs
            **TRANSFORMERS_OPTIONS, **OPENAI_OPTIONS, **VLLM_OPTIONS,
            "fail_after_rows": int,  # fails the job after N rows: how the tests check that a killed job resumes
            "transformers": TRANSFORMERS_OPTIONS, "vllm": VLLM_OPTIONS, "openai": OPENAI_OPTIONS,
        },
        "train": train_fields(),
    }
