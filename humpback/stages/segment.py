"""`humpback segment`: `pages` -> `segments` (header segments, quality signals, drop reasons, dedup).

Signals are stored, decisions are SQL. A page is parsed once: each of its segments gets its signals (the `signals`
struct) and its exact-duplicate key. The drop rules are sql/segment_drops.sql over those signals, with the
[segment] thresholds as named parameters; exact and near duplicates are then marked in Spark among the segments no
rule dropped, their MinHash signatures computed from the text of those segments only. `humpback segment
--redecide` reruns the decision on the stored table after a threshold change, without reading a page.
"""
from __future__ import annotations

import argparse
import json
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

from humpback.ids import segment_id
from humpback.quality.rules import DUPLICATE_REASONS
from humpback.stage import Context, Stage, StageError
from humpback.tables import SIGNAL_TYPES, TABLES, TEXT_CONTENT_TYPE, arrow_schema, ddl, record_batch

# What the parsing pass returns per segment (kind = 'segment') or per page it could not use (kind = 'reject').
BASE_COLUMNS = {
    "kind": "string", "segment_id": "string", "page_id": "string", "url": "string", "position": "int",
    "header": "string", "header_level": "int", "text": "string", "n_chars": "int", "lang": "string",
    "text_hash": "string", "reason": "string", "detail": "string",
}
OUTPUT_COLUMNS = {**BASE_COLUMNS, **{f"sig_{k}": v for k, v in SIGNAL_TYPES.items()}}
# What the near-duplicate pass returns for each segment the rules kept.
SIGNATURE_COLUMNS = {"segment_id": "string", "text_hash": "string", "minhash": "array<long>",
                     "band_keys": "array<string>"}
SEGMENT_COLUMNS = list(TABLES["segments"].columns)
RULES_SQL = "segment_drops"  # sql/segment_drops.sql
SIGNALS_VIEW = "segment_signals"  # the view that file reads
# The length plot: bins of 250 characters up to 6,000 (the length rule drops everything over 3,000).
LENGTH_BIN, LENGTH_PLOT_MAX = 250, 6000


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redecide", action="store_true",
        help="apply the drop rules (sql/segment_drops.sql, thresholds from [segment], e.g. --set "
             "segment.min_chars=400) to the stored signals of `segments` and update drop_reason, without reading "
             "or parsing a page; duplicate marks are kept unless the set of segments the rules keep changed, when "
             "they are marked again among those from the stored text (a change of [dedup] needs a full run)")


def segment_rows(page_id: str, url: str, html: str, limits: dict[str, Any],
                 content_type: str | None = None) -> list[dict]:
    """Segments of one page with their signals and exact-duplicate key; a page that cannot be parsed is one reject
    row. `limits`: the [segment] settings (max_nodes and max_depth bound the parsing, min_chars and max_chars the
    paragraph groups of text). A text corpus's document (content_type text/markdown, its text in `html`) is cut at
    its Markdown headers, HTML at its h1-h6. No decision is made here: sql/segment_drops.sql decides."""
    from humpback.quality.dedup import text_hash
    from humpback.quality.signals import compute_signals
    from humpback.web.segment import PageTooComplex, segment_html
    from humpback.web.text_segment import segment_text

    try:
        if content_type == TEXT_CONTENT_TYPE:
            segments = segment_text(html or "", int(limits["min_chars"]), int(limits["max_chars"]))
        else:
            segments = segment_html(html or "", max_nodes=int(limits["max_nodes"]),
                                    max_depth=int(limits["max_depth"]))
    except PageTooComplex as err:
        return [{"kind": "reject", "page_id": page_id, "url": url, "reason": err.reason, "detail": str(err)[:500]}]
    if not segments:
        return [{"kind": "reject", "page_id": page_id, "url": url, "reason": "no_segments",
                 "detail": "the page has no header with text under it, and no text"}]
    rows = []
    for position, segment in enumerate(segments):
        signals = compute_signals(segment.header, segment.text, segment.level)
        rows.append({
            "kind": "segment", "segment_id": segment_id(page_id, position, segment.header, segment.text),
            "page_id": page_id, "url": url, "position": position, "header": segment.header,
            "header_level": segment.level, "text": segment.text, "n_chars": signals["n_chars"], "lang": signals["lang"],
            "text_hash": text_hash(segment.text),
            **{f"sig_{k}": signals[k] for k in SIGNAL_TYPES},
        })
    return rows


