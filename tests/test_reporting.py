"""Progress lines (one format for Spark stages, the gate and evaluate) and how much the libraries print."""
import os
from types import SimpleNamespace

import pytest

from humpback import reporting


def test_a_progress_line_says_done_of_total_throughput_and_time_left():
    line = reporting.progress_line("gate", 8, 32, 20.0, 4000, 400, "examples")
    assert line == "gate: 8/32 examples (25%), 200 tokens/s (20 generated/s), 0.40 examples/s, ETA 1m00s"


def test_before_any_time_has_passed_the_time_left_is_unknown():
    assert reporting.progress_line("augment", 0, 10, 0.0, 0, 0).endswith("0/10 rows (0%), 0 tokens/s "
                                                                          "(0 generated/s), 0.00 rows/s, ETA ?")


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (59.6, "1m00s"), (61, "1m01s"), (3725, "62m05s")])
def test_seconds_read_as_minutes_and_seconds(seconds, text):
    assert reporting.format_seconds(seconds) == text


def test_progress_adds_up_the_batches_done_so_far(monkeypatch):
    progress = reporting.Progress("evaluate (judge)", 12, "pairs", started=100.0)
    monkeypatch.setattr(reporting, "time", SimpleNamespace(monotonic=lambda: 110.0))
    assert progress.advance(4, 900, 100) == ("evaluate (judge): 4/12 pairs (33%), 100 tokens/s (10 generated/s), "
                                             "0.40 pairs/s, ETA 20s")
    monkeypatch.setattr(reporting, "time", SimpleNamespace(monotonic=lambda: 120.0))
    assert progress.advance(8, 900, 100).startswith("evaluate (judge): 12/12 pairs (100%), 100 tokens/s "
                                                    "(10 generated/s), 0.60 pairs/s, ETA 0s")


def test_the_libraries_are_quiet_unless_verbose(monkeypatch):
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
    from transformers.utils import logging as transformers_logging

    for name in reporting.QUIET_ENV:
        monkeypatch.delenv(name, raising=False)
    try:
        reporting.set_library_verbosity(True)
        assert transformers_logging.get_verbosity() == transformers_logging.WARNING
        assert transformers_logging.is_progress_bar_enabled() and MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get()
        assert not set(reporting.QUIET_ENV) & set(os.environ)
        reporting.set_library_verbosity(False)
        assert transformers_logging.get_verbosity() == transformers_logging.ERROR
        assert not transformers_logging.is_progress_bar_enabled() and not MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get()
        # Spark's Python workers, which load the models in augment and curate, inherit these
        assert {name: os.environ[name] for name in reporting.QUIET_ENV} == reporting.QUIET_ENV
    finally:
        reporting.set_library_verbosity(False)  # as every stage leaves it


@pytest.mark.parametrize("flag, env, verbose", [(True, "", True), (False, "1", True), (False, "", False),
                                                (False, "0", False)])
def test_verbose_is_the_option_or_the_environment_variable(flag, env, verbose, monkeypatch):
    monkeypatch.setenv(reporting.VERBOSE_ENV, env)
    assert reporting.verbose_requested(flag) is verbose
