"""Length-controlled win rate, fitted on our own judgments the way AlpacaEval 2 does it.

Judges prefer longer answers. AlpacaEval 2 (Dubois et al. 2024, "Length-Controlled AlpacaEval", arXiv
2404.04475) fits a logistic GLM of the judge's preference on the length difference and reports the preference
it predicts at a length difference of 0. Its `length_controlled_minimal` form, which is what one model against
one baseline allows without their precomputed instruction difficulties, is

    p(model preferred) = sigmoid(b0 + b1 * tanh((len_model - len_baseline) / scale))

with lengths in characters and scale the sample standard deviation of the length differences (their
`std_delta_len`). The length-controlled win rate is then sigmoid(b0).

Here: targets are the pair outcomes (win 1, tie 0.5, loss 0, the two-order outcome of judge.combine), fitted by
Newton's method on the fractional-target log likelihood. AlpacaEval picks an L1 strength by cross-validation; we
put a fixed small L2 penalty on b1 only, enough to keep b1 finite when length separates the verdicts exactly,
and none on b0, the quantity reported. When every length difference is the same (scale 0) or every outcome is
the same, length cannot explain anything and the LC win rate is the raw win rate.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from humpback.evaluation.winrate import OUTCOME_SCORES

SLOPE_L2 = 0.1  # on the summed log likelihood, so its pull fades as judgments grow
MAX_NEWTON_STEPS = 100
TOLERANCE = 1e-10


@dataclass(frozen=True)
class LengthControlledWinRate:
    n: int
    win_rate: float  # raw: mean outcome score
    lc_win_rate: float  # sigmoid(intercept): the predicted preference at equal lengths
    intercept: float  # b0; +-inf when every outcome is a win / a loss
    length_coef: float  # b1, per unit of tanh(length difference / length_scale)
    length_scale: float  # standard deviation of the length differences (characters); 0 when all equal
    mean_model_length: float
    mean_baseline_length: float

    def as_dict(self) -> dict:
        return asdict(self)


def outcome_targets(outcomes: Sequence[str]) -> np.ndarray:
    unknown = sorted(set(outcomes) - set(OUTCOME_SCORES))
    if unknown:
        raise ValueError(f"unknown outcome(s) {unknown}; expected win, tie or loss")
    return np.array([OUTCOME_SCORES[outcome] for outcome in outcomes], dtype=float)


def length_feature(model_lengths: Sequence[float], baseline_lengths: Sequence[float]) -> tuple[np.ndarray, float]:
    """(tanh(difference / scale), scale) with scale the sample std of the differences; zeros when that is 0."""
    difference = np.asarray(model_lengths, dtype=float) - np.asarray(baseline_lengths, dtype=float)
    scale = float(difference.std(ddof=1)) if difference.size > 1 else 0.0
    if scale == 0.0:
        return np.zeros_like(difference), 0.0
    return np.tanh(difference / scale), scale


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


def _penalized_log_likelihood(coefs, design, targets, slope_l2):
    z = design @ coefs
    # y log p + (1 - y) log(1 - p), written with logaddexp so that it stays finite for large |z|
    return float(np.sum(targets * z - np.logaddexp(0.0, z)) - 0.5 * slope_l2 * coefs[1] ** 2)


def fit_length_glm(feature: np.ndarray, targets: np.ndarray, slope_l2: float = SLOPE_L2) -> tuple[float, float]:
    """(b0, b1) maximizing the fractional-target log likelihood minus slope_l2/2 * b1^2, by Newton steps with
    step halving. Needs targets that are not all 0 or all 1 (b0 would be infinite)."""
    design = np.column_stack([np.ones_like(feature), feature])
    penalty = np.diag([0.0, slope_l2])
    coefs = np.zeros(2)
    objective = _penalized_log_likelihood(coefs, design, targets, slope_l2)
    for _ in range(MAX_NEWTON_STEPS):
        p = _sigmoid(design @ coefs)
        gradient = design.T @ (targets - p) - penalty @ coefs
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        # halve the step until it does not lower the objective (plain Newton can overshoot on separable data)
        for _ in range(50):
            candidate = coefs + step
            candidate_objective = _penalized_log_likelihood(candidate, design, targets, slope_l2)
            if candidate_objective >= objective - 1e-12:
                break
            step = step / 2
        coefs, objective = candidate, candidate_objective
        if np.max(np.abs(step)) < TOLERANCE:
            break
    return float(coefs[0]), float(coefs[1])


def _logit(share: float) -> float:
    if share <= 0.0:
        return -math.inf
    if share >= 1.0:
        return math.inf
    return math.log(share / (1 - share))


def length_controlled_win_rate(outcomes: Sequence[str], model_lengths: Sequence[float],
                               baseline_lengths: Sequence[float],
                               slope_l2: float = SLOPE_L2) -> LengthControlledWinRate | None:
    """The LC win rate of a model against a baseline from per-prompt outcomes ('win', 'tie', 'loss', for the
    model) and both answers' lengths in characters; None without judgments."""
    if not len(outcomes) == len(model_lengths) == len(baseline_lengths):
        raise ValueError("length_controlled_win_rate needs one model length and one baseline length per outcome")
    if not outcomes:
        return None
    targets = outcome_targets(outcomes)
    feature, scale = length_feature(model_lengths, baseline_lengths)
    raw = float(targets.mean())
    if scale == 0.0 or np.all(targets == targets[0]):
        intercept, slope = _logit(raw), 0.0
        lc = raw
    else:
        intercept, slope = fit_length_glm(feature, targets, slope_l2)
        lc = float(_sigmoid(intercept))
    return LengthControlledWinRate(
        n=len(outcomes), win_rate=raw, lc_win_rate=lc, intercept=intercept, length_coef=slope,
        length_scale=scale, mean_model_length=float(np.mean(model_lengths)),
        mean_baseline_length=float(np.mean(baseline_lengths)))


def judgments_length_controlled_win_rate(judgments: Iterable, slope_l2: float = SLOPE_L2):
    """length_controlled_win_rate over judge.Judgment objects: their outcome and the character lengths of
    model_output and baseline_output."""
    judgments = list(judgments)
    return length_controlled_win_rate([j.outcome for j in judgments], [len(j.model_output) for j in judgments],
                                      [len(j.baseline_output) for j in judgments], slope_l2)
