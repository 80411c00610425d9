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
    group.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS if suppress_defaults else False,
                       help="also show the libraries' own warnings and progress bars (JVM, Spark, transformers, "
                            "MLflow); default: $HUMPBACK_VERBOSE=1, else only errors and humpback's own lines")


def global_argv(args: argparse.Namespace) -> list[str]:
    """The global options of a parsed command line, to pass on to another stage's parser."""
    argv: list[str] = []
    for option, name in (("--lakehouse", "lakehouse"), ("--mlflow-uri", "mlflow_uri"), ("--config", "config")):
        if getattr(args, name, None) is not None:
            argv += [option, getattr(args, name)]
    for item in getattr(args, "overrides", None) or []:
        argv += ["--set", item]
    if getattr(args, "verbose", False):
        argv.append("--verbose")
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
        self.exit(2, f"{self.prog}: error: {message}{self.glob_hint(message)} (see `{self.prog} --help`)\n")

    def glob_hint(self, message: str) -> str:
        """For extra arguments that are existing paths, how to pass the glob the shell expanded into them."""
        if not message.startswith(UNRECOGNIZED):
            return ""
        # Options that take globs say so with their metavar (ingest's --input).
        options = [action.option_strings[0] for action in self._actions
                   if action.metavar == "GLOB" and action.option_strings]
        return expanded_glob_hint(message.removeprefix(UNRECOGNIZED).split(" "), options[0]) if options else ""


UNRECOGNIZED = "unrecognized arguments: "  # argparse's message for arguments no option took


def expanded_glob_hint(extras: list[str], option: str) -> str:
    """`; if the shell expanded ...` when every extra argument is an existing path, else ""."""
    import os
    import shlex

    if not all(os.path.exists(path) for path in extras):
        return ""
    return (f"; if the shell expanded an unquoted glob, quote it ({option} {shlex.quote(glob_of(extras))}) "
            f"or repeat {option} before each file")


def glob_of(paths: list[str]) -> str:
    """A glob for paths like these: their common folder, `*`, and the extension they share (if they do)."""
    import os
    from pathlib import Path

    extensions = {"".join(Path(path).suffixes) for path in paths}
    extension = extensions.pop() if len(extensions) == 1 else ""
    folder = os.path.commonprefix([Path(path).parent.parts for path in paths])  # the parts all paths start with
    return os.path.join(*folder, "*" + extension)


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

    @property
    def verbose(self) -> bool:
        from humpback.reporting import verbose_requested

        return verbose_requested(getattr(self.args, "verbose", False))

    @cached_property
    def spark(self):
        from humpback.spark import get_spark

        session = get_spark(self.config.get("spark", {}), verbose=self.verbose)
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
    from humpback.reporting import set_library_verbosity, verbose_requested

    global _STAGE_DEPTH, _INTERRUPTED
    args = parser.parse_args(argv)
    set_library_verbosity(verbose_requested(getattr(args, "verbose", False)))  # before any model or Spark starts
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
