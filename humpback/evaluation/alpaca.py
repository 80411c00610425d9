"""Evaluation prompts and answers in AlpacaEval's format, so the real `alpaca_eval` tool can re-judge our outputs.

AlpacaEval's model outputs are one JSON list of objects with `instruction`, `output` and `generator` (and
usually `dataset`). Prompts are read from the same format or from JSONL with one `{"instruction": ...}` a line.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from humpback.resources import source_checkout

# The sample's prompts: in the source checkout, else (an installed wheel has no data/) under the working directory;
# `evaluate.prompts` names any other file.
DEFAULT_EVAL_PROMPTS = (source_checkout() or Path.cwd()) / "data" / "sample" / "eval_prompts.jsonl"
PROMPT_FORMAT = ("a JSON list or JSONL of objects with an 'instruction' field "
                 "(AlpacaEval format: instruction, output, generator, dataset)")
OUTPUT_FORMAT = "a JSON list of objects with 'instruction', 'output' and 'generator' fields (AlpacaEval format)"


@dataclass(frozen=True)
class EvalPrompt:
    instruction: str
    dataset: str | None = None


@dataclass(frozen=True)
class ModelOutput:
    instruction: str
    output: str
    generator: str
    dataset: str | None = None
    finish_reason: str | None = None  # stop | length (cut by max_new_tokens); AlpacaEval ignores extra fields

    def to_json(self) -> dict[str, str]:
        record = {"instruction": self.instruction, "output": self.output, "generator": self.generator}
        if self.dataset is not None:
            record["dataset"] = self.dataset
        if self.finish_reason is not None:
            record["finish_reason"] = self.finish_reason
        return record


def read_prompts(path: str | Path) -> list[EvalPrompt]:
    """Prompts from JSONL or an AlpacaEval JSON list; anything else is a ValueError naming the expected fields."""
    records = _read_records(Path(path), PROMPT_FORMAT)
    prompts = [EvalPrompt(_text_field(record, "instruction", path, where, PROMPT_FORMAT), _dataset(record))
               for where, record in records]
    if not prompts:
        raise ValueError(f"{path}: no prompts; expected {PROMPT_FORMAT}")
    return prompts


def read_outputs(path: str | Path) -> list[ModelOutput]:
    """Model outputs in AlpacaEval format (a JSON list)."""
    records = _read_records(Path(path), OUTPUT_FORMAT, allow_jsonl=False)
    return [ModelOutput(*(_text_field(record, name, path, where, OUTPUT_FORMAT)
                          for name in ("instruction", "output", "generator")), dataset=_dataset(record))
            for where, record in records]


def write_outputs(path: str | Path, outputs: Iterable[ModelOutput]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([output.to_json() for output in outputs], ensure_ascii=False, indent=2) + "\n",
                    encoding="utf-8")
    return path


def _read_records(path: Path, expected: str, allow_jsonl: bool = True) -> list[tuple[str, Any]]:
    """(where, record) pairs: 'item N' for a JSON list, 'line N' for JSONL."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no evaluation file {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; expected {expected}") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON ({err}); expected {expected}") from None
        return [(f"item {number}", item) for number, item in enumerate(items, 1)]
    if not allow_jsonl:
        raise ValueError(f"{path}: not a JSON list; expected {expected}")
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError:
                raise ValueError(f"{path} line {number}: not JSON; expected {expected}") from None
    return records


def _text_field(record: Any, name: str, path: str | Path, where: str, expected: str) -> str:
    value = record.get(name) if isinstance(record, dict) else None
    if not isinstance(value, str) or (name == "instruction" and not value.strip()):
        raise ValueError(f"{path} {where}: no '{name}' text; expected {expected}")
    return value


def _dataset(record: dict) -> str | None:
    value = record.get("dataset")
    return value if isinstance(value, str) else None
