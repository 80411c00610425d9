"""N-gram overlap between training instructions and evaluation prompts (decontamination).

The paper does not decontaminate its web data against the evaluation prompts (paper-notes 4.8); we do. A text's
words are its runs of ASCII letters and digits, lower-cased; its grams are the distinct runs of `n` consecutive
words. A text shorter than `n` words is one gram of all its words, so a short evaluation prompt copied verbatim
is still caught. `sql/curated_pairs.sql` computes the instruction side with the same rule in Spark SQL; the
tests hold the two to the same answers.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_NGRAM = 8
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int = DEFAULT_NGRAM) -> set[str]:
    """The text's distinct word n-grams, each joined by single spaces."""
    if n < 1:
        raise ValueError(f"n-gram size must be at least 1, got {n}")
    tokens = words(text)
    if not tokens:
        return set()
    if len(tokens) < n:
        return {" ".join(tokens)}
    return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def ngram_index(texts: Iterable[str], n: int = DEFAULT_NGRAM) -> set[str]:
    """Every n-gram of every text: what the evaluation prompts contribute to `eval_ngrams`."""
    index: set[str] = set()
    for text in texts:
        index |= ngrams(text, n)
    return index


def overlap(text: str, index: set[str], n: int = DEFAULT_NGRAM) -> float:
    """The share of the text's distinct n-grams found in `index`; 0.0 for a text without words."""
    grams = ngrams(text, n)
    return len(grams & index) / len(grams) if grams else 0.0


def is_contaminated(text: str, index: set[str], max_overlap: float, n: int = DEFAULT_NGRAM) -> bool:
    """True when the overlap reaches `max_overlap` (the SQL's exclusion rule; above 1.0 nothing is excluded)."""
    return overlap(text, index, n) >= max_overlap
