"""Backward-model gate: how well M_yx recovers the true instructions of held-out seed pairs.

- rougeL_f: ROUGE-L F1 of each predicted instruction against the true one (rouge-score, Porter stemming),
  averaged over the pairs.
- echo_share: the share of predictions that are empty (no words) or repeat the backward prompt, by the rule the
  instruction flag `prompt_echo` uses too (humpback.prompts.echoes_template: a run of 6 words of the template's
  fixed text, or one of its sentences of 5+ words). The echoed prompt is the known failure of backward models
  (research/implementations.md).
"""

import math

from rouge_score import rouge_scorer

from humpback.prompts import echoes_template
from humpback.text import words


def is_prompt_echo(prediction: str, template: str) -> bool:
    """True when a prediction has no words or repeats the template (humpback.prompts.echoes_template)."""
    return not words(prediction) or echoes_template(prediction, template)


def backward_gate_metrics(predicted: list[str], reference: list[str], template: str) -> dict:
    """{'rougeL_f', 'echo_share', 'n'}; both rates are NaN when there is nothing to score."""
    if len(predicted) != len(reference):
        raise ValueError(f"{len(predicted)} predictions for {len(reference)} references")
    n = len(predicted)
    if n == 0:
        return {"rougeL_f": math.nan, "echo_share": math.nan, "n": 0}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = sum(scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predicted, reference))
    echoes = sum(is_prompt_echo(pred, template) for pred in predicted)
    return {"rougeL_f": rouge / n, "echo_share": echoes / n, "n": n}
