"""Content ids: every id, key and version hash the pipeline stores, and the hashing primitives they share.

Each id is a SHA-256 digest of exactly the bytes named here, never Python's hash(), so it agrees across
processes, machines and runs. Stored tables and recorded runs depend on these values: they must not change
(tests/test_ids.py pins each one). Text is hashed as UTF-8. Parts are joined by NUL, which no id part contains,
except for `page_id`, whose parts are joined by newlines (kept as first written: stored page ids depend on it).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from humpback.text import normalize_for_hash

NUL = "\x00"
EXAMPLE_ID_CHARS = 32
SEGMENT_ID_CHARS = 32
EVALUATION_ID_CHARS = 32
TEMPLATE_VERSION_CHARS = 12
CONFIG_HASH_CHARS = 16
# The settings an evaluation's outputs depend on (with the pinned models, the prompts and the engines).
EVALUATION_DECODING_KEYS = ("temperature", "top_p", "max_new_tokens", "seed", "judge_max_new_tokens")
_FILE_BLOCK = 1 << 20


# ----- primitives -----

def sha256_hex(data: str | bytes) -> str:
    """SHA-256 hex digest of bytes, or of text as UTF-8 (equal to Spark's sha2(text, 256))."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def joined_hash(*parts: object, sep: str = NUL, chars: int | None = None) -> str:
    """SHA-256 hex of the parts written as text (str()) and joined by `sep`, cut to its first `chars` characters."""
    digest = sha256_hex(sep.join(str(part) for part in parts))
    return digest if chars is None else digest[:chars]


def joined_int(*parts: object, n_bytes: int = 8) -> int:
    """The first `n_bytes` of the NUL-joined parts' SHA-256, as a big-endian unsigned integer."""
    digest = hashlib.sha256(NUL.join(str(part) for part in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:n_bytes], "big")


def json_hash(value: Any, chars: int | None = None) -> str:
    """SHA-256 hex of `value` as JSON with sorted keys (non-JSON values written with str()), order-independent."""
    digest = sha256_hex(json.dumps(value, sort_keys=True, default=str))
    return digest if chars is None else digest[:chars]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_FILE_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


# ----- the named ids -----

def example_id(instruction: str, output: str) -> str:
    """A seed pair's id: sha256 of instruction NUL output, hex, first 32 characters."""
    return joined_hash(instruction, output, chars=EXAMPLE_ID_CHARS)


def split_bucket(example_id: str) -> int:
    """A seed pair's split bucket in [0, 2**32): hashed again, salted, so the split does not depend on how
    example ids are made (humpback.seeds.split_for compares it with the dev fraction)."""
    return joined_int("split", example_id, n_bytes=4)


def page_id(record_id: str, url: str, body: bytes) -> str:
    """A page's id: sha256 of its WARC record id, URL and payload digest joined by newlines (full hex)."""
    return joined_hash(record_id, url, sha256_hex(body), sep="\n")


def text_page_id(doc_id: str, url: str | None, text: str) -> str:
    """A text document's page id: its corpus id (or content id), URL and text's sha256. Two corpora that number
    their documents alike ("1", "2", ...) do not collide, and the same document read twice is one page."""
    return joined_hash("text-document", doc_id, url or "", sha256_hex(text))


def segment_id(page_id: str, position: int, header: str, text: str) -> str:
    """A segment's id: the same page always gives the same ids, and identical text on two pages two ids."""
    return joined_hash(page_id, position, header, text, chars=SEGMENT_ID_CHARS)


def text_hash(text: str) -> str:
    """Exact-duplicate key: SHA-256 hex of the normalized text (humpback.text.normalize_for_hash)."""
    return sha256_hex(normalize_for_hash(text))


def instruction_hash(instruction: str | None) -> str | None:
    """Joins ratings to the exact instruction they rated: SHA-256 hex of its UTF-8 (Spark's sha2(instruction,
    256)); None for None."""
    return None if instruction is None else sha256_hex(instruction)


def pair_key(segment_id: str, instruction_hash: str) -> str:
    """A rated pair's key (its sampling seed is derived from it): segment id NUL instruction hash."""
    return f"{segment_id}{NUL}{instruction_hash}"


def template_version(text: str) -> str:
    """A prompt template's version: sha256 hex of its text, first 12 characters."""
    return sha256_hex(text)[:TEMPLATE_VERSION_CHARS]


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, order-independent digest of the settings, recorded on every MLflow run."""
    return json_hash(config, CONFIG_HASH_CHARS)


def evaluation_id(pinned: Mapping[str, str], prompts_sha256: str, n_prompts: int, engines: tuple[str, str],
                  settings: Mapping[str, Any]) -> str:
    """Same models, prompts and settings -> same id: a re-run replaces its row instead of adding one."""
    decoding = {key: settings[key] for key in EVALUATION_DECODING_KEYS}
    return json_hash([pinned, prompts_sha256, n_prompts, engines, decoding], EVALUATION_ID_CHARS)
