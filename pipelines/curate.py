"""`humpback curate`: Rate (instruction, segment) pairs with a forward model into `ratings`."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("curate", "Rate (instruction, segment) pairs with a forward model into `ratings`.")
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--scorer", default="models:/humpback-forward@m0")
    parser.add_argument("--mode", choices=("generate", "logprob"), default="generate")
    parser.add_argument("--limit", type=int, default=None)
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback curate` is not built yet (tracked as issue 5)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
