"""What every stage shares: global options, settings, and lazily built Spark, lakehouse and MLflow."""
from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from humpback.config import load_config


class StageError(RuntimeError):
    """A failure with a one-line explanation for the user (bad input, missing prerequisite)."""


def add_global_options(parser: argparse.ArgumentParser, suppress_defaults: bool = False) -> None:
    default = argparse.SUPPRESS if suppress_defaults else None
    group = parser.add_argument_group("global options")
    group.add_argument("--lakehouse", metavar="DIR", default=default,
                       help="root of the Delta tables (default: $HUMPBACK_LAKEHOUSE or ./lakehouse)")
    group.add_argument("--mlflow-uri", metavar="URI", default=default,
                       help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)")
    group.add_argument("--config", metavar="FILE", default=default, help="a TOML file over conf/defaults.toml")
    group.add_argument("--set", metavar="KEY=VALUE", action="append", dest="overrides",
                       default=argparse.SUPPRESS if suppress_defaults else [],
                       help="override one setting, e.g. --set segment.min_chars=400 (repeatable)")


def global_argv(args: argparse.Namespace) -> list[str]:
    """The global options of a parsed command line, to pass on to another stage's parser."""
    argv: list[str] = []
    for option, name in (("--lakehouse", "lakehouse"), ("--mlflow-uri", "mlflow_uri"), ("--config", "config")):
        if getattr(args, name, None) is not None:
            argv += [option, getattr(args, name)]
    for item in getattr(args, "overrides", None) or []:
        argv += ["--set", item]
    return argv


def run_stages(steps: list[tuple[str, list[str]]], args: argparse.Namespace) -> None:
    """Run stages in this process (one Spark session), in order; the first failure stops with its stage named."""
    import importlib

    for stage, stage_args in steps:
        print(f"\n=== humpback {stage} {' '.join(stage_args)}", flush=True)
        code = importlib.import_module(f"pipelines.{stage}").main(stage_args + global_argv(args))
        if code == 130:
            raise KeyboardInterrupt
        if code != 0:
            raise StageError(f"stage `{stage}` failed (exit code {code}); see its message above")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (`--limit 0` would silently do nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number (1 or more), not {value}")
    return value


class StageArgumentParser(argparse.ArgumentParser):
    """A stage's parser: `--limit` is always a positive int, and a usage error is one line on stderr."""

    POSITIVE_OPTIONS = ("--limit",)

    def add_argument(self, *names, **kwargs):
        if any(name in self.POSITIVE_OPTIONS for name in names) and kwargs.get("type") is int:
            kwargs["type"] = positive_int
        return super().add_argument(*names, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def stage_parser(stage: str, description: str) -> argparse.ArgumentParser:
    parser = StageArgumentParser(prog=f"humpback {stage}", description=description)
    add_global_options(parser)
    return parser


@dataclass
class Context:
    """Settings plus Spark, the lakehouse and MLflow, each created on first use."""

    args: argparse.Namespace
    config: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.config = load_config(getattr(self.args, "config", None), getattr(self.args, "overrides", None) or [])

    @cached_property
    def spark(self):
        from humpback.spark import get_spark

        session = get_spark(self.config.get("spark", {}))
        if _STAGE_DEPTH:
            catch_interrupts()  # SparkContext installs its own SIGINT handler, which talks to the JVM mid-call
        return session

    @cached_property
    def lakehouse(self):
        from humpback.lakehouse import Lakehouse

        return Lakehouse(self.spark, getattr(self.args, "lakehouse", None))

    @cached_property
    def mlflow_uri(self) -> str:
        from humpback.tracking import configure_mlflow

        return configure_mlflow(getattr(self.args, "mlflow_uri", None))


def run_stage(parser: argparse.ArgumentParser, run: Callable[[Context, argparse.Namespace], int],
              argv: list[str] | None) -> int:
    """Parse, run, and turn expected failures into one line on stderr and a non-zero exit."""
    global _STAGE_DEPTH, _INTERRUPTED
    args = parser.parse_args(argv)
    if not _STAGE_DEPTH:
        _INTERRUPTED = False
    previous = catch_interrupts()
    _STAGE_DEPTH += 1
    try:
        return int(run(Context(args), args) or 0)
    except KeyboardInterrupt:
        return _interrupted(parser.prog)
    except Exception as err:  # noqa: BLE001 - every failure reaches the user as one readable line
        if _INTERRUPTED:  # e.g. Py4J's broken connection after the Ctrl-C, raised while cleaning up
            return _interrupted(parser.prog)
        message = describe_error(err)
        if message is None:
            raise
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, LookupError, StageError)) else 1
    finally:
        _STAGE_DEPTH -= 1
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


