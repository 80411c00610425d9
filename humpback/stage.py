"""A stage, declared, and the one runner every stage goes through.

A `Stage` says what it is (name, description), what it reads and writes (tables of humpback.tables), which sections
of conf/defaults.toml it uses, its own options, and its work: a function of the context and the parsed arguments
that returns a summary. The runner does the rest, the same way for every stage: it parses, loads and checks the
settings, checks that the tables it reads exist ("run `humpback X` first"), opens one MLflow run around the work
(logging the stage's settings as parameters and its summary as metrics), and turns user errors into one line while
bugs keep their traceback. `humpback <stage>` and spark-submit call `Stage.main(argv)`; flows (iterate, demo) call
`Stage.call(ctx, option=value)` in their own context.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

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

    POSITIVE_OPTIONS = ("--limit", "--iteration", "--iterations", "--start")

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


Work = Callable[[Context, argparse.Namespace], "Mapping[str, float] | None"]


def no_options(parser: argparse.ArgumentParser) -> None:
    """For stages that take only the global options."""


@dataclass(frozen=True)
class Stage:
    """A stage, declared. `work` returns the stage's summary (numbers, logged as the run's metrics) or None."""

    name: str
    description: str
    work: Work
    options: Callable[[argparse.ArgumentParser], None] = no_options
    reads: tuple[str, ...] | Callable[[argparse.Namespace], tuple[str, ...]] = ()  # tables that must exist first
    writes: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()  # sections of conf/defaults.toml, logged as `settings.<section>.<key>`
    tracked: bool = True  # one MLflow run around the work (read-only commands have none)
    prompts: tuple[str, ...] = ()  # the prompts it sends (backward, rubric, judge): its run links their versions
    run_name: Callable[[Context, argparse.Namespace], str] | None = None  # the MLflow run's; default: name
    # Checks of the user's input that do no work (settings values, option combinations, model references): they
    # run before the MLflow run opens, so that a bad input leaves no failed run behind.
    check: Callable[[Context, argparse.Namespace], None] | None = None

    def parser(self) -> argparse.ArgumentParser:
        parser = StageArgumentParser(prog=f"humpback {self.name}", description=self.description)
        add_global_options(parser)
        self.options(parser)
        return parser

    def main(self, argv: list[str] | None = None) -> int:
        """The command line: `humpback <name> ...` and spark-submit's entry point. Returns the exit code."""
        return run_stage(self.parser(), self.execute, argv)

    def call(self, ctx: Context, **options: Any) -> Mapping[str, float] | None:
        """Run from a flow (iterate, demo) in its context (one Spark session, its settings), with the stage's
        options as keyword arguments; a user error becomes a StageError naming this stage."""
        args = self.arguments(ctx.args, options)
        shown = " ".join(shown_option(key, value) for key, value in options.items() if value not in (None, False))
        print(f"\n=== humpback {self.name} {shown}".rstrip(), flush=True)
        try:
            return self.execute(ctx, args)
        except StageError as err:
            raise StageError(f"{self.name}: {err}") from err
        except Exception as err:  # noqa: BLE001 - the flow reports it in one line; bugs keep their traceback
            message = describe_error(err)
            if message is None or _INTERRUPTED:
                raise
            raise StageError(f"{self.name}: {message}") from err

    def arguments(self, flow_args: argparse.Namespace, options: Mapping[str, Any]) -> argparse.Namespace:
        """The parsed arguments `options` stand for: the parser's defaults, the flow's global options, then these;
        an option the stage does not have, a value outside its choices or a missing required one is refused."""
        actions = {action.dest: action for action in self.parser()._actions if action.dest != "help"}
        unknown = sorted(set(options) - set(actions))
        if unknown:
            raise TypeError(f"stage {self.name} has no option {', '.join(unknown)}; it has {', '.join(sorted(actions))}")
        values = {dest: action.default for dest, action in actions.items()}
        values.update({key: getattr(flow_args, key) for key in GLOBAL_OPTIONS if hasattr(flow_args, key)})
        for dest, value in options.items():  # each value goes through the option's type, as on the command line
            action = actions[dest]
            if isinstance(action, argparse._AppendAction) and isinstance(value, (str, int, float)):
                value = [value]
            convert = action.type
            if isinstance(value, (str, int, float)) and not isinstance(value, bool) and callable(convert) \
                    and convert is not str:
                try:
                    value = convert(str(value))
                except (argparse.ArgumentTypeError, ValueError) as err:
                    raise TypeError(f"stage {self.name}: {dest}: {err}") from None
            values[dest] = value
        for dest, action in actions.items():
            if action.required and values[dest] is None:
                raise TypeError(f"stage {self.name} needs {dest}")
            if action.choices is not None and values[dest] is not None and values[dest] not in action.choices:
                raise TypeError(f"stage {self.name}: {dest} must be one of {sorted(action.choices)}, "
                                f"not {values[dest]!r}")
        return argparse.Namespace(**values)

    def execute(self, ctx: Context, args: argparse.Namespace) -> Mapping[str, float] | None:
        """Prerequisites and input checks, then the work inside one MLflow run, then its summary."""
        self.check_prerequisites(ctx, args)
        if not self.tracked:
            if self.check:
                self.check(ctx, args)
            return self.work(ctx, args)
        import mlflow

        from humpback.tracking import start_run

        started = time.monotonic()
        check_tracking_store(ctx.mlflow_uri)
        if self.check:
            self.check(ctx, args)  # after the store check: a model reference resolves through the registry
        name = self.run_name(ctx, args) if self.run_name else self.name
        with start_run(name, ctx.config, stage=self.name) as active:
            mlflow.log_params(settings_params(ctx.config, self.settings))
            if self.prompts:
                from humpback.tracking import link_prompts

                link_prompts(self.prompts)  # registered in MLflow's prompt registry on first use
            summary = self.work(ctx, args)
            if summary:
                from humpback.reporting import _metric_name

                mlflow.log_metrics({_metric_name(key): float(value) for key, value in summary.items()})
        print(f"{self.name}: done in {time.monotonic() - started:.1f} s (MLflow run {active.info.run_id})", flush=True)
        return summary

    def check_prerequisites(self, ctx: Context, args: argparse.Namespace) -> None:
        from humpback.tables import TABLES

        for table in self.reads(args) if callable(self.reads) else self.reads:
            if not ctx.lakehouse.exists(table):
                raise StageError(f"no `{table}` table in {ctx.lakehouse.root}: "
                                 f"run `humpback {TABLES[table].written_by}` first")


