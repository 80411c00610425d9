"""The paper's benchmarks (SIQA, PIQA, ARC-Easy, ARC-Challenge, OpenBookQA, MMLU) with lm-evaluation-harness.

Zero-shot, scored by answer log-likelihood as in the paper (section 4.6). lm-eval is the optional extra `eval`
(`pip install 'humpback[eval]'`). Nothing is ever downloaded: Hugging Face datasets and hub run offline, and a
benchmark whose data is not already in the local cache is skipped. Each reason to skip is one printed line.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# our benchmark name -> lm-eval task name
PAPER_BENCHMARKS = {"siqa": "social_iqa", "piqa": "piqa", "arc_easy": "arc_easy", "arc_challenge": "arc_challenge",
                    "openbookqa": "openbookqa", "mmlu": "mmlu"}
METRICS = ("acc", "acc_norm")
# Offline switches: the variables are read when the libraries are imported, the constants after that.
OFFLINE_VARIABLES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
OFFLINE_CONSTANTS = (("datasets.config", "HF_DATASETS_OFFLINE"), ("huggingface_hub.constants", "HF_HUB_OFFLINE"))


def lm_eval_installed() -> bool:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False
    return True


def force_offline() -> None:
    for variable in OFFLINE_VARIABLES:
        os.environ[variable] = "1"
    for module_name, constant in OFFLINE_CONSTANTS:
        module = sys.modules.get(module_name)
        if module is not None:
            setattr(module, constant, True)


def accuracies(results: Mapping[str, Mapping[str, Any]], benchmarks: Iterable[str]) -> dict[str, float]:
    """{'<benchmark>.acc': ..., '<benchmark>.acc_norm': ...} from lm-eval's results['results']."""
    scores = {}
    for benchmark in benchmarks:
        task_results = results.get(PAPER_BENCHMARKS[benchmark], {})
        for metric in METRICS:
            value = task_results.get(f"{metric},none")
            if isinstance(value, (int, float)):
                scores[f"{benchmark}.{metric}"] = float(value)
    return scores


def locally_available(task_manager, benchmarks: Iterable[str]) -> tuple[list[str], list[str]]:
    """(benchmarks whose task loads offline, benchmarks whose data is missing)."""
    available, missing = [], []
    for benchmark in benchmarks:
        try:
            task_manager.load_task_or_group([PAPER_BENCHMARKS[benchmark]])
        except Exception:  # noqa: BLE001 - any failure to load offline means the data is not here
            missing.append(benchmark)
        else:
            available.append(benchmark)
    return available, missing


def run_benchmarks(model_ref: str, benchmarks: Iterable[str] = tuple(PAPER_BENCHMARKS), batch_size: int = 8,
                   limit: int | None = None, say: Callable[[str], None] = print) -> dict[str, float]:
    """Accuracies per benchmark; {} when lm-eval or every benchmark's data is missing."""
    benchmarks = list(benchmarks)
    unknown = sorted(set(benchmarks) - set(PAPER_BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; expected {', '.join(PAPER_BENCHMARKS)}")
    if not lm_eval_installed():
        say(f"benchmarks: lm-eval is not installed (pip install 'humpback[eval]'); skipping {', '.join(benchmarks)}")
        return {}
    force_offline()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from humpback.models import load_model

    available, missing = locally_available(TaskManager(), benchmarks)
    if missing:
        say(f"benchmarks: task data not in the local Hugging Face cache (offline) for {', '.join(missing)}; "
            "skipping them")
    if not available:
        return {}
    tokenizer, model = load_model(model_ref)
    language_model = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    output = simple_evaluate(model=language_model, tasks=[PAPER_BENCHMARKS[b] for b in available], num_fewshot=0,
                             limit=limit)
    return accuracies(output["results"], available)
