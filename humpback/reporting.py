"""Job summaries for people and for MLflow: counts by reason, and histograms as PNG plots."""
from __future__ import annotations

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
