"""`humpback train`: Fine-tune a backward or forward model on a seed or training set and register it in MLflow."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("train", "Fine-tune a backward or forward model on a seed or training set and register it in MLflow.")
    parser.add_argument("--direction", required=True, choices=("backward", "forward"))
    parser.add_argument("--dataset", required=True, metavar="seed|NAME[@VERSION]")
    parser.add_argument("--alias", required=True, help="registry alias, e.g. myx, m0, m1")
    parser.add_argument("--max-steps", type=int, default=None)
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback train` is not built yet (tracked as issue 4)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
