"""Words and word n-grams: the one place that says what a word is.

Four word rules, each kept for a reason (all lower-case the text first):
- `words`: runs of word characters (`\\w`: Unicode letters, digits and the underscore). The default, used by the
  quality signals, the instruction flags and the prompt-echo check (humpback.prompts.echoes_template).
- `folded_words`: the words of the NFKC-normalized, case-folded text, for exact and near-duplicate hashing:
  copies that differ only in Unicode form or case ("ﬁne" / "fine", "Straße" / "STRASSE") must hash alike.
  Stored text hashes and MinHash signatures depend on it; `normalize_for_hash` is these words joined by spaces.
- `ascii_words`: runs of ASCII letters and digits, for decontamination against the evaluation prompts (English);
  stored `eval_overlap` values and the thresholds set on them were measured with it.
- `alnum_words`: runs of Unicode letters and digits, without the underscore, for instruction diversity: its
  Spark column expression splits on `[^\\p{L}\\p{N}]+`, and the two must count the same words.

Two n-gram rules over a word list (tuples of n consecutive words):
- `ngrams`: every run of n words; a text shorter than n words has none. For "do these texts share a run of n
  words" tests (a prompt echoed, an output copied, a sentence repeated): a short text shares no such run.
- `shingles`: the same, except that a text shorter than n words is one shingle of all its words (none when it
  has no words), so that a short text still has something to compare (MinHash, decontamination).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_WORD = re.compile(r"\w+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_ALNUM_WORD = re.compile(r"[^\W_]+")


def words(text: str | None) -> list[str]:
    """Runs of word characters (letters, digits, underscore; any script) of the lower-cased text."""
    return _WORD.findall((text or "").lower())


def folded_words(text: str | None) -> list[str]:
    """The words of the NFKC-normalized, case-folded text: copies differing in Unicode form or case match."""
    return _WORD.findall(unicodedata.normalize("NFKC", text or "").casefold())


def normalize_for_hash(text: str | None) -> str:
    """Case-folded NFKC text without punctuation and with single spaces: copies differing only there match."""
    return " ".join(folded_words(text))


def ascii_words(text: str | None) -> list[str]:
    """Runs of ASCII letters and digits of the lower-cased text (decontamination's words)."""
    return _ASCII_WORD.findall((text or "").lower())


def alnum_words(text: str | None) -> list[str]:
    """Runs of letters and digits (any script, no underscore) of the lower-cased text (diversity's words)."""
    return _ALNUM_WORD.findall((text or "").lower())


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The distinct runs of n consecutive tokens; none when there are fewer than n tokens."""
    _check_size(n)
    return set(zip(*(tokens[i:] for i in range(n))))


def shingles(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """`ngrams`, except that fewer than n tokens make one shingle of all of them (none when there are none)."""
    _check_size(n)
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return ngrams(tokens, n)


def contains_run(tokens: Sequence[str], run: Sequence[str]) -> bool:
    """Whether `run` occurs in `tokens` as consecutive whole tokens (tokens have no spaces; an empty run is found
    only in an empty token list)."""
    return f" {' '.join(run)} " in f" {' '.join(tokens)} "


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; 0.0 when both are empty (nothing is shared)."""
    if not a and not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def _check_size(n: int) -> None:
    if n < 1:
        raise ValueError(f"n-gram size must be at least 1, got {n}")
