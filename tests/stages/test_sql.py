"""`humpback sql`: formats, time travel by bare name, and one- or two-line errors."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from humpback.stages import sql

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def letters(spark, lakehouse):
    lakehouse.write(spark.createDataFrame([(1, "a")], "id int, v string"), "letters")
    lakehouse.write(spark.createDataFrame([(2, "b")], "id int, v string"), "letters")
    return lakehouse


def run_sql(lakehouse, capsys, *args):
    code = sql.STAGE.main([*args, "--lakehouse", lakehouse.root])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_jsonl_time_travel_through_the_cli(letters, capsys):
    code, out, _ = run_sql(letters, capsys, "SELECT id, v FROM letters VERSION AS OF 0", "--format", "jsonl")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [{"id": 1, "v": "a"}]
    code, out, _ = run_sql(letters, capsys, "SELECT id FROM letters ORDER BY id", "--format", "jsonl")
    assert out == '{"id": 1}\n{"id": 2}\n'


def test_csv_and_table_formats(letters, capsys):
    _, out, _ = run_sql(letters, capsys, "SELECT id, v FROM letters ORDER BY id", "--format", "csv")
    assert list(csv.reader(io.StringIO(out))) == [["id", "v"], ["1", "a"], ["2", "b"]]
    _, out, _ = run_sql(letters, capsys, "SELECT id, v FROM letters ORDER BY id")
    lines = out.splitlines()
    assert lines[0].split("|")[0].strip() == "id" and lines[-1] == "(2 rows)"


def test_table_format_says_when_rows_were_cut(letters, capsys):
    _, out, _ = run_sql(letters, capsys, "SELECT * FROM range(5)", "--limit", "3")
    assert "(3 rows)" in out and "first 3 rows shown" in out


def test_unknown_table_lists_the_tables_that_exist(letters, capsys):
    code, out, err = run_sql(letters, capsys, "SELECT * FROM no_such_table")
    assert code != 0 and out == ""
    assert "no_such_table" in err and "Tables in" in err and "letters" in err
    assert len(err.strip().splitlines()) <= 2


def test_syntax_error_is_short(letters, capsys):
    code, _, err = run_sql(letters, capsys, "SELEC 1")
    assert code != 0
    assert "PARSE_SYNTAX_ERROR" in err or "Syntax error" in err
    assert len(err.strip().splitlines()) <= 2 and "at org.apache" not in err


def test_select_one_prints_exactly_one_json_object(humpback_cli, tmp_path):
    result = humpback_cli("sql", "SELECT 1 AS x", "--format", "jsonl", "--lakehouse", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == '{"x": 1}\n'


def test_cli_error_has_no_java_stack_trace(humpback_cli, tmp_path):
    result = humpback_cli("sql", "SELECT * FROM missing_table", "--lakehouse", str(tmp_path))
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("humpback sql: error:")]
    assert len(error_lines) == 1 and "missing_table" in error_lines[0] and "none yet" in error_lines[0]
    assert "\tat " not in result.stderr and "Traceback" not in result.stderr


# The JVM itself prints this when Spark's launcher enables the Vector API; no option turns it off.
JVM_LAUNCH_WARNING = "WARNING: Using incubator modules:"


def test_unknown_table_error_is_one_short_line_without_log_records(humpback_cli, tmp_path):
    result = humpback_cli("--lakehouse", str(tmp_path), "sql", "SELECT * FROM no_such_table")
    assert result.returncode != 0 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith(JVM_LAUNCH_WARNING)]
    # PySpark's SQLQueryContextLogger used to print a JSON record of ~7 KB (with the JVM stack trace) first.
    assert "SQLQueryContextLogger" not in result.stderr and '{"ts"' not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("humpback sql: error:") and "no_such_table" in lines[0]
    assert len(result.stderr.encode()) < 300 + len(str(tmp_path))


def test_query_error_records_are_shown_only_at_a_verbose_log_level(spark):
    import logging

    from pyspark.logger import PySparkLogger

    from humpback.spark import QUERY_CONTEXT_LOGGERS, quiet_query_context_loggers

    loggers = [PySparkLogger.getLogger(name) for name in QUERY_CONTEXT_LOGGERS]
    try:
        assert not any(logger.isEnabledFor(logging.ERROR) for logger in loggers)  # the session's level: WARN
        quiet_query_context_loggers("INFO")
        assert all(logger.isEnabledFor(logging.ERROR) for logger in loggers)
    finally:
        quiet_query_context_loggers("WARN")
    assert not any(logger.isEnabledFor(logging.ERROR) for logger in loggers)


@pytest.mark.slow
def test_spark_submit_master_is_respected(tmp_path):
    import pyspark

    from humpback.spark import delta_jars

    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = dict(os.environ, SPARK_HOME=str(Path(pyspark.__file__).parent), PYSPARK_PYTHON=sys.executable,
               SPARK_MASTER="local[2]")
    result = subprocess.run([str(spark_submit), "--master", "local[1]", "--jars", ",".join(delta_jars()),
                             str(REPO / "pipelines" / "sql.py"), "SET spark.master", "--format", "jsonl",
                             "--lakehouse", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"key": "spark.master", "value": "local[1]"}


WRITES = [
    "DELETE FROM letters",
    "delete /* a comment */ from letters where id = 1",
    "INSERT INTO letters VALUES (3, 'c')",
    "WITH x AS (SELECT 3 AS id, 'c' AS v) INSERT INTO letters SELECT * FROM x",
    "UPDATE letters SET v = 'z'",
    "MERGE INTO letters t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE",
    "RESTORE TABLE letters TO VERSION AS OF 0",
    "TRUNCATE TABLE letters",
    "DROP TABLE letters",
    "ALTER TABLE letters ADD COLUMN w int",
    "CREATE TABLE other (id int) USING delta",
    "CREATE TEMP VIEW v AS SELECT 1",
    "VACUUM letters",
    "OPTIMIZE letters",
    "CACHE TABLE letters",
    "SET spark.sql.shuffle.partitions=3",
    "SELECT * FROM parquet.`/etc`",
    "SELECT * FROM csv.`/etc/passwd`",
    "SELECT * FROM text.`/etc/hostname`",
    "SELECT * FROM letters WHERE v IN (SELECT value FROM text.`/etc/hostname`)",
    "WITH x AS (SELECT * FROM json.`/etc/hostname`) SELECT * FROM x",
    "SELECT * FROM read_files('/etc/passwd')",
    "DESCRIBE DETAIL '/etc'",
]


@pytest.mark.parametrize("query", WRITES)
def test_writes_and_file_reads_are_refused_in_one_line_by_default(letters, capsys, query):
    before = letters.version("letters")
    code, out, err = run_sql(letters, capsys, query)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("humpback sql: error: read-only by default"), err
    assert "--allow-writes" in err
    assert letters.version("letters") == before
    code, out, _ = run_sql(letters, capsys, "SELECT id FROM letters ORDER BY id", "--format", "jsonl")
    assert out == '{"id": 1}\n{"id": 2}\n'  # nothing changed


READS = [
    ("SELECT 'DELETE FROM letters' AS q", [{"q": "DELETE FROM letters"}]),
    ("/* DROP TABLE letters */ SELECT count(*) AS n FROM letters", [{"n": 2}]),
    ("-- INSERT INTO letters\nSELECT max(id) AS m FROM letters", [{"m": 2}]),
    ("WITH x AS (SELECT id FROM letters) SELECT count(*) AS n FROM x WHERE id IN (SELECT id FROM letters)", [{"n": 2}]),
    ("SELECT id FROM letters VERSION AS OF 0", [{"id": 1}]),
    ("SELECT count(*) AS n FROM range(4)", [{"n": 4}]),
]


@pytest.mark.parametrize("query,rows", READS)
def test_reads_run_whatever_words_their_comments_and_strings_hold(letters, capsys, query, rows):
    code, out, err = run_sql(letters, capsys, query, "--format", "jsonl")
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == rows


@pytest.mark.parametrize("query", ["SHOW TABLES", "DESCRIBE letters", "DESCRIBE HISTORY letters",
                                   "DESCRIBE DETAIL letters", "EXPLAIN DELETE FROM letters", "SET"])
def test_statements_that_only_show_things_are_read_only(letters, capsys, query):
    before = letters.version("letters")
    code, _, err = run_sql(letters, capsys, query, "--format", "jsonl")
    assert code == 0, err
    assert letters.version("letters") == before


def test_allow_writes_runs_a_write(letters, capsys):
    code, _, err = run_sql(letters, capsys, "DELETE FROM letters WHERE id = 1", "--allow-writes")
    assert code == 0, err
    _, out, _ = run_sql(letters, capsys, "SELECT id FROM letters", "--format", "jsonl")
    assert out == '{"id": 2}\n'
    code, out, err = run_sql(letters, capsys, "SELECT count(*) AS n FROM text.`/etc/hostname`", "--format", "jsonl",
                             "--allow-writes")
    assert code == 0 and json.loads(out)["n"] >= 1, err
