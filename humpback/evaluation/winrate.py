"""Win rate of a model against a baseline, with its standard error.

Each prompt scores 1 (win), 0.5 (tie) or 0 (loss); the win rate is their mean, (wins + ties / 2) / n. The
standard error is the sample standard deviation of those per-prompt scores over sqrt(n), i.e. the standard
error of the mean (AlpacaEval reports the same quantity). Unlike sqrt(p(1-p)/n), it does not count a tie as
half a win and half a loss: all-tie judgments have no spread and a standard error of 0. Undefined (NaN) below
two prompts.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

WIN, TIE, LOSS = "win", "tie", "loss"
OUTCOME_SCORES = {WIN: 1.0, TIE: 0.5, LOSS: 0.0}


@dataclass(frozen=True)
class WinRate:
    n: int
    wins: int
    ties: int
    losses: int
    unparsed: int  # prompts scored as ties because a verdict could not be read
    win_rate: float
    stderr: float

    def as_dict(self) -> dict:
        return asdict(self)


def win_rate(outcomes: Sequence[str], unparsed: int = 0) -> WinRate:
    """Summarize per-prompt outcomes ('win', 'tie', 'loss')."""
    unknown = sorted(set(outcomes) - set(OUTCOME_SCORES))
    if unknown:
        raise ValueError(f"unknown outcome(s) {unknown}; expected win, tie or loss")
    scores = [OUTCOME_SCORES[outcome] for outcome in outcomes]
    n = len(scores)
    return WinRate(n=n, wins=outcomes.count(WIN), ties=outcomes.count(TIE), losses=outcomes.count(LOSS),
                   unparsed=unparsed, win_rate=sum(scores) / n if n else math.nan, stderr=standard_error(scores))


def standard_error(scores: Sequence[float]) -> float:
    """Sample standard deviation / sqrt(n); NaN below two values."""
    n = len(scores)
    if n < 2:
        return math.nan
    mean = sum(scores) / n
    variance = sum((score - mean) ** 2 for score in scores) / (n - 1)
    return math.sqrt(variance / n)
