"""sql/segment_drops.sql and its Python twin humpback.quality.rules.drop_reason give the same reason on every row.

The SQL file decides the tables (`humpback segment`, `humpback segment --redecide`); drop_reason is the same rules
for plain-Python use. Both run here over one table of tricky signal rows: every threshold exactly, one step below
and one above; NULL and NaN in every signal; the language rules' combinations; several rules at once (order); a
row without signals; and seeded random mixes of all of these, under the default thresholds and under others.
"""
import math
import random

import pytest

from humpback.config import load_config
from humpback.quality.rules import DEFAULT_THRESHOLDS, DROP_REASONS, drop_reason
from humpback.sqlfiles import load_sql
from humpback.stages.segment import decide
from humpback.tables import SIGNAL_TYPES, struct

# A segment that passes every rule under the defaults.
GOOD = {
    "header_level": 2, "n_chars": 1200, "n_words": 210, "header_chars": 20, "header_cap_ratio": 0.1,
    "header_all_caps": False, "header_is_nav": False, "repetition": 0.2, "mean_word_length": 4.6,
    "alpha_word_frac": 0.95, "stop_word_count": 12, "stop_word_frac": 0.2, "symbol_to_word_ratio": 0.0,
    "n_lines": 4, "mean_line_length": 300.0, "bullet_line_frac": 0.0, "ellipsis_line_frac": 0.0,
    "duplicate_line_frac": 0.0, "n_emails": 0, "n_phones": 0, "lang": "en", "lang_score": 0.98,
    "lang_share": 1.0, "foreign_paragraphs": 0,
}
# signal -> the threshold it is compared with
COMPARED = {
    "n_chars": ("min_chars", "max_chars"), "repetition": ("max_repetition",), "lang_score": ("min_lang_score",),
    "lang_share": ("min_lang_share",), "mean_word_length": ("min_mean_word_length", "max_mean_word_length"),
    "alpha_word_frac": ("min_alpha_word_frac",), "stop_word_count": ("min_stop_words",),
    "symbol_to_word_ratio": ("max_symbol_to_word_ratio",), "bullet_line_frac": ("max_bullet_line_frac",),
    "ellipsis_line_frac": ("max_ellipsis_line_frac",), "duplicate_line_frac": ("max_duplicate_line_frac",),
}
OTHER_THRESHOLDS = {
    **DEFAULT_THRESHOLDS, "min_chars": 100, "max_chars": 1200, "max_repetition": 0.0, "target_lang": "fr",
    "min_lang_score": 0.5, "min_lang_share": 0.0, "min_mean_word_length": 4.6, "max_mean_word_length": 4.6,
    "min_alpha_word_frac": 1.0, "min_stop_words": 0, "max_symbol_to_word_ratio": 0.0,
    "max_bullet_line_frac": 1.0, "max_ellipsis_line_frac": 0.0, "max_duplicate_line_frac": 0.5,
}


def around(limit, signal):
    """The threshold as a value of the signal, the next value below and the next above (ints by 1, doubles by one
    ulp: a threshold given as a whole number, such as min_mean_word_length = 3, meets a double signal)."""
    if SIGNAL_TYPES[signal] == "int":
        return [limit - 1, limit, limit + 1]
    return [math.nextafter(limit, -math.inf), float(limit), math.nextafter(limit, math.inf)]


def odd_values(name):
    """NULL always; NaN and the infinities for doubles."""
    return [None, math.nan, math.inf, -math.inf] if SIGNAL_TYPES[name] == "double" else [None]


