"""Settings: conf/defaults.toml, then an optional user TOML file, then `--set section.key=value` overrides."""
from __future__ import annotations

import copy
import difflib
import functools
import tomllib
from pathlib import Path
from typing import Any, Iterable

from humpback.resources import conf_file

DEFAULTS_PATH = conf_file("defaults.toml")  # the package's copy, or the source checkout's (humpback.resources)


class ConfigError(ValueError):
    """A settings file or override that cannot be used."""


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Return the merged settings as a nested dict; an unknown setting or a mistyped value is refused at once."""
    config = _read_toml(DEFAULTS_PATH)
    if path is not None:
        user = _read_toml(Path(path))
        check_settings((), user, settings_schema(), source=f"{path}: ")
        _deep_merge(config, user)
    for item in overrides:
        apply_override(config, item, settings_schema())
    return config


def apply_override(config: dict[str, Any], item: str, schema: dict[str, Any] | None = None) -> None:
    """Apply one `section.key=value` (the value parsed as a TOML value, else kept as a string), checked against
    `schema` when one is given."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    parts = key.strip().split(".")
    value = parse_value(raw.strip())
    if schema is not None:
        check_settings(tuple(parts), value, schema, source="--set ")
    node = config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
    node[parts[-1]] = value


def parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


@functools.cache
def settings_schema() -> dict[str, Any]:
    """Every known setting and its type: conf/defaults.toml's keys typed by their values, then humpback.settings."""
    from humpback.settings import extra_settings

    schema = _value_types(_read_toml(DEFAULTS_PATH))
    _deep_merge(schema, extra_settings())
    return schema


def check_settings(path: tuple[str, ...], value: Any, schema: dict[str, Any], source: str = "") -> None:
    """Raise a ConfigError naming the first setting at or under `path` that the schema does not know or whose
    value has the wrong type. `source` (the file, or `--set `) starts the message."""
    node: Any = schema
    for depth, part in enumerate(path):
        if node is dict:  # a free table takes any keys
            return
        if not isinstance(node, dict):
            raise ConfigError(f"{source}{_dotted(path)}: {_dotted(path[:depth])} is a setting, not a section")
        if part not in node:
            kind = "section" if isinstance(value, dict) else "setting"
            raise ConfigError(f"{source}{_dotted(path)}: unknown {kind}{_suggestion(path, schema)}")
        node = node[part]
    expected = dict if isinstance(node, dict) else node
    if not _fits(value, expected):
        raise ConfigError(f"{source}{_dotted(path)}: expected {_TYPE_NAMES[expected]}, got {_shown(value)}")
    if isinstance(node, dict):
        for key, item in value.items():
            check_settings((*path, key), item, schema, source)


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
               dict: "a table"}


def _fits(value: Any, expected: type) -> bool:
    if expected is float:  # an int is a number too (`--set curate.temperature=1`); a bool is neither
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)  # true, as TOML writes it


def _suggestion(path: tuple[str, ...], schema: dict[str, Any]) -> str:
    """For the first unknown part of `path`: a close name among its siblings, else the siblings' names."""
    node, depth = schema, 0
    while depth < len(path) - 1 and isinstance(node.get(path[depth]), dict):
        node, depth = node[path[depth]], depth + 1
    prefix = path[:depth]
    close = difflib.get_close_matches(path[depth], sorted(node), n=1)
    if close:  # the rest of the path kept: segmnt.min_chars -> segment.min_chars
        return f"; did you mean {_dotted((*prefix, close[0], *path[depth + 1:]))}?"
    return f"; known in [{_dotted(prefix)}]: {', '.join(sorted(node))}" if prefix else \
        f"; known sections: {', '.join(sorted(node))}"


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _value_types(table: dict[str, Any]) -> dict[str, Any]:
    return {key: _value_types(value) if isinstance(value, dict) else type(value) for key, value in table.items()}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
