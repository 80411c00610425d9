"""`humpback segment`: `pages` -> `segments` (header segments, quality signals, drop reasons, dedup)."""
from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Any, Iterator

from humpback.tables import SIGNAL_TYPES, TABLES, arrow_schema, ddl, record_batch
from pipelines.common import Context, StageError, run_stage, stage_parser

BASE_COLUMNS = {
    "kind": "string", "segment_id": "string", "page_id": "string", "url": "string", "position": "int",
    "header": "string", "header_level": "int", "text": "string", "n_chars": "int", "lang": "string",
    "rule_drop": "string", "text_hash": "string", "minhash": "array<long>", "band_keys": "array<string>",
    "reason": "string", "detail": "string",
}
SEGMENT_COLUMNS = list(TABLES["segments"].columns)
# The length plot: bins of 250 characters up to 6,000 (the length rule drops everything over 3,000).
LENGTH_BIN, LENGTH_PLOT_MAX = 250, 6000


def build_parser() -> argparse.ArgumentParser:
    return stage_parser("segment", "Cut `pages` into header segments with quality signals and drop reasons.")


def segment_id(page_id: str, position: int, header: str, text: str) -> str:
    """Stable: the same page always gives the same ids, and identical text on two pages two different ids."""
    return hashlib.sha256(f"{page_id}\x00{position}\x00{header}\x00{text}".encode()).hexdigest()[:32]


OUTPUT_COLUMNS = {**BASE_COLUMNS, **{f"sig_{k}": v for k, v in SIGNAL_TYPES.items()}}


def segment_rows(page_id: str, url: str, html: str, thresholds: dict[str, Any], dedup: dict[str, Any]) -> list[dict]:
    """Segments of one page with signals and rule decisions; a page that cannot be parsed is one reject row."""
    from humpback.quality.dedup import lsh_band_keys, minhash_signature, text_hash
    from humpback.quality.rules import drop_reason
    from humpback.quality.signals import compute_signals
    from humpback.web.segment import PageTooComplex, segment_html

    try:
        segments = segment_html(html or "", max_nodes=int(thresholds["max_nodes"]), max_depth=int(thresholds["max_depth"]))
    except PageTooComplex as err:
        return [{"kind": "reject", "page_id": page_id, "url": url, "reason": err.reason, "detail": str(err)[:500]}]
    if not segments:
        return [{"kind": "reject", "page_id": page_id, "url": url, "reason": "no_segments",
                 "detail": "the page has no h1-h6 header with text under it"}]
    rows = []
    for position, segment in enumerate(segments):
        signals = compute_signals(segment.header, segment.text, segment.level)
        rule = drop_reason(signals, thresholds)
        # Only segments that pass the rules take part in near-duplicate detection; their LSH band keys are
        # computed here, in the same pass, rather than by a separate Python UDF over the signatures.
        minhash = None if rule else minhash_signature(segment.text, int(dedup["num_perm"]), int(dedup["ngram"]),
                                                     int(dedup["seed"]))
        rows.append({
            "kind": "segment", "segment_id": segment_id(page_id, position, segment.header, segment.text),
            "page_id": page_id, "url": url, "position": position, "header": segment.header,
            "header_level": segment.level, "text": segment.text, "n_chars": signals["n_chars"], "lang": signals["lang"],
            "rule_drop": rule, "text_hash": text_hash(segment.text),
            "minhash": minhash,
            "band_keys": None if minhash is None else lsh_band_keys(minhash, int(dedup["bands"]), int(dedup["rows"])),
            **{f"sig_{k}": signals[k] for k in SIGNAL_TYPES},
        })
    return rows


def segment_pages(thresholds: dict[str, Any], dedup: dict[str, Any]):
    """A mapInArrow function over (page_id, url, html) batches."""
    schema = arrow_schema(OUTPUT_COLUMNS)

    def run(batches: Iterator) -> Iterator:
        for batch in batches:
            rows: list[dict] = []
            columns = [batch.column(name).to_pylist() for name in ("page_id", "url", "html")]
            for page_id, url, html in zip(*columns):
                rows.extend(segment_rows(page_id, url, html, thresholds, dedup))
            yield record_batch(rows, schema)

    return run


