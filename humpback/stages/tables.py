"""`humpback tables`: what the lakehouse holds, with row counts and the latest Delta version."""
from __future__ import annotations

import argparse

from humpback.output import format_table
from humpback.stage import Context, Stage


def table_summary(ctx: Context) -> list[list]:
    rows = []
    for name in ctx.lakehouse.tables():
        last = ctx.lakehouse.history(name, 1)[0]
        rows.append([name, ctx.lakehouse.read(name).count(), int(last["version"]), str(last["timestamp"])[:19]])
    return rows


def run(ctx: Context, args: argparse.Namespace) -> None:
    rows = table_summary(ctx)
    print(f"lakehouse: {ctx.lakehouse.root}")
    print(format_table(["table", "rows", "version", "updated (UTC)"], rows) if rows else "no tables yet")


STAGE = Stage("tables", "List the lakehouse tables with their row counts and latest versions.", run, tracked=False)
