"""Job summaries for people and for MLflow: counts by reason, histograms as PNG plots, progress lines, and how much
the libraries underneath print."""
from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from humpback.output import format_table


def format_counts(title: str, counts: Mapping[str, int], total: int | None = None) -> str:
    """A small table of counts with their share of `total` (default: their sum), largest first."""
    total = total if total is not None else sum(counts.values())
    rows = [[name, count, f"{100.0 * count / total:.1f}%" if total else "-"]
            for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    return f"{title}\n" + format_table(["", "count", "share"], rows)


def log_counts(prefix: str, counts: Mapping[str, int]) -> None:
    """Counts as MLflow metrics `<prefix>.<name>` on the active run."""
    import mlflow

    if counts:
        mlflow.log_metrics({f"{prefix}.{_metric_name(name)}": float(value) for name, value in counts.items()})


def _metric_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in str(name)) or "none"


def histogram_plot(series: Mapping[str, Sequence[tuple[float, int]]], title: str, xlabel: str, path: str | Path,
                   bin_width: float) -> Path:
    """Bar histograms from pre-binned (bin start, count) pairs, one colour per series; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    for label, bins in series.items():
        if bins:
            starts, counts = zip(*sorted(bins))
            axis.bar(starts, counts, width=bin_width, align="edge", alpha=0.6, label=label)
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("count")
    if len(series) > 1:
        axis.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def text_histogram(title: str, bins: Sequence[tuple[float, int]], width: int = 40) -> str:
    """Bins in order with proportional bars, for a terminal."""
    if not bins:
        return f"{title}\n(no values)"
    peak = max(count for _, count in bins) or 1
    lines = [f"{start:>6.2f} | {'#' * max(1, round(width * count / peak)) if count else '':<{width}} {count}"
             for start, count in sorted(bins)]
    return "\n".join([title, *lines])


def format_seconds(seconds: float) -> str:
    if seconds != seconds:  # NaN: no rate yet
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_line(stage: str, done: int, total: int, seconds: float, tokens: int, generated: int,
                  unit: str = "rows") -> str:
    """One line after each chunk of model work: done of total, throughput, and the time left at this rate."""
    rate = done / seconds if seconds else 0.0
    eta = (total - done) / rate if rate else float("nan")
    token_rate, generated_rate = (tokens / seconds, generated / seconds) if seconds else (0.0, 0.0)
    return (f"{stage}: {done}/{total} {unit} ({100.0 * done / total:.0f}%), "
            f"{token_rate:.0f} tokens/s ({generated_rate:.0f} generated/s), "
            f"{rate:.2f} {unit}/s, ETA {format_seconds(eta)}")


@dataclass
class Progress:
    """Running counts for progress_line, for model work done in the driver a batch at a time."""

    stage: str
    total: int
    unit: str = "rows"
    done: int = 0
    tokens: int = 0  # prompt and generated
    generated: int = 0
    started: float = field(default_factory=time.monotonic)

    def advance(self, rows: int, prompt_tokens: int, generated_tokens: int) -> str:
        """Count a finished batch; returns its progress line."""
        self.done += rows
        self.tokens += prompt_tokens + generated_tokens
        self.generated += generated_tokens
        return progress_line(self.stage, self.done, self.total, time.monotonic() - self.started, self.tokens,
                             self.generated, self.unit)


VERBOSE_ENV = "HUMPBACK_VERBOSE"
# Read by the libraries themselves, so Spark's Python workers (which load the models) inherit them with the
# environment. transformers: its warnings and "Loading weights" bars; huggingface_hub: download bars (transformers
# starts its own bars from this too); MLflow: "Downloading artifacts" bars.
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def verbose_requested(flag: bool = False) -> bool:
    """--verbose, or HUMPBACK_VERBOSE=1 in the environment."""
    return flag or os.environ.get(VERBOSE_ENV, "").strip().lower() in {"1", "true", "yes"}


def set_library_verbosity(verbose: bool) -> None:
    """Quiet: only errors from transformers and no progress bars from it, the hub or MLflow. Verbose: the
    libraries' own defaults. Applied to the environment (for processes started later) and to what is loaded."""
    if verbose:
        for name, value in QUIET_ENV.items():
            if os.environ.get(name) == value:
                del os.environ[name]
    else:
        os.environ.update(QUIET_ENV)
    if "transformers" in sys.modules:  # it read the environment when it was imported
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity(transformers_logging.WARNING if verbose else transformers_logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the hub's objection that the variable it read at import time wins
            (transformers_logging.enable_progress_bar if verbose else transformers_logging.disable_progress_bar)()
