"""Backward-model gate: how well M_yx recovers the true instructions of held-out seed pairs.

- rougeL_f: ROUGE-L F1 of each predicted instruction against the true one (rouge-score, Porter stemming),
  averaged over the pairs.
- echo_share: the share of predictions that are empty or repeat the backward prompt, i.e. share a run of
  ECHO_NGRAM words with the template's fixed text. The echoed prompt is the known failure of backward
  models (research/implementations.md); a real instruction does not share six words in a row with it.
"""

import math
import re

from rouge_score import rouge_scorer

ECHO_NGRAM = 6
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def _words(text):
    return re.findall(r"[a-z0-9']+", text.lower())


def _ngrams(words, n):
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _template_ngrams(template):
    """N-grams of the template's fixed text; none of them spans a placeholder."""
    parts = [_words(part) for part in _PLACEHOLDER.split(template)]
    n = min(ECHO_NGRAM, max(len(p) for p in parts))
    grams = set().union(*(_ngrams(part, n) for part in parts))
    return grams, n


def is_prompt_echo(prediction: str, template: str) -> bool:
    """True when a prediction is empty or repeats ECHO_NGRAM consecutive words of the template."""
    grams, n = _template_ngrams(template)
    words = _words(prediction)
    return not words or bool(_ngrams(words, n) & grams)


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
