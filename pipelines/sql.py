"""`humpback sql "QUERY"`: Spark SQL over the lakehouse, every table by its bare name."""
from __future__ import annotations

import argparse
import csv
import sys
from typing import Iterable

from humpback.output import format_table, to_jsonable
from pipelines.common import Context, StageError, run_stage, spark_error_summary, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("sql", "Run Spark SQL against the lakehouse; tables are addressable by bare name.")
    parser.add_argument("query", help='for example "SELECT drop_reason, count(*) FROM segments GROUP BY 1"')
    parser.add_argument("--format", choices=("table", "jsonl", "csv"), default="table",
                        help="table (default), jsonl (one JSON object per row, nothing else) or csv")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many rows (default: 100 for table, all for jsonl and csv)")
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    from pyspark.errors import AnalysisException

    tables = ctx.lakehouse.register_tables()
    try:
        frame = ctx.spark.sql(args.query)
    except AnalysisException as err:
        message = spark_error_summary(err)
        if getattr(err, "getCondition", lambda: None)() == "TABLE_OR_VIEW_NOT_FOUND" or "TABLE_OR_VIEW_NOT_FOUND" in message:
            message += f" Tables in {ctx.lakehouse.root}: {', '.join(tables) or 'none yet'}."
        raise StageError(message) from None
    limit = args.limit if args.limit is not None else (100 if args.format == "table" else None)
    rows = frame.limit(limit + 1).collect() if limit is not None else frame.toLocalIterator()
    write_rows(frame.columns, rows, args.format, limit)
    return 0


def write_rows(columns: list[str], rows: Iterable, fmt: str, limit: int | None, out=None) -> None:
    out = out or sys.stdout
    if fmt == "jsonl":
        import json

        for count, row in enumerate(rows):
            if limit is not None and count >= limit:
                break
            out.write(json.dumps({c: to_jsonable(row[i]) for i, c in enumerate(columns)}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        for count, row in enumerate(rows):
            if limit is not None and count >= limit:
                break
            writer.writerow([to_jsonable(value) for value in row])
    else:
        rows = list(rows)
        more = limit is not None and len(rows) > limit
        out.write(format_table(columns, [list(r) for r in rows[:limit]]) + "\n")
        if more:
            out.write(f"(first {limit} rows shown; use --limit N or --format jsonl for more)\n")


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