SECRET_WORDS = ("key", "token", "secret", "password")  # settings never logged (an API key in [inference.openai])


def settings_params(config: Mapping[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """The declared sections as MLflow params `settings.<section>.<key>`, nested tables flattened, secrets left out."""
    params: dict[str, Any] = {}

    def add(prefix: str, table: Mapping[str, Any]) -> None:
        for key, value in table.items():
            if isinstance(value, Mapping):
                add(f"{prefix}.{key}", value)
            elif not any(word in key.lower() for word in SECRET_WORDS):
                params[f"{prefix}.{key}"] = value

    for section in sections:
        add(f"settings.{section}", config.get(section, {}))
    return params


def shown_option(key: str, value: Any) -> str:
    """An option as it would be typed: --skip-gate, --input a b, --limit 4."""
    flag = f"--{key.replace('_', '-')}"
    if value is True:
        return flag
    return f"{flag} {' '.join(map(str, value)) if isinstance(value, list) else value}"


def check_tracking_store(uri: str) -> None:
    """One cheap call with no retries, so that an unreachable store fails at once, before any work (MLflow's HTTP
    client would otherwise retry for minutes)."""
    import os

    from mlflow.tracking import MlflowClient

    saved = {name: os.environ.get(name) for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"})
    try:
        MlflowClient().search_registered_models(max_results=1)
    except Exception as err:  # noqa: BLE001 - any failure here means nothing could be tracked or registered
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        raise StageError(f"the MLflow tracking store and registry at {uri} cannot be reached ({type(err).__name__}: "
                         f"{lines[0][:300] if lines else 'no message'}); nothing was run") from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


GLOBAL_OPTIONS = ("lakehouse", "mlflow_uri", "config", "overrides", "verbose")


def run_stage(parser: argparse.ArgumentParser, run: Callable[[Context, argparse.Namespace], Any],
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
        run(Context(args), args)
        return 0
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


_STAGE_DEPTH = 0  # how many run_stage calls are active in this process
_INTERRUPTED = False


def _interrupted(prog: str) -> int:
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
    from humpback.inference.spark_adapter import ErrorBudgetExceeded
    from humpback.models import ModelRefError
    from humpback.spark import SparkSetupError
    from humpback.tracking import ModelAliasError

    if isinstance(err, PySparkException):
        return spark_error_summary(err)
    if isinstance(err, (StageError, ConfigError, ModelRefError, ModelAliasError, SparkSetupError,
                        ErrorBudgetExceeded, FileNotFoundError, ValueError)):
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
