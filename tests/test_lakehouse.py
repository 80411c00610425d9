"""Real Delta tables: versions, time travel, bare names in SQL, idempotent upserts, rejects, retention."""
import json

import pytest

from humpback.lakehouse import RETENTION, Lakehouse, lakehouse_root, set_thresholds


def test_root_comes_from_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HUMPBACK_LAKEHOUSE", str(tmp_path / "env"))
    assert lakehouse_root(str(tmp_path / "arg")) == str(tmp_path / "arg")
    assert lakehouse_root(None) == str(tmp_path / "env")
    assert lakehouse_root("s3a://bucket/lake/") == "s3a://bucket/lake"


def test_table_written_twice_reads_version_zero_by_time_travel(spark, lakehouse):
    assert lakehouse.write(spark.createDataFrame([(1, "a")], "id int, v string"), "letters") == 0
    assert lakehouse.write(spark.createDataFrame([(2, "b"), (3, "c")], "id int, v string"), "letters") == 1
    assert lakehouse.read("letters").count() == 3
    assert [r.v for r in lakehouse.read("letters", version=0).collect()] == ["a"]
    history = lakehouse.history("letters")
    assert [h["version"] for h in history] == [1, 0]
    assert history[0]["operation"] == "WRITE"


def test_every_table_is_addressable_by_bare_name_with_time_travel(spark, lakehouse):
    lakehouse.write(spark.createDataFrame([(1,)], "n int"), "first_table")
    lakehouse.write(spark.createDataFrame([(2,)], "n int"), "first_table")
    lakehouse.write(spark.createDataFrame([(9,)], "n int"), "second_table")
    assert lakehouse.register_tables() == ["first_table", "second_table"]
    assert spark.sql("SELECT sum(n) AS s FROM first_table").first()["s"] == 3
    assert spark.sql("SELECT sum(n) AS s FROM first_table VERSION AS OF 0").first()["s"] == 1
    assert spark.sql("SELECT n FROM second_table").first()["n"] == 9


def test_bare_names_follow_the_lakehouse_in_use(spark, tmp_path):
    one, two = Lakehouse(spark, str(tmp_path / "one")), Lakehouse(spark, str(tmp_path / "two"))
    one.write(spark.createDataFrame([(1,)], "n int"), "shared_name")
    two.write(spark.createDataFrame([(2,)], "n int"), "shared_name")
    one.register_tables()
    assert spark.sql("SELECT n FROM shared_name").first()["n"] == 1
    two.register_tables()
    assert spark.sql("SELECT n FROM shared_name").first()["n"] == 2


def test_upsert_is_idempotent_and_updates_matches(spark, lakehouse):
    rows = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    assert lakehouse.upsert(rows, "kv", ["id"])["inserted"] == 2
    again = lakehouse.upsert(rows, "kv", ["id"])
    assert again["inserted"] == 0
    assert lakehouse.read("kv").count() == 2
    changed = lakehouse.upsert(spark.createDataFrame([(2, "B"), (3, "c")], "id int, v string"), "kv", ["id"])
    assert (changed["inserted"], changed["updated"]) == (1, 1)
    assert sorted((r.id, r.v) for r in lakehouse.read("kv").collect()) == [(1, "a"), (2, "B"), (3, "c")]


def test_insert_missing_never_overwrites(spark, lakehouse):
    lakehouse.insert_missing(spark.createDataFrame([(1, "first")], "id int, v string"), "once", ["id"])
    result = lakehouse.insert_missing(spark.createDataFrame([(1, "second"), (1, "third")], "id int, v string"), "once", ["id"])
    assert result["inserted"] == 0
    assert [r.v for r in lakehouse.read("once").collect()] == ["first"]


def test_first_write_counts_its_rows_and_repeated_keys_are_dropped_unless_declared_unique(spark, lakehouse):
    rows = spark.createDataFrame([(1, "a"), (1, "a"), (2, "b")], "id int, v string")
    assert lakehouse.upsert(rows, "dedup", ["id"]) == {"version": 0, "inserted": 2, "updated": 0}
    # unique_keys trusts the caller: no shuffle to drop repeats, so the repeat is written as given.
    assert lakehouse.upsert(rows, "trusted", ["id"], unique_keys=True)["inserted"] == 3
    assert lakehouse.read("trusted").count() == 3


def test_upsert_needs_a_key(spark, lakehouse):
    with pytest.raises(ValueError, match="key"):
        lakehouse.upsert(spark.createDataFrame([(1,)], "n int"), "nokey", [])


def test_rejects_are_recorded_once(lakehouse):
    reject = {"source": "a.warc.gz#3", "stage": "ingest", "reason": "empty_body", "detail": "0 bytes"}
    lakehouse.add_rejects([reject, reject])
    lakehouse.add_rejects([reject])
    rows = lakehouse.read("rejects").collect()
    assert len(rows) == 1
    assert (rows[0].stage, rows[0].reason) == ("ingest", "empty_body")


def test_tables_get_long_retention(spark, lakehouse):
    lakehouse.write(spark.createDataFrame([(1,)], "n int"), "kept")
    properties = {r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{lakehouse.path('kept')}`").collect()}
    assert properties["delta.logRetentionDuration"] == RETENTION
    assert properties["delta.deletedFileRetentionDuration"] == RETENTION


def test_tables_lists_only_delta_tables(spark, lakehouse, tmp_path):
    lakehouse.write(spark.createDataFrame([(1,)], "n int"), "real")
    (tmp_path / "lakehouse" / "not_a_table").mkdir()
    assert lakehouse.tables() == ["real"]


def test_set_thresholds_come_from_the_newest_set_of_each_iteration(spark, lakehouse):
    frame = spark.createDataFrame([("a5", 1)], "set_name string, iteration int")
    commits = [({"stage": "trainset", "iteration": 1, "settings": {"min_score": 4.5}}),
               None,  # a manual write without metadata
               ({"stage": "trainset", "iteration": 1, "settings": {"min_score": 2.75}}),
               ({"stage": "trainset", "iteration": 2, "settings": {"min_score": 4}})]
    for metadata in commits:
        writer = frame.write.format("delta").mode("append")
        if metadata is not None:
            writer = writer.option("userMetadata", json.dumps(metadata))
        writer.save(lakehouse.path("sets"))
    assert set_thresholds(lakehouse.history("sets")) == {1: 2.75, 2: 4.0}
    assert set_thresholds([{"userMetadata": "not json"}, {}]) == {}
