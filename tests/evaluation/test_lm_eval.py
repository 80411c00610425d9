"""The lm-eval wrapper: without lm-eval it says so in one line and skips; result parsing."""
import sys

import pytest

from humpback.evaluation.lm_eval import PAPER_BENCHMARKS, accuracies, run_benchmarks


def test_without_lm_eval_it_says_so_in_one_line_and_skips(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` fail as if not installed
    lines = []
    assert run_benchmarks("embedded:smollm2-135m-instruct", say=lines.append) == {}
    assert len(lines) == 1 and "lm-eval is not installed" in lines[0]
    assert all(name in lines[0] for name in PAPER_BENCHMARKS)


def test_unknown_benchmarks_are_refused():
    with pytest.raises(ValueError, match="unknown benchmark"):
        run_benchmarks("embedded:smollm2-135m-instruct", ["hellaswag"])


def test_accuracies_are_read_per_benchmark():
    results = {"social_iqa": {"acc,none": 0.41, "acc_stderr,none": 0.01}, "piqa": {"acc,none": 0.6, "acc_norm,none": 0.62},
               "mmlu": {"acc,none": 0.25}}
    assert accuracies(results, ["siqa", "piqa", "mmlu", "arc_easy"]) == {
        "siqa.acc": 0.41, "piqa.acc": 0.6, "piqa.acc_norm": 0.62, "mmlu.acc": 0.25}


def test_ifeval_without_lm_eval_says_so_in_one_line_and_skips(monkeypatch):
    from humpback.evaluation.lm_eval import run_ifeval

    monkeypatch.setitem(sys.modules, "lm_eval", None)
    lines = []
    assert run_ifeval("embedded:smollm2-135m-instruct", say=lines.append) == {}
    assert lines == ["ifeval: lm-eval is not installed (pip install 'humpback[eval]'); skipping"]


def test_ifeval_without_nltk_data_says_so_and_never_downloads(monkeypatch):
    from humpback.evaluation import lm_eval

    monkeypatch.setattr(lm_eval, "lm_eval_installed", lambda: True)
    monkeypatch.setattr(lm_eval, "missing_modules", lambda names: [])
    monkeypatch.setattr(lm_eval, "nltk_data_available", lambda resource=lm_eval.NLTK_PUNKT: False)
    lines = []
    assert lm_eval.run_ifeval("embedded:smollm2-135m-instruct", say=lines.append) == {}
    assert len(lines) == 1 and "punkt_tab data is not installed" in lines[0] and lines[0].endswith("skipping")
    monkeypatch.setattr(lm_eval, "missing_modules", lambda names: ["langdetect"])
    assert lm_eval.ifeval_unavailable() == ("lm-eval's ifeval extra is not installed (no langdetect; "
                                            "pip install 'humpback[eval]')")


def test_ifeval_scores_are_read_from_the_results():
    from humpback.evaluation.lm_eval import ifeval_scores

    results = {"ifeval": {"prompt_level_strict_acc,none": 0.25, "inst_level_strict_acc,none": 0.375,
                          "prompt_level_strict_acc_stderr,none": 0.02, "alias": "ifeval"}}
    assert ifeval_scores(results) == {"ifeval.prompt_level_strict_acc": 0.25, "ifeval.inst_level_strict_acc": 0.375}
    assert ifeval_scores({}) == {}


def test_ifeval_with_a_missing_prompts_file_says_so_in_one_line(monkeypatch, tmp_path):
    from humpback.evaluation import lm_eval

    monkeypatch.setattr(lm_eval, "lm_eval_installed", lambda: True)
    monkeypatch.setattr(lm_eval, "missing_modules", lambda names: [])
    monkeypatch.setattr(lm_eval, "nltk_data_available", lambda resource=lm_eval.NLTK_PUNKT: True)
    lines = []
    missing = tmp_path / "input_data.jsonl"
    assert lm_eval.run_ifeval("embedded:smollm2-135m-instruct", data_file=missing, say=lines.append) == {}
    assert lines == [f"ifeval: no IFEval prompts file at {missing} ([evaluate] ifeval_data); skipping"]


def test_the_local_ifeval_task_includes_lm_evals_task_and_swaps_only_the_data(tmp_path):
    import yaml

    from humpback.evaluation.lm_eval import LOCAL_IFEVAL_TASK, local_ifeval_task_yaml

    ifeval_yaml = tmp_path / "site packages" / "lm_eval" / "tasks" / "ifeval" / "ifeval.yaml"
    data_file = tmp_path / 'my "ifeval" prompts: v1.jsonl'  # spaces, quotes and a colon stay one YAML string
    config = yaml.safe_load(local_ifeval_task_yaml(ifeval_yaml, data_file))
    assert config == {"include": str(ifeval_yaml), "task": LOCAL_IFEVAL_TASK, "dataset_path": "json",
                      "dataset_name": None, "dataset_kwargs": {"data_files": {"train": str(data_file)}}}


def test_ifeval_scores_are_read_under_the_local_task_name():
    from humpback.evaluation.lm_eval import LOCAL_IFEVAL_TASK, ifeval_scores

    results = {LOCAL_IFEVAL_TASK: {"prompt_level_loose_acc,none": 0.5, "inst_level_loose_acc,none": 0.6}}
    assert ifeval_scores(results, LOCAL_IFEVAL_TASK) == {"ifeval.prompt_level_loose_acc": 0.5,
                                                         "ifeval.inst_level_loose_acc": 0.6}
    assert ifeval_scores(results) == {}
