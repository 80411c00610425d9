"""`humpback ingest`: Read WARC / WARC.gz files into `pages`; unusable records go to `rejects`."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("ingest", "Read WARC / WARC.gz files into `pages`; unusable records go to `rejects`.")
    parser.add_argument("--input", action="append", required=True, metavar="GLOB", help="WARC or WARC.gz files: local paths or cluster URIs (repeatable)")
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    raise StageError("`humpback ingest` is not built yet (tracked as issue 3)")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
