"""Where humpback's files are: the resources it ships, and the folders of runtime state it uses.

Resources (conf/*.toml, conf/log4j2.properties, sql/*.sql) are found through importlib.resources. A wheel ships
them inside the package, as humpback/conf and humpback/sql (setup.py maps the top-level folders there), so an
install on a cluster's workers needs no source tree. In a source checkout (the editable install `make setup`
makes) they are the top-level conf/ and sql/ that users edit, read in place.

Runtime state is no package data: Delta's jars (HUMPBACK_JARS) and converted models (HUMPBACK_MODELS) are read from
the folder the variable names, else from the checkout's jars/ and models/ when humpback runs from one, else from
jars/ and models/ in the working directory.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.resources
import os
from pathlib import Path

PACKAGE = "humpback"
RESOURCE_DIRS = ("conf", "sql")  # shipped in the wheel (setup.py); nothing else is
_extracted = contextlib.ExitStack()  # resources copied out of a zipped install, deleted at exit
atexit.register(_extracted.close)


def source_checkout() -> Path | None:
    """The source tree humpback runs from (an editable install, or the repository on sys.path), else None."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and all((root / name).is_dir() for name in RESOURCE_DIRS):
        return root
    return None


@functools.cache
def resource_dir(name: str) -> Path:
    """`conf` or `sql` as a folder on disk: the package's own copy (an installed wheel), else the checkout's."""
    if name not in RESOURCE_DIRS:
        raise ValueError(f"unknown resource folder {name!r}: expected one of {', '.join(RESOURCE_DIRS)}")
    packaged = importlib.resources.files(PACKAGE) / name
    if packaged.is_dir():
        if isinstance(packaged, Path):
            return packaged
        return Path(_extracted.enter_context(importlib.resources.as_file(packaged)))  # a zipped install
    checkout = source_checkout()
    if checkout is not None:
        return checkout / name
    raise FileNotFoundError(f"humpback's {name}/ folder is missing: it is neither in the installed package "
                            f"({packaged}) nor in a source checkout; reinstall humpback")


def conf_file(name: str) -> Path:
    """A file of conf/, e.g. conf_file("demo.toml")."""
    return resource_dir("conf") / name


def state_dir(name: str, env_var: str) -> Path:
    """A folder of runtime state: $env_var, else the checkout's `name`/, else `name`/ in the working directory."""
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    checkout = source_checkout()
    return (checkout if checkout is not None else Path.cwd()) / name
