"""`humpback seed`: a seed set of human (instruction, output) pairs -> `seed`; unusable records -> `rejects`.

Seed sets are small (the paper's has 3,200 pairs; OASST1's message table about 90k messages), so the input is
read and parsed in the driver and only the result goes through Spark, into Delta.

Every row records the file it was loaded from (`source_file`). By default a file's pairs are merged into the
table (new pairs added, changed ones updated, other files' pairs kept); `--replace` makes the table exactly this
file's pairs, in one Delta commit. Either way a re-run with the same file writes no new version.
"""
from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

from humpback.stage import Context, Stage, StageError
from humpback.tables import TABLES, ddl

TABLE = "seed"
SEED_COLUMNS = TABLES[TABLE].columns
FORMATS = ("oasst1", "jsonl", "parquet", "messages")
COLUMN_FORMATS = ("jsonl", "parquet")  # the formats whose column names --instruction-col/--output-col set


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="a .jsonl / .parquet file (.gz allowed for jsonl): a local path or an fsspec URI")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="oasst1: OpenAssistant message trees (jsonl) or message table (jsonl/parquet); "
                             "jsonl/parquet: instruction and output columns; messages: chat records")
    parser.add_argument("--instruction-col", default=None, metavar="NAME",
                        help="instruction column for jsonl/parquet (default: instruction)")
    parser.add_argument("--output-col", default=None, metavar="NAME",
                        help="output column for jsonl/parquet (default: output)")
    parser.add_argument("--replace", action="store_true",
                        help="make `seed` exactly this file's pairs (one commit) instead of merging them into it")


def source_file(path: str) -> str:
    """The input as recorded in `seed.source_file`: a local path made absolute, a URI as given."""
    if "://" in path or path.startswith("file:"):
        return path
    return str(Path(path).expanduser().resolve())


def read_input(path: str, as_parquet: bool) -> list:
    """The file's records: parquet rows as dicts (nulls as None), else raw lines as bytes, so that broken
    UTF-8 becomes a reject in the parser instead of an exception here."""
    import pyarrow.parquet as pq

    from humpback.files import open_input

    try:
        with open_input(path) as stream:
            if as_parquet:
                return pq.read_table(stream).to_pylist()
            if path.endswith(".gz"):
                return list(gzip.GzipFile(fileobj=stream))
            return list(stream)
    except FileNotFoundError:
        raise StageError(f"--input {path!r}: no such file") from None
    except OSError as err:  # unreadable, or not gzip / parquet after all
        raise StageError(f"--input {path!r} cannot be read: {err}") from None


def reads_parquet(input_format: str, path: str) -> bool:
    """--format parquet always; oasst1 and messages when the file is named .parquet; jsonl never."""
    return input_format == "parquet" or (input_format != "jsonl" and path.endswith(".parquet"))


def oasst1_layout(lines: list[bytes]) -> str:
    """'trees' or 'messages': decided by the first JSON object with a `prompt` or a `message_id` key."""
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue  # the parser rejects this line; the next one decides
        if isinstance(record, dict) and "prompt" in record:
            return "trees"
        if isinstance(record, dict) and "message_id" in record:
            return "messages"
    raise StageError("--format oasst1: no record has a 'prompt' (message trees) or 'message_id' (message table) key")


def parse_records(args: argparse.Namespace, seed_config: dict) -> tuple[list[dict], list[dict]]:
    """(rows, rejects) for the input file in its format."""
    from humpback import seeds

    limits = {"max_chars": int(seed_config.get("max_chars", seeds.DEFAULT_MAX_CHARS)),
              "dev_fraction": float(seed_config.get("dev_fraction", seeds.DEFAULT_DEV_FRACTION))}
    parquet = reads_parquet(args.format, args.input)
    records = read_input(args.input, parquet)
    if args.format in COLUMN_FORMATS:
        return seeds.parse_instruction_output(records, args.input, args.instruction_col or "instruction",
                                              args.output_col or "output", **limits)
    if args.format == "messages":
        return seeds.parse_messages(records, args.input, **limits)
    if parquet or oasst1_layout(records) == "messages":
        return seeds.parse_oasst1_messages(records, args.input, **limits)
    return seeds.parse_oasst1_trees(records, args.input, **limits)


def store_rows(ctx: Context, rows: list[dict], replace: bool = False) -> dict[str, int]:
    """Merge (default) or replace; only a real change makes a new table version, so a re-run writes nothing.

    Returns the version, and how many rows were inserted, updated and (with replace) removed.
    """
    lakehouse = ctx.lakehouse
    incoming = ctx.spark.createDataFrame(rows, ddl(SEED_COLUMNS))
    if not lakehouse.exists(TABLE):
        return {**lakehouse.upsert(incoming, TABLE, ["example_id"], unique_keys=True), "removed": 0}
    current = lakehouse.read(TABLE)
    if replace:
        return replace_rows(lakehouse, current, incoming)
    if set(SEED_COLUMNS) <= set(current.columns):
        incoming = incoming.join(current.select(*SEED_COLUMNS), list(SEED_COLUMNS), "left_anti")
        if incoming.isEmpty():
            return {"version": lakehouse.version(TABLE), "inserted": 0, "updated": 0, "removed": 0}
        return {**lakehouse.upsert(incoming, TABLE, ["example_id"], unique_keys=True), "removed": 0}
    return {**merge_adding_columns(lakehouse, incoming), "removed": 0}


