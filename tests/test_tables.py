"""The table registry: each table once, its DDL accepted by Spark as written, its Arrow schema built."""
import pytest

from humpback.tables import TABLES, arrow_schema, schema_differences, table_frame, top_level_split

DESIGN_TABLES = {"pages", "rejects", "segments", "seed", "candidates", "ratings", "training_sets", "evaluations",
                 "scorer_checks", "rewrites"}


def test_every_design_table_is_registered_once_with_its_keys_among_its_columns():
    assert set(TABLES) == DESIGN_TABLES
    for table in TABLES.values():
        assert table.keys and set(table.keys) <= set(table.columns), table.name


@pytest.mark.parametrize("name", sorted(DESIGN_TABLES))
def test_spark_reads_the_registry_ddl_back_as_written(spark, name):
    table = TABLES[name]
    frame = spark.createDataFrame([], table.ddl())
    assert schema_differences(table, frame.schema) == []
    assert arrow_schema(table.columns).names == list(table.columns)


def test_schema_differences_name_missing_retyped_and_extra_columns(spark):
    table = TABLES["seed"]
    frame = spark.createDataFrame([], "example_id string, instruction string, output string, source string, "
                                      "split int, extra string")
    assert schema_differences(table, frame.schema) == [
        "seed.source_file: missing (registry: string)", "seed.split: int, registry says string",
        "seed.extra: not in the registry"]


def test_fixtures_get_the_whole_schema_and_unknown_columns_are_refused(spark):
    frame = table_frame(spark, "ratings", [{"segment_id": "s1", "score": 4.5}])
    assert schema_differences(TABLES["ratings"], frame.schema) == []
    row = frame.first()
    assert (row.segment_id, row.score, row.mode, row.score_probs) == ("s1", 4.5, None, None)
    with pytest.raises(ValueError, match="ratings has no column"):
        table_frame(spark, "ratings", [{"segment_id": "s1", "scroe": 4.5}])


def test_nested_types_split_at_their_own_commas():
    assert top_level_split("string, map<string,double>") == ["string", "map<string,double>"]
    struct = arrow_schema({"s": "struct<a:int,b:map<string,double>>"}).field("s").type
    assert [struct.field(i).name for i in range(struct.num_fields)] == ["a", "b"]
