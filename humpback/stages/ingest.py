"""`humpback ingest`: WARC files (2xx HTML responses) or text corpora (JSON Lines, Parquet: one document per row)
-> `pages`, and every record it cannot use -> `rejects`, distributed over files."""
from __future__ import annotations

import argparse
from typing import Iterator

from humpback.stage import Context, Stage, StageError
from humpback.tables import TEXT_CONTENT_TYPE, TABLES, arrow_schema, ddl, record_batch

PAGE_COLUMNS = list(TABLES["pages"].columns)
REJECT_COLUMNS = ["source", "stage", "reason", "detail"]
PARSED_COLUMNS = {
    "kind": "string", "page_id": "string", "url": "string", "warc_file": "string", "warc_record_id": "string",
    "http_status": "int", "content_type": "string", "html": "string", "n_bytes": "long", "encoding": "string",
    "encoding_source": "string", "source": "string", "stage": "string", "reason": "string", "detail": "string",
}
BATCH_ROWS = 256


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", action="append", required=True, metavar="GLOB",
                        help="WARC (.warc, .warc.gz), JSON Lines (.jsonl, .jsonl.gz, .jsonl.zst) or Parquet files: "
                             "local paths or cluster URIs (repeatable)")
    parser.add_argument("--format", choices=("warc", "jsonl", "parquet"), default=None,
                        help="the files' format (default: each file's by its extension, WARC when it names none); "
                             "text fields: [ingest] text_field, id_field, url_field")


def file_formats(files: list[str], forced: str | None) -> dict[str, str]:
    """Each file's format: --format, else its extension (.jsonl*, .parquet: text), else WARC, as before text
    corpora were read: a file that is not WARC then has its records rejected and named."""
    from humpback.web.text_records import UnknownFormat, detect_format

    def by_extension(uri: str) -> str:
        try:
            return detect_format(uri)
        except UnknownFormat:
            return "warc"

    return {uri: forced or by_extension(uri) for uri in files}


def page_of_document(row: dict) -> dict:
    """A text corpus's document as a `pages` row: its text in `html`, its corpus id as the record id."""
    from humpback.ids import text_page_id

    return {"kind": "page", "page_id": text_page_id(row["doc_id"], row["url"], row["text"]), "url": row["url"] or "",
            "warc_file": row["source_file"], "warc_record_id": row["doc_id"], "http_status": None,
            "content_type": TEXT_CONTENT_TYPE, "html": row["text"], "n_bytes": len(row["text"].encode("utf-8")),
            "encoding": "utf-8", "encoding_source": "text"}


def read_file_rows(uri: str, fmt: str, max_page_bytes: int, fields: dict[str, str]) -> Iterator[dict]:
    """Page and reject rows of one file, WARC or text."""
    from humpback.files import open_input

    if fmt == "warc":
        from humpback.web.warc import iter_warc

        with open_input(uri) as stream:
            yield from iter_warc(stream, source=uri, max_page_bytes=max_page_bytes)
        return
    from humpback.web.text_records import iter_text_records

    for row in iter_text_records(uri, source=uri, fmt=fmt, max_record_bytes=max_page_bytes, **fields):
        yield page_of_document(row) if row["kind"] == "document" else row


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


def parse_files(max_page_bytes: int, keep_html: bool = True, formats: dict[str, str] | None = None,
                fields: dict[str, str] | None = None):
    """A mapInArrow function: each input row names one file; yields its page and reject rows in batches.

    Without `keep_html` the page rows carry no body: the pass that counts and records rejects then moves
    kilobytes per page instead of the whole document. `formats` maps a file to warc|jsonl|parquet (default warc);
    `fields` names a text corpus's text_field, id_field and url_field.
    """
    schema = arrow_schema(PARSED_COLUMNS)
    formats, fields = formats or {}, fields or {}

    def parse(batches: Iterator) -> Iterator:
        for batch in batches:
            for uri in batch.column("uri").to_pylist():
                rows = []
                try:
                    for row in read_file_rows(uri, formats.get(uri, "warc"), max_page_bytes, fields):
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


def no_pages_message(files: list[str], reject_counts: dict[str, int], kinds: str = "WARC") -> str:
    n_files = f"{len(files)} file(s)" if len(files) != 1 else files[0]
    if not reject_counts:
        return f"no page in {n_files}: no {'WARC response records' if kinds == 'WARC' else 'documents'} at all"
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(reject_counts.items(), key=lambda kv: -kv[1]))
    return (f"no page in {n_files}: every record was rejected ({reasons}); are these {kinds} files? See "
            "`humpback sql \"SELECT source, reason, detail FROM rejects WHERE stage = 'ingest'\"`")


def check_inputs(ctx: Context, args: argparse.Namespace) -> None:
    expand_inputs(ctx.spark, args.input)  # every --input pattern matches a file


def run(ctx: Context, args: argparse.Namespace) -> dict[str, float]:
    import mlflow
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from humpback import reporting

    spark, lakehouse = ctx.spark, ctx.lakehouse
    files = expand_inputs(spark, args.input)
    formats = file_formats(files, args.format)
    settings = ctx.config["ingest"]
    fields = {name: settings[name] for name in ("text_field", "id_field", "url_field")}
    by_format = ", ".join(f"{sum(f == kind for f in formats.values())} {kind}"
                          for kind in sorted(set(formats.values())))
    print(f"ingest: {len(files)} file(s) ({by_format}) -> {lakehouse.path('pages')}", flush=True)
    max_page_bytes = int(settings["max_page_bytes"])
    # One partition per file, so that no task reads two files while a core idles.
    inputs = spark.createDataFrame(spark.sparkContext.parallelize([(uri,) for uri in files], len(files)),
                                   "uri string")
    # Two reads of every file. The first leaves the HTML out: it counts everything, records the rejects and
    # learns whether any page id repeats. The second writes the pages, and skips the shuffle that drops
    # repeated ids when the first found none (the common case: ids hash the record id, URL and payload).
    outline = inputs.mapInArrow(parse_files(max_page_bytes, False, formats, fields), ddl(PARSED_COLUMNS)) \
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
        raise StageError(no_pages_message(files, reject_counts,
                                          "WARC" if set(formats.values()) == {"warc"} else "WARC or text"))
    ids_unique = sum(r["ids"] for r in totals if r["kind"] == "page") == n_pages
    bytes_total = sum(r["bytes"] or 0 for r in totals if r["kind"] == "page")
    pages = inputs.mapInArrow(parse_files(max_page_bytes, True, formats, fields), ddl(PARSED_COLUMNS)) \
        .where("kind = 'page'") \
        .select(*PAGE_COLUMNS)
    page_result = lakehouse.insert_missing(pages, "pages", ["page_id"], unique_keys=ids_unique)

    summary = {"files": len(files), "pages": n_pages, "pages_new": page_result["inserted"],
               "rejects": sum(reject_counts.values()), "rejects_new": reject_result["inserted"]}
    print(f"ingest: {n_pages} pages ({page_result['inserted']} new, {bytes_total / 1e6:.1f} MB of HTML and text), "
          f"{summary['rejects']} rejected records ({reject_result['inserted']} new)")
    if reject_counts:
        print(reporting.format_counts("rejects by reason", reject_counts))
    mlflow.log_params({"inputs": ",".join(args.input)[:500], "lakehouse": lakehouse.root})
    reporting.log_counts("reject", reject_counts)
    return summary


STAGE = Stage("ingest", "Read WARC files or text corpora (JSON Lines, Parquet) into `pages`; unusable records go "
              "to `rejects`.", run, options,
              writes=("pages", "rejects"), settings=("ingest",),
              check=check_inputs)
