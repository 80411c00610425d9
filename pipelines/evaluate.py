"""`humpback evaluate`: Pairwise win rate of a model against a baseline, judged in both orders."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("evaluate", "Pairwise win rate of a model against a baseline, judged in both orders.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--baseline", default=None)
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback evaluate` is not built yet (tracked as issue 6)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