def replace_rows(lakehouse, current, incoming) -> dict[str, int]:
    """The table becomes exactly `incoming` in one overwrite commit (none when it already is)."""
    columns = list(SEED_COLUMNS)
    old = current.select(*[c for c in columns if c in current.columns])
    if old.columns == columns and old.exceptAll(incoming).isEmpty() and incoming.exceptAll(old).isEmpty():
        return {"version": lakehouse.version(TABLE), "inserted": 0, "updated": 0, "removed": 0}
    old_rows = {row["example_id"]: row.asDict() for row in old.collect()}  # a seed set fits in the driver
    new_rows = {row["example_id"]: row.asDict() for row in incoming.collect()}
    counts = {"inserted": len(new_rows.keys() - old_rows.keys()), "removed": len(old_rows.keys() - new_rows.keys()),
              "updated": sum(old_rows[key] != row for key, row in new_rows.items() if key in old_rows)}
    version = lakehouse.write(incoming, TABLE, mode="overwrite")  # overwriteSchema: an older table gains columns
    return {"version": version, **counts}


def merge_adding_columns(lakehouse, incoming) -> dict[str, int]:
    """MERGE into a table made before a column existed (source_file): the merge adds the column (schema
    evolution); the older rows keep NULL there until their file is loaded again."""
    from delta.tables import DeltaTable

    DeltaTable.forPath(lakehouse.spark, lakehouse.path(TABLE)).alias("t") \
        .merge(incoming.alias("s"), "t.example_id = s.example_id") \
        .withSchemaEvolution().whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    metrics = lakehouse.history(TABLE, 1)[0].get("operationMetrics") or {}
    return {"version": lakehouse.version(TABLE), "inserted": int(metrics.get("numTargetRowsInserted", 0)),
            "updated": int(metrics.get("numTargetRowsUpdated", 0))}


def report(ctx: Context, args: argparse.Namespace, rows: list[dict], rejects: list[dict],
           stored: dict) -> dict[str, float]:
    """Print the counts, log them to the stage's MLflow run, and return the summary."""
    import mlflow

    from humpback import reporting, seeds

    splits = Counter(row["split"] for row in rows)
    reasons = Counter(reject["reason"] for reject in rejects)
    removed = f", {stored['removed']} removed" if args.replace else ""
    print(f"seed: {len(rows)} pairs loaded from {args.input} ({stored['inserted']} new, {stored['updated']} changed"
          f"{removed}) -> {ctx.lakehouse.path(TABLE)} version {stored['version']}"
          + (" (replaced: the table is exactly this file's pairs)" if args.replace else ""))
    print("seed: split " + (", ".join(f"{name} {splits[name]}" for name in sorted(splits)) or "(no pairs)")
          + f"; {len(rejects)} rejected")
    if reasons:
        print(reporting.format_counts("rejects by reason", reasons))
    summary = seeds.table_summary(ctx.lakehouse, stored["version"])
    print(f"seed: {seeds.format_summary(summary)}"
          + (": " + ", ".join(f"{name} ({n})" for name, n in sorted(summary["files"].items()))
             if len(summary["files"]) > 1 else ""))
    mlflow.log_params({"input": args.input[:500], "format": args.format, "replace": args.replace,
                       "instruction_col": args.instruction_col or "", "output_col": args.output_col or "",
                       "table": ctx.lakehouse.path(TABLE), "table_version": stored["version"]})
    reporting.log_counts("split", splits)
    reporting.log_counts("reject", reasons)
    return {"rows": len(rows), "rows_new": stored["inserted"], "rows_changed": stored["updated"],
            "rows_removed": stored["removed"], "rejects": len(rejects), "table_rows": summary["rows"],
            "table_files": len(summary["files"])}


def no_pairs_message(ctx: Context, args: argparse.Namespace, rejects: list[dict]) -> str:
    """The one line for a file without a single usable pair; its rejects are recorded first."""
    if rejects:
        ctx.lakehouse.add_rejects(rejects)
    reasons = Counter(reject["reason"] for reject in rejects)
    why = (f"{len(rejects)} record(s) rejected: " + ", ".join(f"{name} {n}" for name, n in reasons.most_common())
           + "; see `rejects`") if rejects else "the file holds no records"
    where = "`seed` left as it is" if ctx.lakehouse.exists(TABLE) else "no `seed` table made"
    columns = ""
    if args.format in COLUMN_FORMATS:
        columns = (f"; expected columns {args.instruction_col or 'instruction'!r} and {args.output_col or 'output'!r}"
                   " (--instruction-col/--output-col)")
    return f"{args.input} has no usable pairs ({why}){columns}; {where}"


def check_options(ctx: Context, args: argparse.Namespace) -> None:
    if (args.instruction_col or args.output_col) and args.format not in COLUMN_FORMATS:
        raise StageError(f"--instruction-col and --output-col apply to --format jsonl or parquet, not {args.format}")


def run(ctx: Context, args: argparse.Namespace) -> dict[str, float]:
    rows, rejects = parse_records(args, ctx.config.get("seed", {}))
    if not rows:
        # Wholly wrong input is a failure: no empty table is made, and (with --replace) an unreadable file or a
        # wrongly named column must not empty the seed the models train on. The rejects say why.
        raise StageError(no_pairs_message(ctx, args, rejects))
    recorded = source_file(args.input)
    rows = [{**row, "source_file": recorded} for row in rows]
    stored = store_rows(ctx, rows, replace=args.replace)
    ctx.lakehouse.add_rejects(rejects)
    return report(ctx, args, rows, rejects, stored)


STAGE = Stage("seed", "Load a seed set of (instruction, output) pairs into `seed`.", run, options,
              writes=("seed", "rejects"), settings=("seed",), check=check_options)