def tricky_rows(th) -> list:
    rows = [dict(GOOD)]
    for signal, limits in COMPARED.items():
        for limit in limits:
            rows += [{**GOOD, signal: value} for value in around(th[limit], signal)]
    for signal in SIGNAL_TYPES:
        for value in odd_values(signal):
            rows.append({**GOOD, signal: value})
            # The same missing value on a segment that fails a later rule: a NULL must not stop the later rules.
            rows.append({**GOOD, signal: value, "duplicate_line_frac": 0.9})
    rows += [{**GOOD, "header_chars": 0}, {**GOOD, "header_all_caps": True}, {**GOOD, "header_is_nav": True},
             {**GOOD, "header_chars": 0, "header_all_caps": True, "header_is_nav": True}]
    # The language rules: the language, its score and the paragraphs' share, alone and together.
    for lang in ("en", "fr", "EN", "", "und", None):
        for score in (0.98, th["min_lang_score"], 0.1, None, math.nan):
            for share in (1.0, th["min_lang_share"], 0.5, None):
                rows.append({**GOOD, "lang": lang, "lang_score": score, "lang_share": share})
    # Several rules at once: the first in order names the reason.
    everything_wrong = {**GOOD, "n_chars": 10, "header_chars": 0, "header_all_caps": True, "header_is_nav": True,
                        "repetition": 1.0, "lang": "de", "lang_share": 0.1, "stop_word_count": 0}
    for dropped in ("n_chars", "header_chars", "header_all_caps", "header_is_nav", "repetition", "lang",
                    "lang_share"):
        everything_wrong = {**everything_wrong, dropped: GOOD[dropped]}
        rows.append(dict(everything_wrong))
    rows.append({name: None for name in SIGNAL_TYPES})
    # Seeded random mixes of the values above, signal by signal.
    choices = {name: [GOOD[name], *odd_values(name)] for name in SIGNAL_TYPES}
    for signal, limits in COMPARED.items():
        choices[signal] += [value for limit in limits for value in around(th[limit], signal)]
    choices["lang"] += ["fr", "und"]
    choices["header_all_caps"] += [True]
    choices["header_is_nav"] += [True]
    choices["header_chars"] += [0]
    rng = random.Random(7)
    rows += [{name: rng.choice(values) for name, values in choices.items()} for _ in range(400)]
    return rows


def sql_reasons(spark, rows, th, with_null_struct=False) -> list:
    schema = f"segment_id string, signals {struct(SIGNAL_TYPES)}"
    data = [(f"{i:05d}", tuple(row[name] for name in SIGNAL_TYPES)) for i, row in enumerate(rows)]
    if with_null_struct:
        data.append((f"{len(rows):05d}", None))
    frame = spark.createDataFrame(data, schema)
    decided = decide(spark, frame, {**th, "max_nodes": 200_000, "max_depth": 2_000})
    return [row.rule_drop for row in decided.orderBy("segment_id").collect()]


@pytest.mark.parametrize("thresholds", [DEFAULT_THRESHOLDS, OTHER_THRESHOLDS], ids=["defaults", "others"])
def test_the_sql_file_and_drop_reason_agree_on_every_tricky_row(spark, thresholds):
    rows = tricky_rows(thresholds)
    by_sql = sql_reasons(spark, rows, thresholds, with_null_struct=True)
    by_python = [drop_reason(row, thresholds) for row in rows] + [drop_reason({}, thresholds)]
    disagreements = [(rows[i] if i < len(rows) else None, by_sql[i], by_python[i])
                     for i in range(len(by_sql)) if by_sql[i] != by_python[i]]
    assert not disagreements, disagreements[:5]
    # The rows are tricky enough: every rule fires somewhere, and some rows pass.
    assert set(by_python) == {None, *DROP_REASONS}


def test_the_rows_pin_the_rules_semantics(spark):
    """Spot checks of what both agree on: thresholds pass, NULL fires nothing, NaN is above every number."""
    rows = [{**GOOD, "n_chars": 600}, {**GOOD, "n_chars": 599}, {**GOOD, "repetition": 0.5},
            {**GOOD, "repetition": math.nextafter(0.5, 1)}, {**GOOD, "repetition": None},
            {**GOOD, "repetition": math.nan}, {**GOOD, "lang": None}, {**GOOD, "lang": None, "lang_score": 0.1},
            {**GOOD, "lang": "fr", "lang_score": None}, {**GOOD, "lang_share": math.nan},
            {**GOOD, "header_all_caps": None, "header_is_nav": None, "header_chars": None}]
    expected = [None, "too_short", None, "repetitive", None, "repetitive", None, "wrong_language",
                "wrong_language", None, None]
    assert [drop_reason(row) for row in rows] == expected
    assert sql_reasons(spark, rows, DEFAULT_THRESHOLDS) == expected


def test_the_thresholds_are_the_segment_settings_and_the_file_parameters():
    """One list of rule thresholds: the SQL file's parameters, rules.DEFAULT_THRESHOLDS and [segment]'s values."""
    settings = load_config()["segment"]
    assert load_sql("segment_drops").parameters == set(DEFAULT_THRESHOLDS)
    assert {name: settings[name] for name in DEFAULT_THRESHOLDS} == DEFAULT_THRESHOLDS
    assert set(settings) - set(DEFAULT_THRESHOLDS) == {"max_nodes", "max_depth"}  # parsing limits, no rule


def test_a_missing_setting_is_named(spark):
    frame = spark.createDataFrame([("a", None)], f"segment_id string, signals {struct(SIGNAL_TYPES)}")
    settings = {key: value for key, value in DEFAULT_THRESHOLDS.items() if key != "min_lang_share"}
    with pytest.raises(Exception, match="min_lang_share"):
        decide(spark, frame, settings)
