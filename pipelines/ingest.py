"""`humpback ingest`: WARC / WARC.gz files -> `pages` (2xx HTML responses) and `rejects`, distributed over files."""
from __future__ import annotations

import argparse
import sys
from typing import Iterator

from humpback.tables import TABLES, arrow_schema, ddl, record_batch
from pipelines.common import Context, StageError, run_stage, stage_parser

PAGE_COLUMNS = list(TABLES["pages"].columns)
REJECT_COLUMNS = ["source", "stage", "reason", "detail"]
PARSED_COLUMNS = {
    "kind": "string", "page_id": "string", "url": "string", "warc_file": "string", "warc_record_id": "string",
    "http_status": "int", "content_type": "string", "html": "string", "n_bytes": "long", "encoding": "string",
    "encoding_source": "string", "source": "string", "stage": "string", "reason": "string", "detail": "string",
}
BATCH_ROWS = 256


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("ingest", "Read WARC / WARC.gz files into `pages`; unusable records go to `rejects`.")
    parser.add_argument("--input", action="append", required=True, metavar="GLOB",
                        help="WARC or WARC.gz files: local paths or cluster URIs (repeatable)")
    return parser


def expand_inputs(spark, patterns: list[str]) -> list[str]:
    """Every file matched by the globs, through Hadoop's file systems (local, hdfs://, s3a://, ...)."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    files: list[str] = []
    for pattern in patterns:
        path = jvm.org.apache.hadoop.fs.Path(pattern)
        statuses = path.getFileSystem(conf).globStatus(path) or []
        matched = sorted(str(s.getPath().toString()) for s in statuses if s.isFile())
        if not matched:
            raise StageError(f"--input {pattern!r} matches no files")
        files += matched
    return sorted(set(files))


def parse_files(max_page_bytes: int, keep_html: bool = True):
    """A mapInArrow function: each input row names one file; yields its page and reject rows in batches.

    Without `keep_html` the page rows carry no HTML: the pass that counts and records rejects then moves
    kilobytes per page instead of the whole document.
    """
    schema = arrow_schema(PARSED_COLUMNS)

    def parse(batches: Iterator) -> Iterator:
        from humpback.files import open_input
        from humpback.web.warc import iter_warc

        for batch in batches:
            for uri in batch.column("uri").to_pylist():
                rows = []
                try:
                    with open_input(uri) as stream:
                        for row in iter_warc(stream, source=uri, max_page_bytes=max_page_bytes):
                            if not keep_html:
                                row.pop("html", None)
                            rows.append(row)
                            if len(rows) >= BATCH_ROWS:
                                yield record_batch(rows, schema)
                                rows = []
                except OSError as err:  # an unreadable file is a reject, and the other files go on
                    rows.append({"kind": "reject", "source": uri, "stage": "ingest", "reason": "unreadable_file",
                                 "detail": str(err)[:500]})
                if rows:
                    yield record_batch(rows, schema)

    return parse


def no_pages_message(files: list[str], reject_counts: dict[str, int]) -> str:
    n_files = f"{len(files)} file(s)" if len(files) != 1 else files[0]
    if not reject_counts:
        return f"no page in {n_files}: no WARC response records at all"
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(reject_counts.items(), key=lambda kv: -kv[1]))
    return (f"no page in {n_files}: every record was rejected ({reasons}); are these WARC files? See "
            "`humpback sql \"SELECT source, reason, detail FROM rejects WHERE stage = 'ingest'\"`")


def run(ctx: Context, args: argparse.Namespace) -> int:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from humpback import reporting
    from humpback.tracking import start_run

    spark, lakehouse = ctx.spark, ctx.lakehouse
    files = expand_inputs(spark, args.input)
    print(f"ingest: {len(files)} file(s) -> {lakehouse.path('pages')}", flush=True)
    max_page_bytes = int(ctx.config["ingest"]["max_page_bytes"])
    # One partition per file, so that no task reads two files while a core idles.
    inputs = spark.createDataFrame(spark.sparkContext.parallelize([(uri,) for uri in files], len(files)),
                                   "uri string")
    # Two reads of every file. The first leaves the HTML out: it counts everything, records the rejects and
    # learns whether any page id repeats. The second writes the pages, and skips the shuffle that drops
    # repeated ids when the first found none (the common case: ids hash the record id, URL and payload).
    outline = inputs.mapInArrow(parse_files(max_page_bytes, keep_html=False), ddl(PARSED_COLUMNS)) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # Every count of the summary in one aggregate: each Spark job has a fixed cost.
        totals = outline.groupBy("kind", "reason").agg(F.count(F.lit(1)).alias("count"),
                                                       F.count_distinct("page_id").alias("ids"),
                                                       F.sum("n_bytes").alias("bytes")).collect()
        reject_counts = {r["reason"]: r["count"] for r in totals if r["kind"] == "reject"}
        # A MERGE costs several Spark jobs even when it has nothing to add.
        reject_result = lakehouse.add_rejects(outline.where("kind = 'reject'").select(*REJECT_COLUMNS)) \
            if reject_counts else {"inserted": 0}
    finally:
        outline.unpersist()
    n_pages = sum(r["count"] for r in totals if r["kind"] == "page")
    if n_pages == 0:  # wholly wrong input (text, images, empty files): a failure, not a quiet success
        raise StageError(no_pages_message(files, reject_counts))
    ids_unique = sum(r["ids"] for r in totals if r["kind"] == "page") == n_pages
    bytes_total = sum(r["bytes"] or 0 for r in totals if r["kind"] == "page")
    pages = inputs.mapInArrow(parse_files(max_page_bytes), ddl(PARSED_COLUMNS)).where("kind = 'page'") \
        .select(*PAGE_COLUMNS)
    page_result = lakehouse.insert_missing(pages, "pages", ["page_id"], unique_keys=ids_unique)

    summary = {"files": len(files), "pages": n_pages, "pages_new": page_result["inserted"],
               "rejects": sum(reject_counts.values()), "rejects_new": reject_result["inserted"]}
    print(f"ingest: {n_pages} pages ({page_result['inserted']} new, {bytes_total / 1e6:.1f} MB of HTML), "
          f"{summary['rejects']} rejected records ({reject_result['inserted']} new)")
    if reject_counts:
        print(reporting.format_counts("rejects by reason", reject_counts))
    ctx.mlflow_uri  # noqa: B018 - configures the tracking store
    with start_run("ingest", ctx.config, stage="ingest"):
        import mlflow

        mlflow.log_params({"inputs": ",".join(args.input)[:500], "max_page_bytes": max_page_bytes,
                           "lakehouse": lakehouse.root})
        mlflow.log_metrics({k: float(v) for k, v in summary.items()})
        reporting.log_counts("reject", reject_counts)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
