"""Win rate and its standard error against hand arithmetic."""
import math

import pytest

from humpback.evaluation.winrate import win_rate


def test_win_rate_and_standard_error_match_hand_arithmetic():
    result = win_rate(["win", "win", "tie", "loss"], unparsed=1)
    # scores 1, 1, 0.5, 0: mean 2.5 / 4 = 0.625
    # sample variance ((0.375² · 2) + 0.125² + 0.625²) / 3 = 0.6875 / 3; stderr = sqrt(that / 4)
    assert result.win_rate == pytest.approx(0.625)
    assert result.stderr == pytest.approx(math.sqrt(0.6875 / 3 / 4))
    assert (result.n, result.wins, result.ties, result.losses, result.unparsed) == (4, 2, 1, 1, 1)


def test_all_ties_have_no_spread_and_one_prompt_has_no_standard_error():
    assert win_rate(["tie"] * 5).win_rate == 0.5 and win_rate(["tie"] * 5).stderr == 0.0
    assert math.isnan(win_rate(["win"]).stderr) and win_rate(["win"]).win_rate == 1.0
    assert math.isnan(win_rate([]).win_rate)


def test_unknown_outcomes_are_refused():
    with pytest.raises(ValueError, match="expected win, tie or loss"):
        win_rate(["win", "draw"])
