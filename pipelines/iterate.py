"""`humpback iterate`: Rate, select and train for N iterations (M1, M2, ...)."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("iterate", "Rate, select and train for N iterations (M1, M2, ...).")
    parser.add_argument("--iterations", type=int, default=1)
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback iterate` is not built yet (tracked as issue 6)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