def mark_duplicates(segments, dedup: dict[str, Any]):
    """drop_reason = the rule decision, else exact_duplicate / near_duplicate; one copy per group is kept."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    threshold = float(dedup["threshold"])
    candidates = segments.where("rule_drop IS NULL")
    # Exact: one segment per normalized-text hash (the smallest id) survives.
    first_of_hash = F.min("segment_id").over(Window.partitionBy("text_hash"))
    exact = candidates.withColumn("exact_dup", F.col("segment_id") != first_of_hash)

    # Near: segments sharing an LSH band key are compared with the bucket's smallest id; a confirmed match
    # (estimated Jaccard >= threshold) marks the larger id as a near duplicate.
    unique = exact.where("NOT exact_dup").select("segment_id", "minhash", "band_keys")
    banded = unique.select("segment_id", "minhash", F.explode("band_keys").alias("band"))
    bucket = Window.partitionBy("band").orderBy("segment_id")
    anchored = banded.withColumn("anchor_id", F.first("segment_id").over(bucket)) \
        .withColumn("anchor_sig", F.first("minhash").over(bucket)) \
        .where("segment_id != anchor_id")
    similarity = F.aggregate(F.arrays_zip("minhash", "anchor_sig"), F.lit(0),
                             lambda acc, pair: acc + F.when(pair["minhash"] == pair["anchor_sig"], 1).otherwise(0))
    near_ids = anchored.where(similarity / F.size("minhash") >= threshold).select("segment_id").distinct() \
        .withColumn("near_dup", F.lit(True))

    decided = segments.join(exact.select("segment_id", "exact_dup"), "segment_id", "left") \
        .join(near_ids, "segment_id", "left")
    return decided.withColumn("drop_reason", F.coalesce(
        F.col("rule_drop"),
        F.when(F.col("exact_dup"), F.lit("exact_duplicate")),
        F.when(F.col("near_dup"), F.lit("near_duplicate")),
    ))


def run(ctx: Context, args: argparse.Namespace) -> int:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark, lakehouse = ctx.spark, ctx.lakehouse
    if not lakehouse.exists("pages"):
        raise StageError(f"no `pages` table in {lakehouse.root}: run `humpback ingest --input GLOB` first")
    thresholds, dedup = dict(ctx.config["segment"]), dict(ctx.config["dedup"])
    pages = lakehouse.read("pages").select("page_id", "url", "html")
    n_pages = pages.count()
    print(f"segment: {n_pages} pages -> {lakehouse.path('segments')}", flush=True)
    # About 50 pages a task: a page takes tens of milliseconds to segment and score, so tasks of a few seconds
    # leave no core idle long at the end of the stage (with 200 a task, one of two cores idled 4 s in 45).
    cores = spark.sparkContext.defaultParallelism
    partitions = max(cores * 4, n_pages // 50)
    parsed = pages.repartition(partitions, "page_id").mapInArrow(segment_pages(thresholds, dedup), ddl(OUTPUT_COLUMNS)) \
        .persist(StorageLevel.DISK_ONLY)
    try:
        segments = parsed.where("kind = 'segment'")
        signals = F.struct(*[F.col(f"sig_{name}").alias(name) for name in SIGNAL_TYPES]).alias("signals")
        decided = mark_duplicates(segments, dedup).select(*[signals if c == "signals" else c for c in SEGMENT_COLUMNS])
        # Fewer, larger files than the many small tasks above would write: about 1,000 pages' segments each.
        decided = decided.coalesce(max(cores, n_pages // 1000))
        # Pages are unique by page_id and a segment id hashes its page id and position: no id repeats.
        result = lakehouse.upsert(decided, "segments", ["segment_id"], unique_keys=True)
        rejects = parsed.where("kind = 'reject'").select(
            F.concat(F.lit("pages:"), F.col("page_id")).alias("source"), F.lit("segment").alias("stage"),
            "reason", F.concat_ws(" ", "detail", F.concat(F.lit("("), F.col("url"), F.lit(")"))).alias("detail"))
        reject_counts = {r["reason"]: r["count"] for r in rejects.groupBy("reason").count().collect()}
        if reject_counts:  # a MERGE costs several Spark jobs even when it has nothing to add
            lakehouse.add_rejects(rejects)
    finally:
        parsed.unpersist()

    # The whole table, earlier runs included: counts per drop reason and length bin in one aggregate.
    by_reason_and_length = lakehouse.read("segments").groupBy(
        "drop_reason", (F.floor(F.col("n_chars") / LENGTH_BIN) * LENGTH_BIN).alias("bin")).count().collect()
    report(ctx, n_pages, by_reason_and_length, reject_counts, result, thresholds, dedup)
    return 0


def report(ctx: Context, n_pages: int, by_reason_and_length: list, reject_counts: dict, result: dict,
           thresholds: dict, dedup: dict) -> None:
    """Print the counts per drop and reject reason, and log them with a length plot to MLflow."""
    import tempfile
    from collections import Counter

    import mlflow

    from humpback import reporting
    from humpback.tracking import start_run

    drop_counts, kept_bins, dropped_bins = Counter(), Counter(), Counter()
    for row in by_reason_and_length:
        drop_counts[row["drop_reason"] or "kept"] += row["count"]
        if row["bin"] is not None and row["bin"] <= LENGTH_PLOT_MAX:
            (dropped_bins if row["drop_reason"] else kept_bins)[row["bin"]] += row["count"]
    drop_counts = dict(drop_counts)
    total = sum(drop_counts.values())
    print(f"segment: {total} segments from {n_pages} pages ({result['inserted']} new, {result['updated']} refreshed); "
          f"kept {drop_counts.get('kept', 0)}")
    print(reporting.format_counts("segments by drop reason (kept = no rule fired)", drop_counts))
    if reject_counts:
        print(reporting.format_counts("pages rejected by reason", reject_counts))
    series = {"kept": sorted(kept_bins.items()), "dropped": sorted(dropped_bins.items())}
    ctx.mlflow_uri  # noqa: B018 - configures the tracking store
    with start_run("segment", ctx.config, stage="segment"), tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({**{f"segment.{k}": v for k, v in thresholds.items()},
                           **{f"dedup.{k}": v for k, v in dedup.items()}})
        mlflow.log_metrics({"pages": float(n_pages), "segments": float(total),
                            "kept": float(drop_counts.get("kept", 0))})
        reporting.log_counts("drop", drop_counts)
        reporting.log_counts("reject", reject_counts)
        plot = reporting.histogram_plot(series, f"Segment lengths (characters; capped at {LENGTH_PLOT_MAX:,})", "characters",
                                        f"{tmp}/segment_lengths.png", LENGTH_BIN)
        mlflow.log_artifact(str(plot))


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
