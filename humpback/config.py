"""Settings: conf/defaults.toml, then an optional user TOML file, then `--set section.key=value` overrides."""
from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Iterable

DEFAULTS_PATH = Path(__file__).resolve().parent.parent / "conf" / "defaults.toml"


class ConfigError(ValueError):
    """A settings file or override that cannot be used."""


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Return the merged settings as a nested dict."""
    config = _read_toml(DEFAULTS_PATH)
    if path is not None:
        _deep_merge(config, _read_toml(Path(path)))
    for item in overrides:
        apply_override(config, item)
    return config


def apply_override(config: dict[str, Any], item: str) -> None:
    """Apply one `section.key=value` (the value parsed as a TOML value, else kept as a string)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    parts = key.strip().split(".")
    node = config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
    node[parts[-1]] = parse_value(raw.strip())


def parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def config_hash(config: dict[str, Any]) -> str:
    """A short, order-independent digest of the settings, recorded on every MLflow run."""
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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
