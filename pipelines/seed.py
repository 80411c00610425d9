"""`humpback seed`: Load a seed set of (instruction, output) pairs into `seed`."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("seed", "Load a seed set of (instruction, output) pairs into `seed`.")
    parser.add_argument("--input", required=True, metavar="PATH")
    parser.add_argument("--format", required=True, choices=("oasst1", "jsonl", "parquet", "messages"))
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback seed` is not built yet (tracked as issue 4)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
