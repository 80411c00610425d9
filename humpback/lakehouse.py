"""Delta tables under one root: locations, bare-name SQL access, idempotent upserts and history."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

# A training set logged in MLflow names a Delta version; these keep that version readable for ten years.
RETENTION = "interval 3650 days"
TABLE_DEFAULTS = {
    "spark.databricks.delta.properties.defaults.logRetentionDuration": RETENTION,
    "spark.databricks.delta.properties.defaults.deletedFileRetentionDuration": RETENTION,
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REJECTS = "rejects"
REJECT_COLUMNS = ("source", "stage", "reason", "detail")


def lakehouse_root(explicit: str | None = None) -> str:
    """`--lakehouse`, else HUMPBACK_LAKEHOUSE, else ./lakehouse; local paths made absolute."""
    root = explicit or os.environ.get("HUMPBACK_LAKEHOUSE") or "lakehouse"
    if "://" in root or root.startswith("file:"):
        return root.rstrip("/")
    return str(Path(root).expanduser().resolve())


class Lakehouse:
    """The project's Delta tables, each a folder `<root>/<name>`."""

    def __init__(self, spark: SparkSession, root: str | None = None):
        self.spark = spark
        self.root = lakehouse_root(root)
        for key, value in TABLE_DEFAULTS.items():
            spark.conf.set(key, value)

    def path(self, table: str) -> str:
        return f"{self.root}/{table}"

    def exists(self, table: str) -> bool:
        return DeltaTable.isDeltaTable(self.spark, self.path(table))

    def tables(self) -> list[str]:
        """Names of the Delta tables that exist under the root."""
        jvm = self.spark.sparkContext._jvm
        root = jvm.org.apache.hadoop.fs.Path(self.root)
        fs = root.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())
        if not fs.exists(root):
            return []
        names = [status.getPath().getName() for status in fs.listStatus(root) if status.isDirectory()]
        return sorted(name for name in names if not name.startswith(("_", ".")) and self.exists(name))

    def register_tables(self) -> list[str]:
        """Make every existing table addressable by its bare name (time travel included) in this session."""
        names = [name for name in self.tables() if _IDENTIFIER.match(name)]
        for name in names:
            if self.spark.catalog.tableExists(name):
                if _same_location(self._registered_location(name), self.path(name)):
                    continue
                # An external table: dropping it forgets the name and leaves the data where it is.
                self.spark.sql(f"DROP TABLE `{name}`")
            self.spark.catalog.createTable(name, path=self.path(name), source="delta")
        return names

    def _registered_location(self, name: str) -> str:
        try:
            return self.spark.sql(f"DESCRIBE DETAIL `{name}`").first()["location"]
        except Exception:  # a view or a non-Delta table of the same name
            return ""

    def read(self, table: str, version: int | None = None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", int(version))
        return reader.load(self.path(table))

    def version(self, table: str) -> int:
        return int(DeltaTable.forPath(self.spark, self.path(table)).history(1).first()["version"])

    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits newest first: version, timestamp, operation, parameters, metrics and the writer's userMetadata."""
        table_history = DeltaTable.forPath(self.spark, self.path(table)).history(limit)
        columns = ["version", "timestamp", "operation", "operationParameters", "operationMetrics", "userMetadata"]
        return [row.asDict(recursive=True) for row in table_history.select(*columns).collect()]

    def write(self, df: DataFrame, table: str, mode: str = "append", partition_by: Sequence[str] = ()) -> int:
        self._save(df, table, mode, partition_by)
        return self.version(table)

    def _save(self, df: DataFrame, table: str, mode: str = "append", partition_by: Sequence[str] = ()) -> None:
        writer = df.write.format("delta").mode(mode)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(self.path(table))

    def upsert(self, df: DataFrame, table: str, keys: Sequence[str], update: bool = True,
               unique_keys: bool = False) -> dict[str, int]:
        """MERGE `df` into `table` on `keys`: new keys inserted, existing ones updated (or left alone).

        Re-running with the same rows changes nothing, so every stage can be retried safely. `unique_keys`: the
        caller guarantees no key repeats in `df`, which saves the shuffle that would otherwise drop repeats.
        Returns the new version and the inserted/updated row counts.
        """
        if not keys:
            raise ValueError("upsert needs at least one key column")
        source = df if unique_keys else df.dropDuplicates(list(keys))
        if not self.exists(table):
            self._save(source, table)
            # The commit records how many rows it wrote: no second pass over the new table to count them.
            last = self.history(table, 1)[0]
            inserted = int((last.get("operationMetrics") or {}).get("numOutputRows", 0))
            return {"version": int(last["version"]), "inserted": inserted, "updated": 0}
        condition = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in keys)
        # Schema evolution: a table written by an earlier version gains the columns a newer stage writes.
        merge = DeltaTable.forPath(self.spark, self.path(table)).alias("t").merge(source.alias("s"), condition) \
            .withSchemaEvolution()
        if update:
            merge = merge.whenMatchedUpdateAll()
        merge.whenNotMatchedInsertAll().execute()
        last = self.history(table, 1)[0]
        metrics = last.get("operationMetrics") or {}
        return {
            "version": int(last["version"]),
            "inserted": int(metrics.get("numTargetRowsInserted", 0)),
            "updated": int(metrics.get("numTargetRowsUpdated", 0)),
        }

    def insert_missing(self, df: DataFrame, table: str, keys: Sequence[str],
                       unique_keys: bool = False) -> dict[str, int]:
        """Append only the rows whose keys the table does not hold yet (resumable, duplicate-free writes)."""
        return self.upsert(df, table, keys, update=False, unique_keys=unique_keys)

    def add_rejects(self, rows: DataFrame | Iterable[dict[str, Any]]) -> dict[str, int]:
        """Record inputs a stage could not use; the same reject recorded twice is kept once."""
        if not isinstance(rows, DataFrame):
            records = [{c: str(r.get(c) or "") for c in REJECT_COLUMNS} for r in rows]
            if not records:
                return {"version": self.version(REJECTS) if self.exists(REJECTS) else -1, "inserted": 0, "updated": 0}
            rows = self.spark.createDataFrame(records, schema=", ".join(f"{c} string" for c in REJECT_COLUMNS))
        cols = [F.coalesce(F.col(c).cast("string"), F.lit("")) for c in REJECT_COLUMNS]
        with_id = rows.select(
            F.substring(F.sha2(F.concat_ws("\x00", *cols), 256), 1, 32).alias("reject_id"),
            *[c.alias(name) for c, name in zip(cols, REJECT_COLUMNS)],
            F.current_timestamp().alias("recorded_at"),
        )
        return self.insert_missing(with_id, REJECTS, ["reject_id"])


def set_thresholds(history: Iterable[dict[str, Any]]) -> dict[int, float]:
    """{iteration: min_score} of the newest training set of each iteration, from `training_sets`' history (newest
    first, as Lakehouse.history gives it): the threshold that set really used, whatever the defaults say now."""
    thresholds: dict[int, float] = {}
    for commit in history:
        try:
            metadata = json.loads(commit.get("userMetadata") or "")
            iteration, min_score = int(metadata["iteration"]), float(metadata["settings"]["min_score"])
        except (ValueError, KeyError, TypeError):
            continue  # a commit not made by `trainset` (a manual fix, an old format)
        thresholds.setdefault(iteration, min_score)
    return thresholds


def _same_location(location: str, path: str) -> bool:
    strip = lambda value: value.replace("file://", "").replace("file:", "").rstrip("/")  # noqa: E731
    return strip(location) == strip(path)
