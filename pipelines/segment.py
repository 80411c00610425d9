"""`humpback segment`: Cut `pages` into header segments with quality signals and drop reasons in `segments`."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("segment", "Cut `pages` into header segments with quality signals and drop reasons in `segments`.")
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback segment` is not built yet (tracked as issue 3)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
