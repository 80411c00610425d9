"""`humpback tables`: what the lakehouse holds, with row counts and the latest Delta version."""
from __future__ import annotations

import argparse
import sys

from humpback.output import format_table
from pipelines.common import Context, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    return stage_parser("tables", "List the lakehouse tables with their row counts and latest versions.")


def table_summary(ctx: Context) -> list[list]:
    rows = []
    for name in ctx.lakehouse.tables():
        last = ctx.lakehouse.history(name, 1)[0]
        rows.append([name, ctx.lakehouse.read(name).count(), int(last["version"]), str(last["timestamp"])[:19]])
    return rows


def run(ctx: Context, args: argparse.Namespace) -> int:
    rows = table_summary(ctx)
    print(f"lakehouse: {ctx.lakehouse.root}")
    print(format_table(["table", "rows", "version", "updated (UTC)"], rows) if rows else "no tables yet")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
