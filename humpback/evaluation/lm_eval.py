"""The paper's benchmarks (SIQA, PIQA, ARC-Easy, ARC-Challenge, OpenBookQA, MMLU) and IFEval with lm-evaluation-harness.

The paper's six: zero-shot, scored by answer log-likelihood as in the paper (section 4.6). IFEval (Zhou et al.
2023, lm-eval task `ifeval`): the model answers 541 prompts with verifiable instructions ("answer in under 100
words", "no commas") through its chat template, greedily, and the answers are checked by rule; strict and loose
accuracy per prompt and per instruction. lm-eval is the optional extra `eval` (`pip install 'humpback[eval]'`, with
lm-eval's own `ifeval` extra: langdetect, immutabledict, nltk). Nothing is ever downloaded: Hugging Face datasets
and hub run offline, a benchmark whose data is not already in the local cache is skipped, and IFEval also needs
NLTK's `punkt_tab` tokenizer data installed beforehand (lm-eval would otherwise fetch it when the task loads). IFEval's
541 prompts can also come from a local JSONL file (`[evaluate] ifeval_data`: google-research's `input_data.jsonl` or
google/IFEval's `ifeval_input_data.jsonl`); lm-eval's own `ifeval` task then runs on that file, unchanged otherwise.
Each reason to skip is one printed line.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
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


IFEVAL_TASK = "ifeval"
IFEVAL_METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")
IFEVAL_MODULES = ("langdetect", "immutabledict", "nltk")  # lm-eval's `ifeval` extra
NLTK_PUNKT = "tokenizers/punkt_tab"  # what lm-eval's IFEval checks for, and downloads when missing


LOCAL_IFEVAL_TASK = "ifeval_local"  # lm-eval's ifeval task on a local file, under its own name


def local_ifeval_task_yaml(ifeval_yaml: Path, data_file: Path) -> str:
    """A task config that includes lm-eval's `ifeval.yaml` (prompts, generation settings, rule checks) and only
    swaps its Hugging Face dataset for the local JSONL file."""
    return "\n".join([f"include: {json.dumps(str(ifeval_yaml))}", f"task: {LOCAL_IFEVAL_TASK}",
                       "dataset_path: json", "dataset_name: null", "dataset_kwargs:", "  data_files:",
                       f"    train: {json.dumps(str(data_file))}", ""])


def ifeval_scores(results: Mapping[str, Mapping[str, Any]], task: str = IFEVAL_TASK) -> dict[str, float]:
    """{'ifeval.prompt_level_strict_acc': ..., ...} from lm-eval's results['results']."""
    task_results = results.get(task, {})
    return {f"ifeval.{metric}": float(task_results[f"{metric},none"]) for metric in IFEVAL_METRICS
            if isinstance(task_results.get(f"{metric},none"), (int, float))}


def missing_modules(names: Iterable[str]) -> list[str]:
    import importlib.util

    return [name for name in names if importlib.util.find_spec(name) is None]


def nltk_data_available(resource: str = NLTK_PUNKT) -> bool:
    """Whether NLTK finds `resource` locally (it never downloads here)."""
    import nltk

    try:
        nltk.data.find(resource)
    except LookupError:
        return False
    return True


def ifeval_unavailable() -> str | None:
    """Why IFEval cannot run offline here (one line), or None when lm-eval, its extra and NLTK's data are present;
    the task's data itself is checked when it loads (run_ifeval)."""
    if not lm_eval_installed():
        return "lm-eval is not installed (pip install 'humpback[eval]')"
    missing = missing_modules(IFEVAL_MODULES)
    if missing:
        return f"lm-eval's ifeval extra is not installed (no {', '.join(missing)}; pip install 'humpback[eval]')"
    if not nltk_data_available():
        return (f"NLTK's {NLTK_PUNKT.split('/')[-1]} data is not installed (offline; install it once with "
                "`python -m nltk.downloader punkt_tab`)")
    return None


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def run_ifeval(model_ref: str, data_file: str | Path | None = None, batch_size: int = 8, limit: int | None = None,
               max_gen_toks: int | None = None, say: Callable[[str], None] = print) -> dict[str, float]:
    """IFEval's four accuracies through the model's chat template; {} (after one line saying why) when lm-eval,
    its ifeval extra, NLTK's punkt_tab data or the prompts are not available locally. The prompts come from
    `data_file` when given, else from lm-eval's `ifeval` task in the local Hugging Face cache."""
    reason = ifeval_unavailable()
    if reason is None and data_file and not Path(data_file).is_file():
        reason = f"no IFEval prompts file at {data_file} ([evaluate] ifeval_data)"
    if reason is not None:
        say(f"ifeval: {reason}; skipping")
        return {}
    force_offline()
    import lm_eval
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from humpback.models import load_model

    with tempfile.TemporaryDirectory(prefix="humpback-ifeval-") as task_dir:
        if data_file:
            ifeval_yaml = Path(lm_eval.__file__).parent / "tasks" / "ifeval" / "ifeval.yaml"
            Path(task_dir, f"{LOCAL_IFEVAL_TASK}.yaml").write_text(
                local_ifeval_task_yaml(ifeval_yaml, Path(data_file).resolve()))
            task_manager, task = TaskManager(include_path=task_dir), LOCAL_IFEVAL_TASK
        else:
            task_manager, task = TaskManager(), IFEVAL_TASK
        try:
            task_manager.load_task_or_group([task])
        except Exception as error:  # noqa: BLE001 - any failure to load offline means the data is not here
            if data_file:
                say(f"ifeval: {data_file} did not load as IFEval prompts ({first_line(error)}); skipping")
            else:
                say("ifeval: task data not in the local Hugging Face cache (offline; or set [evaluate] ifeval_data); "
                    "skipping")
            return {}
        tokenizer, model = load_model(model_ref)
        language_model = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        output = simple_evaluate(model=language_model, tasks=[task], task_manager=task_manager, num_fewshot=0,
                                 limit=limit, apply_chat_template=True,
                                 gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None)
    return ifeval_scores(output["results"], task)


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
