"""Drop rules over segment signals: the name of the first rule that fires, or None to keep the segment.

The order is fixed and the names are the values of the `segments.drop_reason` column. The duplicate rules
('exact_duplicate', 'near_duplicate') need all segments at once and are applied afterwards, in Spark.
"""
from __future__ import annotations

from typing import Mapping

DROP_REASONS = (
    "too_short", "too_long", "empty_header", "all_caps_header", "nav_header", "repetitive", "wrong_language",
    "mixed_language", "low_quality",
)

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
    """The first rule in DROP_REASONS order that the segment fails, or None when it passes them all."""
    if signals["n_chars"] < th["min_chars"]:
        return "too_short"
    if signals["n_chars"] > th["max_chars"]:
        return "too_long"
    if signals["header_chars"] == 0:
        return "empty_header"
    if signals["header_all_caps"]:
        return "all_caps_header"
    if signals["header_is_nav"]:
        return "nav_header"
    if signals["repetition"] > th["max_repetition"]:
        return "repetitive"
    if signals["lang"] != th["target_lang"] or signals["lang_score"] < th["min_lang_score"]:
        return "wrong_language"
    if signals["lang_share"] < th["min_lang_share"]:
        return "mixed_language"
    if is_low_quality(signals, th):
        return "low_quality"
    return None


def is_low_quality(signals: Mapping, th: Mapping = DEFAULT_THRESHOLDS) -> bool:
    """Gopher's heuristics: any one of them failing marks the segment as low quality."""
    return (
        not th["min_mean_word_length"] <= signals["mean_word_length"] <= th["max_mean_word_length"]
        or signals["alpha_word_frac"] < th["min_alpha_word_frac"]
        or signals["stop_word_count"] < th["min_stop_words"]
        or signals["symbol_to_word_ratio"] > th["max_symbol_to_word_ratio"]
        or signals["bullet_line_frac"] > th["max_bullet_line_frac"]
        or signals["ellipsis_line_frac"] > th["max_ellipsis_line_frac"]
        or signals["duplicate_line_frac"] > th["max_duplicate_line_frac"]
    )
