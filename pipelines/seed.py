"""`humpback seed`: a seed set of human (instruction, output) pairs -> `seed`; unusable records -> `rejects`.

Seed sets are small (the paper's has 3,200 pairs; OASST1's message table about 90k messages), so the input is
read and parsed in the driver and only the result goes through Spark, into Delta.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter

from pipelines.common import Context, StageError, ddl, run_stage, stage_parser

TABLE = "seed"
SEED_COLUMNS = {"example_id": "string", "instruction": "string", "output": "string", "source": "string",
                "split": "string"}
FORMATS = ("oasst1", "jsonl", "parquet", "messages")
COLUMN_FORMATS = ("jsonl", "parquet")  # the formats whose column names --instruction-col/--output-col set


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("seed", "Load a seed set of (instruction, output) pairs into `seed`.")
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="a .jsonl / .parquet file (.gz allowed for jsonl): a local path or an fsspec URI")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="oasst1: OpenAssistant message trees (jsonl) or message table (jsonl/parquet); "
                             "jsonl/parquet: instruction and output columns; messages: chat records")
    parser.add_argument("--instruction-col", default=None, metavar="NAME",
                        help="instruction column for jsonl/parquet (default: instruction)")
    parser.add_argument("--output-col", default=None, metavar="NAME",
                        help="output column for jsonl/parquet (default: output)")
    return parser


def read_input(path: str, as_parquet: bool) -> list:
    """The file's records: parquet rows as dicts (nulls as None), else raw lines as bytes, so that broken
    UTF-8 becomes a reject in the parser instead of an exception here."""
    import pyarrow.parquet as pq

    from pipelines.ingest import open_input

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


def store_rows(ctx: Context, rows: list[dict]) -> dict[str, int]:
    """Upsert on example_id, sending only rows that are new or changed, so a re-run makes no new version."""
    lakehouse = ctx.lakehouse
    incoming = ctx.spark.createDataFrame(rows, ddl(SEED_COLUMNS))
    if lakehouse.exists(TABLE):
        incoming = incoming.join(lakehouse.read(TABLE), list(SEED_COLUMNS), "left_anti")
        if incoming.isEmpty():
            return {"version": lakehouse.version(TABLE), "inserted": 0, "updated": 0}
    return lakehouse.upsert(incoming, TABLE, ["example_id"])


def report(ctx: Context, args: argparse.Namespace, rows: list[dict], rejects: list[dict], stored: dict) -> None:
    """Print the counts and log them to an MLflow run."""
    import mlflow

    from humpback import reporting
    from humpback.tracking import start_run

    splits = Counter(row["split"] for row in rows)
    reasons = Counter(reject["reason"] for reject in rejects)
    print(f"seed: {len(rows)} pairs loaded from {args.input} ({stored['inserted']} new, {stored['updated']} changed) "
          f"-> {ctx.lakehouse.path(TABLE)} version {stored['version']}")
    print("seed: split " + ", ".join(f"{name} {splits[name]}" for name in sorted(splits)) + f"; {len(rejects)} rejected")
    if reasons:
        print(reporting.format_counts("rejects by reason", reasons))
    ctx.mlflow_uri  # noqa: B018 - configures the tracking store
    with start_run("seed", ctx.config, stage="seed"):
        mlflow.log_params({"input": args.input[:500], "format": args.format,
                           "instruction_col": args.instruction_col or "", "output_col": args.output_col or "",
                           "table": ctx.lakehouse.path(TABLE), "table_version": stored["version"],
                           **{f"seed.{key}": value for key, value in ctx.config.get("seed", {}).items()}})
        mlflow.log_metrics({"rows": float(len(rows)), "rows_new": float(stored["inserted"]),
                            "rows_changed": float(stored["updated"]), "rejects": float(len(rejects))})
        reporting.log_counts("split", splits)
        reporting.log_counts("reject", reasons)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if (args.instruction_col or args.output_col) and args.format not in COLUMN_FORMATS:
        raise StageError(f"--instruction-col and --output-col apply to --format jsonl or parquet, not {args.format}")
    rows, rejects = parse_records(args, ctx.config.get("seed", {}))
    stored = store_rows(ctx, rows)
    ctx.lakehouse.add_rejects(rejects)
    report(ctx, args, rows, rejects, stored)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