def segment_pages(limits: dict[str, Any]):
    """A mapInArrow function over (page_id, url, html, content_type) batches."""
    schema = arrow_schema(OUTPUT_COLUMNS)

    def run(batches: Iterator) -> Iterator:
        for batch in batches:
            rows: list[dict] = []
            columns = [batch.column(name).to_pylist() for name in ("page_id", "url", "html", "content_type")]
            for page_id, url, html, content_type in zip(*columns):
                rows.extend(segment_rows(page_id, url, html, limits, content_type))
            yield record_batch(rows, schema)

    return run


def near_duplicate_signature(text: str, dedup: dict[str, Any]) -> tuple[list[int], list[str]]:
    """(MinHash signature, LSH band keys) of a segment's text, with the [dedup] settings."""
    from humpback.quality.dedup import lsh_band_keys, minhash_signature

    minhash = minhash_signature(text, int(dedup["num_perm"]), int(dedup["ngram"]), int(dedup["seed"]))
    return minhash, lsh_band_keys(minhash, int(dedup["bands"]), int(dedup["rows"]))


def segment_signatures(dedup: dict[str, Any]):
    """A mapInArrow function over (segment_id, text_hash, text) batches -> SIGNATURE_COLUMNS."""
    schema = arrow_schema(SIGNATURE_COLUMNS)

    def run(batches: Iterator) -> Iterator:
        for batch in batches:
            rows = []
            for segment, key, text in zip(*(batch.column(name).to_pylist()
                                             for name in ("segment_id", "text_hash", "text"))):
                minhash, band_keys = near_duplicate_signature(text or "", dedup)
                rows.append({"segment_id": segment, "text_hash": key, "minhash": minhash, "band_keys": band_keys})
            yield record_batch(rows, schema)

    return run


def rule_parameters(settings: dict[str, Any]) -> dict[str, Any]:
    """The named parameters of sql/segment_drops.sql: the [segment] settings of the same names."""
    from humpback.sqlfiles import load_sql

    wanted = load_sql(RULES_SQL).parameters
    missing = sorted(wanted - set(settings))
    if missing:
        raise StageError(f"sql/{RULES_SQL}.sql needs the [segment] settings {', '.join(missing)}")
    return {name: settings[name] for name in sorted(wanted)}


def decide(spark, segments, settings: dict[str, Any]):
    """`segments` (any columns, with `signals`) plus `rule_drop`, the first drop rule that fires (NULL: none), as
    sql/segment_drops.sql decides it with the thresholds in `settings` ([segment])."""
    from humpback.sqlfiles import load_sql, run_sql

    segments.createOrReplaceTempView(SIGNALS_VIEW)
    try:
        return run_sql(spark, load_sql(RULES_SQL), rule_parameters(settings))
    finally:
        # The query's plan holds the view's plan already; the name is not left behind in the session.
        spark.catalog.dropTempView(SIGNALS_VIEW)


