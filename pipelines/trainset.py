"""`humpback trainset`: Materialize a new version of `training_sets` from seed and curated pairs."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("trainset", "Materialize a new version of `training_sets` from seed and curated pairs.")
    parser.add_argument("--name", required=True)
    parser.add_argument("--iteration", type=int, required=True)
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback trainset` is not built yet (tracked as issue 6)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
