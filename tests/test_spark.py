"""The session builder, and the same jobs on a real standalone cluster started on 127.0.0.1."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from humpback import spark as spark_module
from humpback.config import load_config


def test_local_master_by_default(monkeypatch):
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert spark_module.resolve_master({"local_master": "local[*]"}) == "local[*]"


def test_spark_master_variable_wins(monkeypatch):
    monkeypatch.setenv("SPARK_MASTER", "spark://10.0.0.1:7077")
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert spark_module.resolve_master({"local_master": "local[*]"}) == "spark://10.0.0.1:7077"


def test_spark_submit_master_is_never_overridden(monkeypatch):
    monkeypatch.setenv("SPARK_MASTER", "spark://10.0.0.1:7077")
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")
    assert spark_module.resolve_master({}) is None
    settings = spark_module.session_settings({})
    assert "spark.jars" not in settings and "spark.driver.memory" not in settings


def test_settings_configure_delta_worker_reuse_and_the_venv_python(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    settings = spark_module.session_settings(load_config(overrides=["spark.conf.spark.executor.memory=8g"])["spark"])
    assert settings["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert settings["spark.python.worker.reuse"] == "true"
    assert settings["spark.pyspark.python"] == sys.executable
    assert settings["spark.executor.memory"] == "8g"
    assert all(Path(jar).exists() for jar in settings["spark.jars"].split(","))
    assert any("delta-spark" in jar for jar in settings["spark.jars"].split(","))


def test_local_java_options_reach_local_sessions_only(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    settings = load_config()["spark"]
    local = spark_module.session_settings(settings)["spark.driver.extraJavaOptions"]
    assert "-XX:TieredStopAtLevel=1" in local and "-XX:ReservedCodeCacheSize=256m" in local
    assert "log4j2.configurationFile" in local
    monkeypatch.setenv("SPARK_MASTER", "spark://10.0.0.1:7077")
    cluster = spark_module.session_settings(settings)
    assert "TieredStopAtLevel" not in cluster["spark.driver.extraJavaOptions"]
    assert "spark.databricks.delta.snapshotPartitions" not in cluster


def test_missing_jars_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(spark_module, "JARS_DIR", tmp_path)
    with pytest.raises(spark_module.SparkSetupError, match="make setup"):
        spark_module.delta_jars()


def test_session_is_delta_enabled_and_quiet(spark):
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert spark.sparkContext.getConf().get("spark.python.worker.reuse") == "true"


def test_processes_started_in_stderr_without_lose_only_those_lines(capfd):
    noise = spark_module.JVM_STARTUP_NOISE[0]
    script = f"import sys; sys.stderr.write({noise + chr(10)!r} + 'an error\\n')"
    with spark_module.stderr_without((noise,)):
        child = subprocess.Popen([sys.executable, "-c", script])
    assert child.wait(timeout=30) == 0
    spark_module._stderr_filters[-1].wait(timeout=30)  # the filter ends once the child has closed its stderr
    assert capfd.readouterr().err == "an error\n"


def test_a_command_starts_spark_without_a_line_on_stderr(humpback_cli, tmp_path):
    # The JVM announces an incubator module that Spark's launcher always adds: see JVM_STARTUP_NOISE.
    result = humpback_cli("tables", "--lakehouse", str(tmp_path))
    assert (result.returncode, result.stderr) == (0, ""), result.stderr[-2000:]
    assert "no tables yet" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, deadline: float) -> None:
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


@pytest.fixture
def standalone_cluster(tmp_path):
    """A real Spark standalone master and one worker on 127.0.0.1, stopped after the test."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    env = dict(os.environ, SPARK_HOME=str(spark_home), SPARK_LOCAL_IP="127.0.0.1",
               SPARK_WORKER_DIR=str(tmp_path / "work"), PYSPARK_PYTHON=sys.executable)
    master_port, master_ui, worker_ui = _free_port(), _free_port(), _free_port()
    spark_class = str(spark_home / "bin" / "spark-class")
    logs = [open(tmp_path / "master.log", "w"), open(tmp_path / "worker.log", "w")]
    master = subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(master_port), "--webui-port", str(master_ui)],
                              env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    worker = None
    try:
        _wait_for_port(master_port, time.time() + 120)
        url = f"spark://127.0.0.1:{master_port}"
        worker = subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                                   "--cores", "1", "--memory", "1g", "--webui-port", str(worker_ui)],
                                  env=env, stdout=logs[1], stderr=subprocess.STDOUT)
        yield url
    finally:
        for process in (worker, master):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        for log in logs:
            log.close()


CLUSTER_JOB = """
import json, os, sys
from humpback.spark import get_spark
from humpback.lakehouse import Lakehouse
spark = get_spark({"conf": {"spark.ui.enabled": "false"}})
lakehouse = Lakehouse(spark, sys.argv[1])
lakehouse.write(spark.range(100).withColumnRenamed("id", "n"), "numbers", mode="overwrite")

def where_python_runs(batches):
    import pandas as pd
    for batch in batches:
        yield pd.DataFrame({"executable": [sys.executable] * len(batch), "n": batch["n"]})

workers = lakehouse.read("numbers").mapInPandas(where_python_runs, "executable string, n long")
print(json.dumps({
    "master": spark.sparkContext.master,
    "total": lakehouse.read("numbers").selectExpr("sum(n) AS s").first()["s"],
    "executables": sorted({row.executable for row in workers.collect()}),
}))
"""


@pytest.mark.slow
def test_delta_write_and_read_on_a_standalone_cluster(standalone_cluster, tmp_path, humpback_cli):
    lakehouse = tmp_path / "lakehouse"
    env = dict(os.environ, SPARK_MASTER=standalone_cluster, SPARK_LOCAL_IP="127.0.0.1")
    job = subprocess.run([sys.executable, "-c", CLUSTER_JOB, str(lakehouse)], env=env, capture_output=True,
                         text=True, timeout=400)
    assert job.returncode == 0, job.stderr[-3000:]
    result = json.loads(job.stdout.strip().splitlines()[-1])
    assert result["master"] == standalone_cluster
    assert result["total"] == sum(range(100))
    assert result["executables"] == [sys.executable]  # workers run the project's venv python

    query = humpback_cli("sql", "SELECT count(*) AS n FROM numbers", "--format", "jsonl", "--lakehouse", str(lakehouse),
                         env={"SPARK_MASTER": standalone_cluster, "SPARK_LOCAL_IP": "127.0.0.1"}, timeout=400)
    assert query.returncode == 0, query.stderr[-3000:]
    assert query.stdout == '{"n": 100}\n'