@contextmanager
def duplicates_marked(decided, dedup: dict[str, Any]):
    """`decided` (with `rule_drop`, `text_hash`, `text`) plus drop_reason = the rule decision, else exact_duplicate /
    near_duplicate; one copy per group is kept. Only segments that pass the rules take part, and only they get a
    MinHash signature, from their text. The signatures are cached while the block runs: the exact and the near
    branch both read them, and a second evaluation would compute every signature again."""
    from pyspark import StorageLevel

    signatures = decided.where("rule_drop IS NULL").select("segment_id", "text_hash", "text") \
        .mapInArrow(segment_signatures(dedup), ddl(SIGNATURE_COLUMNS)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield mark_duplicates(decided, signatures, float(dedup["threshold"]))
    finally:
        signatures.unpersist()


def mark_duplicates(decided, candidates, threshold: float):
    """drop_reason over `decided`, from the `candidates`' signatures (SIGNATURE_COLUMNS: the segments no rule
    dropped); near duplicates are confirmed at an estimated Jaccard >= threshold."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Exact: one segment per normalized-text hash (the smallest id) survives; a row without a hash (hand-made)
    # is a group of its own.
    first_of_hash = F.min("segment_id").over(Window.partitionBy(F.coalesce("text_hash", "segment_id")))
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

    marked = decided.join(exact.select("segment_id", "exact_dup"), "segment_id", "left") \
        .join(near_ids, "segment_id", "left")
    return marked.withColumn("drop_reason", F.coalesce(
        F.col("rule_drop"),
        F.when(F.col("exact_dup"), F.lit("exact_duplicate")),
        F.when(F.col("near_dup"), F.lit("near_duplicate")),
    ))


def run(ctx: Context, args: argparse.Namespace) -> dict[str, float]:
    if getattr(args, "redecide", False):
        return redecide(ctx)
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark, lakehouse = ctx.spark, ctx.lakehouse
    settings, dedup = dict(ctx.config["segment"]), dict(ctx.config["dedup"])
    log_rules_sql()
    pages = lakehouse.read("pages").select("page_id", "url", "html", "content_type")
    n_pages = pages.count()
    print(f"segment: {n_pages} pages -> {lakehouse.path('segments')}", flush=True)
    # About 50 pages a task: a page takes tens of milliseconds to segment and score, so tasks of a few seconds
    # leave no core idle long at the end of the stage (with 200 a task, one of two cores idled 4 s in 45).
    cores = spark.sparkContext.defaultParallelism
    partitions = max(cores * 4, n_pages // 50)
    parsed = pages.repartition(partitions, "page_id").mapInArrow(segment_pages(settings), ddl(OUTPUT_COLUMNS)) \
        .persist(StorageLevel.DISK_ONLY)
    try:
        signals = F.struct(*[F.col(f"sig_{name}").alias(name) for name in SIGNAL_TYPES]).alias("signals")
        segments = parsed.where("kind = 'segment'").select(
            *[signals if c == "signals" else c for c in SEGMENT_COLUMNS if c != "drop_reason"])
        with duplicates_marked(decide(spark, segments, settings), dedup) as decided:
            # Fewer, larger files than the many small tasks above would write: about 1,000 pages' segments each.
            decided = decided.select(*SEGMENT_COLUMNS).coalesce(max(cores, n_pages // 1000))
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

    drop_counts = report(table_counts(lakehouse), reject_counts, lambda total, kept: (
        f"segment: {total} segments from {n_pages} pages ({result['inserted']} new, {result['updated']} refreshed); "
        f"kept {kept}"))
    return {"pages": n_pages, "segments": sum(drop_counts.values()), "kept": drop_counts.get("kept", 0)}


def redecide(ctx: Context) -> dict[str, float]:
    """Apply the drop rules to the stored signals again (new thresholds) and update `drop_reason` where it changed:
    one Delta MERGE of the changed rows, no page read, no signal recomputed.

    Duplicate marks are kept when the segments that pass the rules are the same ones as before (a change among
    rule reasons only, or none). When segments join or leave that set, the marks are made again among the new set,
    from the stored text and text_hash: kept marks would leave duplicates among the newly passing segments and drop
    a whole group whose kept copy a rule now drops. Either way the table ends as a full run with these thresholds
    would write it. [dedup] settings are not re-applied to kept marks: changing them needs a full run."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from humpback import reporting

    spark, lakehouse = ctx.spark, ctx.lakehouse
    settings, dedup = dict(ctx.config["segment"]), dict(ctx.config["dedup"])
    sql_sha256 = log_rules_sql()
    version = lakehouse.version("segments")
    stored = lakehouse.read("segments", version).select(
        "segment_id", "text_hash", "text", "signals", F.col("drop_reason").alias("old_reason"))
    decided = decide(spark, stored, settings)
    passed_before = F.col("old_reason").isNull() | F.col("old_reason").isin(*DUPLICATE_REASONS)
    pool_changes = decided.where(passed_before != F.col("rule_drop").isNull()).count()
    print(f"segment --redecide: `segments` version {version}; " + (
        f"{pool_changes} segments join or leave the set the rules keep: duplicates are marked again in it"
        if pool_changes else "no segment joins or leaves the set the rules keep: duplicate marks kept"), flush=True)
    kept_marks = decided.withColumn("drop_reason", F.coalesce(
        "rule_drop", F.when(F.col("old_reason").isin(*DUPLICATE_REASONS), F.col("old_reason"))))
    with duplicates_marked(decided, dedup) if pool_changes else nullcontext(kept_marks) as redecided:
        changes = redecided.where(~F.col("drop_reason").eqNullSafe(F.col("old_reason"))) \
            .select("segment_id", "old_reason", "drop_reason").persist(StorageLevel.MEMORY_AND_DISK)
        try:
            transitions = {f"{row['old_reason'] or 'kept'} -> {row['drop_reason'] or 'kept'}": row["count"]
                           for row in changes.groupBy("old_reason", "drop_reason").count().collect()}
            changed = sum(transitions.values())
            if changed:
                update_drop_reasons(spark, lakehouse, changes, {
                    "stage": "segment --redecide", "read_version": version, "segment_drops_sql_sha256": sql_sha256,
                    "thresholds": rule_parameters(settings), "duplicates_marked_again": bool(pool_changes)})
        finally:
            changes.unpersist()

    drop_counts = report(table_counts(lakehouse), {}, lambda total, kept: (
        f"segment --redecide: {changed} of {total} segments changed drop reason; kept {kept}"))
    if transitions:
        print(reporting.format_counts("changed drop reasons (before -> after)", transitions))
    return {"segments": sum(drop_counts.values()), "kept": drop_counts.get("kept", 0), "changed": changed,
            "duplicates_marked_again": float(bool(pool_changes))}


def update_drop_reasons(spark, lakehouse, changes, metadata: dict[str, Any]) -> None:
    """One MERGE that sets drop_reason on the changed rows only (their other columns untouched), the decision's
    inputs recorded in the commit's userMetadata."""
    from delta.tables import DeltaTable

    key = "spark.databricks.delta.commitInfo.userMetadata"
    previous = spark.conf.get(key, None)
    spark.conf.set(key, json.dumps(metadata, sort_keys=True))
    try:
        DeltaTable.forPath(spark, lakehouse.path("segments")).alias("t") \
            .merge(changes.alias("s"), "t.segment_id = s.segment_id") \
            .whenMatchedUpdate(set={"drop_reason": "s.drop_reason"}).execute()
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def log_rules_sql() -> str:
    """The sha256 of sql/segment_drops.sql as it decides this run, logged as an MLflow parameter."""
    import mlflow

    from humpback.sqlfiles import load_sql

    sha256 = load_sql(RULES_SQL).sha256
    mlflow.log_param(f"segment.{RULES_SQL}_sql_sha256", sha256)
    return sha256


def table_counts(lakehouse) -> list:
    """The whole table, earlier runs included: counts per drop reason and length bin in one aggregate."""
    from pyspark.sql import functions as F

    return lakehouse.read("segments").groupBy(
        "drop_reason", (F.floor(F.col("n_chars") / LENGTH_BIN) * LENGTH_BIN).alias("bin")).count().collect()


def report(by_reason_and_length: list, reject_counts: dict, headline) -> dict[str, int]:
    """Print `headline(total, kept)` and the counts per drop and reject reason, and log them with a length plot to
    MLflow; returns the counts per drop reason (`kept`: no rule fired)."""
    import tempfile
    from collections import Counter

    import mlflow

    from humpback import reporting

    drop_counts, kept_bins, dropped_bins = Counter(), Counter(), Counter()
    for row in by_reason_and_length:
        drop_counts[row["drop_reason"] or "kept"] += row["count"]
        if row["bin"] is not None and row["bin"] <= LENGTH_PLOT_MAX:
            (dropped_bins if row["drop_reason"] else kept_bins)[row["bin"]] += row["count"]
    drop_counts = dict(drop_counts)
    print(headline(sum(drop_counts.values()), drop_counts.get("kept", 0)))
    print(reporting.format_counts("segments by drop reason (kept = no rule fired)", drop_counts))
    if reject_counts:
        print(reporting.format_counts("pages rejected by reason", reject_counts))
    series = {"kept": sorted(kept_bins.items()), "dropped": sorted(dropped_bins.items())}
    reporting.log_counts("drop", drop_counts)
    reporting.log_counts("reject", reject_counts)
    with tempfile.TemporaryDirectory() as tmp:
        plot = reporting.histogram_plot(series, f"Segment lengths (characters; capped at {LENGTH_PLOT_MAX:,})",
                                        "characters", f"{tmp}/segment_lengths.png", LENGTH_BIN)
        mlflow.log_artifact(str(plot))
    return drop_counts


STAGE = Stage("segment", "Cut `pages` into header segments with quality signals and drop reasons.", run,
              options=options, reads=lambda args: ("segments",) if args.redecide else ("pages",),
              writes=("segments", "rejects"), settings=("segment", "dedup"),
              run_name=lambda ctx, args: "segment-redecide" if getattr(args, "redecide", False) else "segment")
