"""The stages, one module each, in the order a run goes through them; each module declares `STAGE`.

NAMES are the modules' names (Python identifiers); a stage's command, `humpback <command>`, is its name with `-` for
`_` (`scorer_check` is `humpback scorer-check`), and the Stage is declared under that command name.
"""
from __future__ import annotations

import importlib

from humpback.stage import Stage

NAMES = ("ingest", "segment", "seed", "train", "augment", "curate", "scorer_check", "trainset", "rewrite", "evaluate",
         "iterate", "demo", "sql", "tables")


def command(name: str) -> str:
    """The command of the stage module `name`: scorer_check -> scorer-check."""
    return name.replace("_", "-")


COMMANDS = tuple(command(name) for name in NAMES)


def stage(name: str) -> Stage:
    """The declared stage `name` (a module name or its command), its module imported on first use (stages import
    Spark and torch lazily)."""
    module = name.replace("-", "_")
    if module not in NAMES:
        raise KeyError(f"no stage {name!r}; the stages are {', '.join(COMMANDS)}")
    return importlib.import_module(f"humpback.stages.{module}").STAGE
