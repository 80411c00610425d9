"""What every stage shares: --verbose reaches every stage and decides what the libraries and Spark print."""
import os

from humpback import cli, reporting
from humpback.spark import CHUNK_NOISE_LOGGERS
from humpback.stage import global_argv
from humpback.stages import tables


def jvm_log_level(spark, name: str) -> str:
    return str(spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getLogger(name).getLevel().toString())


def test_verbose_before_the_stage_reaches_the_stage_and_those_it_runs():
    args = cli.build_parser().parse_args(["--verbose", "demo"])
    assert global_argv(args) == ["--verbose"]
    assert global_argv(cli.build_parser().parse_args(["demo"])) == []


def test_a_stage_is_quiet_unless_verbose(spark, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(reporting.VERBOSE_ENV, raising=False)
    try:
        assert tables.STAGE.main(["--lakehouse", str(tmp_path), "--verbose"]) == 0
        assert not set(reporting.QUIET_ENV) & set(os.environ)
        assert {jvm_log_level(spark, name) for name in CHUNK_NOISE_LOGGERS} == {"WARN"}
    finally:
        assert tables.STAGE.main(["--lakehouse", str(tmp_path)]) == 0
    assert {name: os.environ[name] for name in reporting.QUIET_ENV} == reporting.QUIET_ENV
    assert {jvm_log_level(spark, name) for name in CHUNK_NOISE_LOGGERS} == {"ERROR"}
    assert capsys.readouterr().out.count("no tables yet") == 2


def test_an_exhausted_error_budget_reaches_the_user_as_one_line():
    from humpback.inference.spark_adapter import ErrorBudgetExceeded, InferenceStats
    from humpback.stage import describe_error

    err = ErrorBudgetExceeded("augment: stopped: 20 of 20 rows failed with the same error", InferenceStats(), 20, 20,
                              "RuntimeError: CUDA error")
    assert describe_error(err) == "augment: stopped: 20 of 20 rows failed with the same error"
    assert describe_error(RuntimeError("a bug")) is None  # bugs keep their traceback