_STAGE_DEPTH = 0  # how many run_stage calls are active in this process (demo and iterate nest them)
_INTERRUPTED = False


def _interrupted(prog: str) -> int:
    if _STAGE_DEPTH > 1:
        raise KeyboardInterrupt  # a stage run by demo or iterate: the outer stage prints the one line
    print(f"{prog}: interrupted", file=sys.stderr, flush=True)
    return 130


def _on_interrupt(signum, frame):
    """Ctrl-C: stop where the main thread is, quietly. Py4J logs a traceback for a call it was in the middle of, and
    PySpark's own handler calls the JVM from inside that call; after Ctrl-C both only add noise to the one line."""
    import logging

    global _INTERRUPTED
    _INTERRUPTED = True
    for name in ("", "py4j", "py4j.java_gateway", "py4j.clientserver"):
        logging.getLogger(name).disabled = True
    raise KeyboardInterrupt


def catch_interrupts():
    """Install the quiet Ctrl-C handler (main thread only); returns the handler it replaced, or None."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        return None  # a background job that was told to ignore Ctrl-C keeps ignoring it
    signal.signal(signal.SIGINT, _on_interrupt)
    return previous


def describe_error(err: BaseException) -> str | None:
    """A short message for errors users cause or can fix; None for bugs (which keep their traceback)."""
    from pyspark.errors import PySparkException

    from humpback.config import ConfigError
    from humpback.models import ModelRefError
    from humpback.spark import SparkSetupError
    from humpback.tracking import ModelAliasError

    if isinstance(err, PySparkException):
        return spark_error_summary(err)
    if isinstance(err, (StageError, ConfigError, ModelRefError, ModelAliasError, SparkSetupError,
                        FileNotFoundError, ValueError)):
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def spark_error_summary(err: BaseException) -> str:
    """Spark's own message without the query plan or a JVM stack trace; for a Python worker failure, its cause."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if "Traceback (most recent call last)" in text:
        cause = [line for line in text.split("Traceback (most recent call last)")[-1].splitlines()
                 if line.strip() and not line.startswith((" ", "\t")) and not line.startswith("SQLSTATE")]
        if cause:
            return f"{first.rstrip(':')}: {cause[-1].strip()}"
    # Spark appends '; line 1 pos 14;' and the unresolved plan; keep the sentence.
    return first.split("; line ")[0].split(" SQLSTATE:")[0].strip().rstrip(";").strip()


_ARROW_TYPES = {"string": "string", "int": "int32", "long": "int64", "double": "float64", "boolean": "bool_"}


def ddl(columns: dict[str, str]) -> str:
    """Spark DDL for {name: type}."""
    return ", ".join(f"{name} {kind}" for name, kind in columns.items())


def arrow_schema(columns: dict[str, str]):
    """The Arrow schema matching {name: Spark type} (string, int, long, double, boolean, array<>, map<>)."""
    import pyarrow as pa

    def arrow_type(kind: str):
        if kind.startswith("array<") and kind.endswith(">"):
            return pa.list_(arrow_type(kind[6:-1]))
        if kind.startswith("map<") and kind.endswith(">"):
            key, value = kind[4:-1].split(",", 1)
            return pa.map_(arrow_type(key.strip()), arrow_type(value.strip()))
        return getattr(pa, _ARROW_TYPES[kind])()

    return pa.schema([(name, arrow_type(kind)) for name, kind in columns.items()])


def record_batch(rows: list[dict], schema):
    """Rows (dicts; missing keys are nulls) as one Arrow batch, for mapInArrow."""
    import pyarrow as pa

    return pa.RecordBatch.from_pylist(rows, schema=schema)
