"""The SQL files under sql/: loaded by name, identified by their sha256, run with named parameters only.

User values reach a query only through `spark.sql(text, args=params)`: Spark binds them as literals, so no value
can change the query's shape. The parameters a file uses (its `:name` markers) must match the ones given
exactly, which turns a forgotten or misspelt parameter into one clear error instead of a Spark analysis error.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from humpback.resources import resource_dir

SQL_DIR = resource_dir("sql")  # the package's copy, or the source checkout's (humpback.resources)
# String literals and comments, matched together so that `--` inside a string is not taken for a comment.
_NOT_CODE = re.compile(r"'(?:[^'\\]|\\.)*'|--[^\n]*|/\*.*?\*/", re.DOTALL)
# `:name`, but not the second half of a `::type` cast or a `a:b` inside an identifier
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class SqlFile:
    name: str
    path: Path
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def parameters(self) -> frozenset[str]:
        """The named parameters the query uses (comments and string literals ignored)."""
        code = _NOT_CODE.sub(" ", self.text)
        return frozenset(_PARAMETER.findall(code))


def load_sql(name: str, folder: Path = SQL_DIR) -> SqlFile:
    """sql/<name>.sql"""
    path = folder / f"{name}.sql"
    try:
        return SqlFile(name=name, path=path, text=path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no SQL file {path}") from None


def check_parameters(sql: SqlFile, params: Mapping[str, Any]) -> None:
    missing = sorted(sql.parameters - set(params))
    unused = sorted(set(params) - sql.parameters)
    if missing or unused:
        raise ValueError(f"{sql.path.name} uses parameters {', '.join(sorted(sql.parameters))}; "
                         f"missing: {', '.join(missing) or 'none'}; not used: {', '.join(unused) or 'none'}")


def run_sql(spark, sql: SqlFile, params: Mapping[str, Any]):
    """The query's DataFrame, every value bound as a named parameter."""
    check_parameters(sql, params)
    return query_with_params(spark, sql.text, params)


def query_with_params(spark, text: str, params: Mapping[str, Any]):
    """spark.sql(text, args=params): values bound as literals (see humpback.spark for the binding setting)."""
    return spark.sql(text, args=dict(params))
