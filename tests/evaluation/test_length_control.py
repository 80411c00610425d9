"""Length-controlled win rate: a GLM on the length difference, read at equal lengths."""
import math

import numpy as np
import pytest

from humpback.evaluation.judge import Judgment
from humpback.evaluation.length_control import (
    fit_length_glm, judgments_length_controlled_win_rate, length_controlled_win_rate, length_feature)


def length_decides(differences):
    """The judge prefers the longer answer, always."""
    baseline = [1000] * len(differences)
    model = [1000 + d for d in differences]
    outcomes = ["win" if d > 0 else "loss" for d in differences]
    return outcomes, model, baseline


def test_when_length_alone_decides_the_lc_rate_falls_to_about_one_half():
    # differences evenly spread through 0 (-195, -185, ..., 795): 80 longer (won), 20 shorter (lost)
    outcomes, model, baseline = length_decides(range(-195, 800, 10))
    result = length_controlled_win_rate(outcomes, model, baseline)
    assert result.win_rate == pytest.approx(0.8)
    assert abs(result.lc_win_rate - 0.5) < 0.1
    assert result.length_coef > 0 and math.isfinite(result.length_coef)  # the L2 term keeps it finite


def test_when_content_decides_the_lc_rate_stays_at_the_raw_rate():
    rng = np.random.default_rng(0)
    n = 400
    model = rng.integers(200, 3000, n)
    baseline = rng.integers(200, 3000, n)
    outcomes = list(rng.choice(["win", "tie", "loss"], n, p=[0.6, 0.15, 0.25]))  # independent of length
    result = length_controlled_win_rate(outcomes, model, baseline)
    assert abs(result.lc_win_rate - result.win_rate) < 0.05
    assert result.mean_model_length == pytest.approx(float(np.mean(model)))


def test_equal_length_differences_give_the_raw_rate():
    result = length_controlled_win_rate(["win", "tie", "loss", "win"], [500] * 4, [400] * 4)
    assert result.lc_win_rate == result.win_rate == 0.625
    assert result.length_coef == 0.0 and result.length_scale == 0.0


def test_degenerate_inputs():
    assert length_controlled_win_rate([], [], []) is None
    all_won = length_controlled_win_rate(["win", "win"], [10, 900], [500, 500])
    assert all_won.lc_win_rate == 1.0 and all_won.intercept == math.inf
    with pytest.raises(ValueError, match="one model length"):
        length_controlled_win_rate(["win"], [1, 2], [1])
    with pytest.raises(ValueError, match="expected win, tie or loss"):
        length_controlled_win_rate(["draw"], [1], [1])


def test_ties_are_half_targets_and_the_fit_matches_its_first_order_conditions():
    feature, scale = length_feature([100, 300, 250, 50, 400], [200, 200, 200, 200, 200])
    assert scale == pytest.approx(np.std([-100, 100, 50, -150, 200], ddof=1))
    targets = np.array([0.5, 1.0, 0.5, 0.0, 1.0])
    b0, b1 = fit_length_glm(feature, targets, slope_l2=0.1)
    p = 1 / (1 + np.exp(-(b0 + b1 * feature)))
    assert np.sum(targets - p) == pytest.approx(0.0, abs=1e-8)  # the unpenalized intercept
    assert np.sum((targets - p) * feature) - 0.1 * b1 == pytest.approx(0.0, abs=1e-8)


def test_from_judgments():
    def judgment(outcome, mine, theirs):
        return Judgment("q", mine, theirs, "", "", "A", "B", outcome)

    judgments = [judgment("win", "x" * 30, "y" * 10), judgment("loss", "x" * 5, "y" * 10),
                 judgment("tie", "x" * 10, "y" * 10), judgment("win", "x" * 12, "y" * 10)]
    result = judgments_length_controlled_win_rate(judgments)
    assert result.n == 4 and result.win_rate == pytest.approx(0.625)
    assert (result.mean_model_length, result.mean_baseline_length) == (14.25, 10.0)
