"""The one place a SparkSession is built: Delta Lake on every session, local by default, a cluster when asked."""
from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession

from humpback.resources import conf_file, state_dir

# Delta's jars are no package data: $HUMPBACK_JARS, else jars/ of the source checkout or of the working directory.
JARS_DIR = state_dir("jars", "HUMPBACK_JARS")
LOG4J_CONF = conf_file("log4j2.properties")

DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


# PySpark logs every SQL error it raises as a JSON record of several kilobytes (message, JVM stack trace) on
# stderr, through these Python loggers, before the caller can handle the exception. Our commands print the error
# in one line, so the records are shown only when Spark's own log level asks for INFO or more.
QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
VERBOSE_LOG_LEVELS = frozenset({"ALL", "TRACE", "DEBUG", "INFO"})


# WARN lines that every chunk of work brings and that need no action: Delta's MERGE materializes its source as a
# local checkpoint, and unpersisting it afterwards warns that its lineage is gone. Shown with --verbose.
CHUNK_NOISE_LOGGERS = ("org.apache.spark.rdd.MapPartitionsRDD",)
# Spark's launcher puts --add-modules=jdk.incubator.vector on every driver JVM it starts (JavaModuleOptions; only
# MLlib's BLAS uses the module), and the JVM then prints this line on stderr, with no option to turn it off.
JVM_STARTUP_NOISE = ("WARNING: Using incubator modules: jdk.incubator.vector",)
_stderr_filters: list[subprocess.Popen] = []  # kept for the JVM's lifetime (a collected Popen warns)


class SparkSetupError(RuntimeError):
    """Spark cannot start the way the project needs (for example, Delta's jars are missing)."""


def launched_by_spark_submit() -> bool:
    # spark-submit starts the Python driver from the JVM and hands it the gateway through these variables.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def resolve_master(settings: dict[str, Any] | None = None) -> str | None:
    """The master to set, or None when spark-submit already chose one (it is never overridden)."""
    if launched_by_spark_submit():
        return None
    if os.environ.get("SPARK_MASTER"):
        return os.environ["SPARK_MASTER"]
    return (settings or {}).get("local_master", "local[*]")


def delta_jars() -> list[str]:
    jars = sorted(glob.glob(str(JARS_DIR / "*.jar")))
    if not jars:
        raise SparkSetupError(f"Delta Lake jars not found in {JARS_DIR.resolve()}: run `make setup` in the source "
                              f"checkout (it fetches them from Maven Central, as conf/delta-jars/pom.xml lists), "
                              f"or set HUMPBACK_JARS to a folder that holds them")
    return jars


def session_settings(settings: dict[str, Any] | None = None) -> dict[str, str]:
    """Every Spark setting humpback applies when it builds a session (user settings in [spark.conf] win)."""
    settings = settings or {}
    conf = dict(DELTA_SETTINGS)
    conf.update({
        # Reused python workers keep a model loaded once per worker across tasks.
        "spark.python.worker.reuse": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.get("shuffle_partitions", 8)),
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Named parameters (`spark.sql(text, args=...)`): Delta's SQL parser drops them since Spark 4.1
        # (delta-io/delta#7640); binding them in the analyzer, as Spark 4.0 did, works. We bind constants only.
        "spark.sql.legacy.parameterSubstitution.constantsOnly": "true",
        # Wide signal structs would otherwise log a plan-truncation warning on every job.
        "spark.sql.debug.maxToStringFields": "500",
    })
    master = resolve_master(settings)
    local = bool(master and master.startswith("local"))
    if local:
        # Delta rebuilds table snapshots with 50 tasks by default: pure overhead on a few local cores.
        conf["spark.databricks.delta.snapshotPartitions"] = str(os.cpu_count() or 2)
    if not launched_by_spark_submit():
        conf["spark.jars"] = ",".join(delta_jars())
        conf["spark.driver.memory"] = str(settings.get("driver_memory", "4g"))
        java_options = [f"-Dlog4j2.configurationFile=file:{LOG4J_CONF}"]
        if local and settings.get("local_java_options"):
            java_options.append(str(settings["local_java_options"]))
        conf["spark.driver.extraJavaOptions"] = " ".join(java_options)
        conf["spark.executor.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{LOG4J_CONF}"
        # Workers run the project's own interpreter (the venv) unless the user picked one for the cluster.
        python = os.environ.get("PYSPARK_PYTHON", sys.executable)
        conf["spark.pyspark.python"] = python
        conf["spark.pyspark.driver.python"] = os.environ.get("PYSPARK_DRIVER_PYTHON", sys.executable)
    conf.update(flatten_conf(settings.get("conf") or {}))
    return conf


def flatten_conf(nested: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """[spark.conf] entries as Spark keys: `--set spark.conf.spark.executor.memory=8g` arrives nested."""
    flat: dict[str, str] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_conf(value, name + "."))
        else:
            flat[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return flat


def get_spark(settings: dict[str, Any] | None = None, app_name: str | None = None,
              verbose: bool = False) -> SparkSession:
    """Return the active session or build one with Delta configured; quiet unless `verbose` (JVM_STARTUP_NOISE,
    CHUNK_NOISE_LOGGERS)."""
    settings = settings or {}
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name or settings.get("app_name", "humpback"))
    master = resolve_master(settings)
    if master:
        builder = builder.master(master)
    for key, value in session_settings(settings).items():
        builder = builder.config(key, value)
    starts_jvm = not launched_by_spark_submit() and SparkSession.getActiveSession() is None
    with stderr_without(JVM_STARTUP_NOISE if starts_jvm and not verbose else ()):
        spark = builder.getOrCreate()
    log_level = str(settings.get("log_level", "WARN"))
    spark.sparkContext.setLogLevel(log_level)
    set_jvm_log_level(spark, CHUNK_NOISE_LOGGERS, log_level if verbose else "ERROR")
    quiet_query_context_loggers(log_level)
    return spark


@contextmanager
def stderr_without(lines: tuple[str, ...]):
    """Processes started inside write their stderr through `grep -v` of these exact lines for as long as they run
    (the filter ends when the last of them has closed it); this process's own stderr is as it was afterwards."""
    grep = shutil.which("grep")
    if not lines or grep is None:
        yield
        return
    sys.stderr.flush()
    # Its own session: a Ctrl-C meant for the driver must not end the filter while the JVM still writes to it.
    filter_process = subprocess.Popen([grep, "--line-buffered", "-v", "-x", "-F", *(f"-e{line}" for line in lines)],
                                      stdin=subprocess.PIPE, stdout=2, start_new_session=True)
    _stderr_filters.append(filter_process)
    saved = os.dup(2)
    os.dup2(filter_process.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        filter_process.stdin.close()


def set_jvm_log_level(spark: SparkSession, loggers: tuple[str, ...], level: str) -> None:
    """The log4j level of some of the driver JVM's loggers, at any time (Spark's setLogLevel sets the root only)."""
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    for name in loggers:
        log4j.core.config.Configurator.setLevel(name, log4j.Level.toLevel(level))


def quiet_query_context_loggers(log_level: str) -> None:
    """Keep PySpark's error records (QUERY_CONTEXT_LOGGERS) off stderr unless log_level is INFO or finer."""
    from pyspark.logger import PySparkLogger

    for name in QUERY_CONTEXT_LOGGERS:
        # Made by PySpark's own factory: a plain logging.Logger would reject the fields PySpark logs with.
        logger = PySparkLogger.getLogger(name)
        logger.setLevel(logging.WARNING if log_level.upper() in VERBOSE_LOG_LEVELS else logging.CRITICAL)
