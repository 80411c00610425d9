"""`humpback augment`: Write an instruction for every kept segment with the backward model into `candidates`."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("augment", "Write an instruction for every kept segment with the backward model into `candidates`.")
    parser.add_argument("--model", default="models:/humpback-backward@myx")
    parser.add_argument("--limit", type=int, default=None)
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback augment` is not built yet (tracked as issue 5)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
