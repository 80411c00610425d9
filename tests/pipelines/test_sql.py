"""`humpback sql`: formats, time travel by bare name, and one- or two-line errors."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import sql


@pytest.fixture
def letters(spark, lakehouse):
    lakehouse.write(spark.createDataFrame([(1, "a")], "id int, v string"), "letters")
    lakehouse.write(spark.createDataFrame([(2, "b")], "id int, v string"), "letters")
    return lakehouse


def run_sql(lakehouse, capsys, *args):
    code = sql.main([*args, "--lakehouse", lakehouse.root])
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
                             str(Path(sql.__file__)), "SET spark.master", "--format", "jsonl",
                             "--lakehouse", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"key": "spark.master", "value": "local[1]"}
