"""Drop rules over segment signals: the name of the first rule that fires, or None to keep the segment.

The order is fixed and the names are the values of the `segments.drop_reason` column. The duplicate rules
('exact_duplicate', 'near_duplicate') need all segments at once and are applied afterwards, in Spark.

The tables are decided by sql/segment_drops.sql, over the stored `signals` struct, with the thresholds of
[segment] as named parameters (`humpback segment`, and `humpback segment --redecide` after a threshold change).
`drop_reason` below is the same rules in plain Python, for code that has no Spark session (the plain-Python side
of benchmarks/bench_segment.py, quick checks in tests); tests/sql/test_segment_drops.py runs both over the same
rows and requires the same answer, so a rule changed in one place and not the other fails there.

Both follow SQL's rules for missing and odd values, so that they agree on every row a table can hold:
- a NULL signal (None, or a key the mapping lacks: a row written before that signal existed) fires no rule; a
  rule made of several comparisons fires when one of them is true (SQL's `OR` with an unknown side);
- a NaN double compares as Spark compares it: equal to itself and larger than any number.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

DROP_REASONS = (
    "too_short", "too_long", "empty_header", "all_caps_header", "nav_header", "repetitive", "wrong_language",
    "mixed_language", "low_quality",
)
DUPLICATE_REASONS = ("exact_duplicate", "near_duplicate")

# The [segment] settings of conf/defaults.toml that the rules read (the parameters of sql/segment_drops.sql), with
# their defaults; tests/sql/test_segment_drops.py checks that the two files and this mapping name the same values.
DEFAULT_THRESHOLDS = {
    # Paper App. E: a segment is 600..3,000 characters.
    "min_chars": 600,
    "max_chars": 3000,
    # Largest word-3-gram Jaccard similarity between two sentences of a segment. At 0.5 two sentences share
    # most of their phrasing (a template filled twice, a pasted line); sentences that merely discuss the same
    # thing share few 3-grams and stay well below. The paper names the test but not its threshold.
    "max_repetition": 0.5,
    # FineWeb's LanguageFilter: English with a classifier probability of at least 0.65.
    "target_lang": "en",
    "min_lang_score": 0.65,
    # Paragraph by paragraph, at least 90% of the judged text in the segment's language: a foreign passage longer
    # than a tenth (60..300 characters in the paper's window: a sentence or more) makes a pair whose answer
    # switches language, while a quoted line or a foreign name stays under it.
    "min_lang_share": 0.9,
    # Gopher quality rules (Rae et al. 2021, App. A; datatrove GopherQualityFilter / GopherRepetitionFilter).
    "min_mean_word_length": 3,
    "max_mean_word_length": 10,
    "min_alpha_word_frac": 0.8,
    "min_stop_words": 2,
    "max_symbol_to_word_ratio": 0.1,
    "max_bullet_line_frac": 0.9,
    "max_ellipsis_line_frac": 0.3,
    "max_duplicate_line_frac": 0.3,
}


def drop_reason(signals: Mapping, th: Mapping = DEFAULT_THRESHOLDS) -> str | None:
    """The first rule in DROP_REASONS order that the segment fails, or None when it passes them all
    (sql/segment_drops.sql's CASE, in Python)."""
    s = signals.get
    if _below(s("n_chars"), th["min_chars"]):
        return "too_short"
    if _above(s("n_chars"), th["max_chars"]):
        return "too_long"
    if _equal(s("header_chars"), 0) and _above(s("header_level"), 0):  # level 0: text before any header
        return "empty_header"
    if _true(s("header_all_caps")):
        return "all_caps_header"
    if _true(s("header_is_nav")):
        return "nav_header"
    if _above(s("repetition"), th["max_repetition"]):
        return "repetitive"
    if _differs(s("lang"), th["target_lang"]) or _below(s("lang_score"), th["min_lang_score"]):
        return "wrong_language"
    if _below(s("lang_share"), th["min_lang_share"]):
        return "mixed_language"
    if is_low_quality(signals, th):
        return "low_quality"
    return None


def is_low_quality(signals: Mapping, th: Mapping = DEFAULT_THRESHOLDS) -> bool:
    """Gopher's heuristics: any one of them failing marks the segment as low quality."""
    s = signals.get
    return (
        _below(s("mean_word_length"), th["min_mean_word_length"])
        or _above(s("mean_word_length"), th["max_mean_word_length"])
        or _below(s("alpha_word_frac"), th["min_alpha_word_frac"])
        or _below(s("stop_word_count"), th["min_stop_words"])
        or _above(s("symbol_to_word_ratio"), th["max_symbol_to_word_ratio"])
        or _above(s("bullet_line_frac"), th["max_bullet_line_frac"])
        or _above(s("ellipsis_line_frac"), th["max_ellipsis_line_frac"])
        or _above(s("duplicate_line_frac"), th["max_duplicate_line_frac"])
    )


# Comparisons as Spark SQL makes them: NULL (None) is never true; NaN is equal to itself and above every number.

def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _below(value: Any, limit: Any) -> bool:
    return value is not None and not _is_nan(value) and value < limit


def _above(value: Any, limit: Any) -> bool:
    return value is not None and (_is_nan(value) or value > limit)


def _equal(value: Any, other: Any) -> bool:
    return value is not None and not _is_nan(value) and value == other


def _differs(value: Any, other: Any) -> bool:
    return value is not None and value != other


def _true(value: Any) -> bool:
    return value is not None and bool(value)
