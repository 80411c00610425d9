import pytest

from humpback.quality.rules import DEFAULT_THRESHOLDS, DROP_REASONS, drop_reason
from humpback.quality.signals import compute_signals

GOOD_TEXT = (
    "A list comprehension builds a new list from an existing iterable in a single expression. It is often "
    "clearer than a loop that appends to a list, and it is usually faster as well. The expression before the "
    "for clause says what each element of the new list should be, and an optional if clause at the end "
    "filters the elements that are kept.\n"
    "Nested comprehensions read from left to right, in the same order as the loops they replace. When the "
    "logic grows beyond one or two clauses, a plain loop with a descriptive name is easier to follow and to "
    "test. Generator expressions have the same syntax with parentheses and produce their values lazily, "
    "which saves memory when the result is consumed only once."
)

FRENCH_TEXT = (
    "Une liste en compréhension construit une nouvelle liste à partir d'un itérable existant, en une seule "
    "expression. Elle est souvent plus claire qu'une boucle qui ajoute des éléments, et généralement plus "
    "rapide. L'expression placée avant la clause for indique ce que sera chaque élément, et une clause if "
    "facultative, à la fin, filtre les éléments conservés. Les compréhensions imbriquées se lisent de gauche "
    "à droite, dans l'ordre des boucles qu'elles remplacent. Quand la logique dépasse une ou deux clauses, "
    "une boucle ordinaire avec un nom parlant est plus facile à suivre et à tester. Les expressions "
    "génératrices ont la même syntaxe entre parenthèses et produisent leurs valeurs à la demande."
)


def good_signals():
    return compute_signals("List comprehensions", GOOD_TEXT, 2)


def test_a_good_segment_is_kept():
    signals = good_signals()
    assert 600 <= signals["n_chars"] <= 3000
    assert drop_reason(signals, DEFAULT_THRESHOLDS) is None


def test_the_thresholds_default_to_the_recommended_ones():
    assert drop_reason(good_signals()) is None
    assert drop_reason({**good_signals(), "n_chars": 10}) == "too_short"


@pytest.mark.parametrize("change, reason", [
    ({"n_chars": 599}, "too_short"),
    ({"n_chars": 3001}, "too_long"),
    ({"header_chars": 0}, "empty_header"),
    ({"header_all_caps": True}, "all_caps_header"),
    ({"header_is_nav": True}, "nav_header"),
    ({"repetition": 0.51}, "repetitive"),
    ({"lang": "fr"}, "wrong_language"),
    ({"lang_score": 0.5}, "wrong_language"),
    ({"lang_share": 0.89}, "mixed_language"),
    ({"mean_word_length": 2.5}, "low_quality"),
    ({"mean_word_length": 10.5}, "low_quality"),
    ({"alpha_word_frac": 0.7}, "low_quality"),
    ({"stop_word_count": 1}, "low_quality"),
    ({"symbol_to_word_ratio": 0.11}, "low_quality"),
    ({"bullet_line_frac": 0.95}, "low_quality"),
    ({"ellipsis_line_frac": 0.31}, "low_quality"),
    ({"duplicate_line_frac": 0.31}, "low_quality"),
])
def test_each_rule_drops_with_its_exact_name(change, reason):
    assert drop_reason({**good_signals(), **change}, DEFAULT_THRESHOLDS) == reason


@pytest.mark.parametrize("change", [{"n_chars": 600}, {"n_chars": 3000}, {"repetition": 0.5},
                                    {"lang_score": 0.65}, {"lang_share": 0.9}, {"alpha_word_frac": 0.8}, {"stop_word_count": 2},
                                    {"symbol_to_word_ratio": 0.1}, {"duplicate_line_frac": 0.3}])
def test_values_on_a_threshold_are_kept(change):
    assert drop_reason({**good_signals(), **change}, DEFAULT_THRESHOLDS) is None


def test_the_first_rule_that_fires_wins():
    everything_wrong = {**good_signals(), "n_chars": 10, "header_chars": 0, "header_all_caps": True,
                        "header_is_nav": True, "repetition": 1.0, "lang": "de", "stop_word_count": 0}
    assert drop_reason(everything_wrong, DEFAULT_THRESHOLDS) == "too_short"
    assert drop_reason({**everything_wrong, "n_chars": 1000}, DEFAULT_THRESHOLDS) == "empty_header"
    assert drop_reason({**everything_wrong, "n_chars": 1000, "header_chars": 5}, DEFAULT_THRESHOLDS) == \
        "all_caps_header"
    assert drop_reason({**good_signals(), "repetition": 1.0, "lang": "de"}, DEFAULT_THRESHOLDS) == "repetitive"
    assert drop_reason({**good_signals(), "lang": "de", "stop_word_count": 0}, DEFAULT_THRESHOLDS) == \
        "wrong_language"
    assert drop_reason({**good_signals(), "lang": "de", "lang_share": 0.5}, DEFAULT_THRESHOLDS) == "wrong_language"
    assert drop_reason({**good_signals(), "lang_share": 0.5, "stop_word_count": 0}, DEFAULT_THRESHOLDS) == \
        "mixed_language"


def test_thresholds_come_from_the_caller():
    strict = {**DEFAULT_THRESHOLDS, "min_chars": 5000, "max_chars": 10000}
    other_language = {**DEFAULT_THRESHOLDS, "target_lang": "fr"}
    assert drop_reason(good_signals(), strict) == "too_short"
    assert drop_reason(good_signals(), other_language) == "wrong_language"


def test_real_signals_trigger_the_rules():
    caps = compute_signals("FREE SHIPPING", GOOD_TEXT, 2)
    nav = compute_signals("Related Posts", GOOD_TEXT, 2)
    repeated = compute_signals("Deals", "Buy the best shoes online today. " * 30, 2)
    french = compute_signals("Les listes", FRENCH_TEXT, 2)
    assert drop_reason(caps) == "all_caps_header"
    assert drop_reason(nav) == "nav_header"
    assert drop_reason(repeated) == "repetitive"
    assert french["n_chars"] >= 600
    assert drop_reason(french) == "wrong_language"


def test_drop_reason_names_are_listed_in_order():
    assert DROP_REASONS == ("too_short", "too_long", "empty_header", "all_caps_header", "nav_header",
                            "repetitive", "wrong_language", "mixed_language", "low_quality")


def test_a_missing_signal_fires_no_rule_as_in_sql():
    """A NULL signal (a row written before the signal existed) fires nothing, as in sql/segment_drops.sql; a rule of
    several comparisons still fires on the one it can make (tests/sql/test_segment_drops.py holds the two equal)."""
    assert drop_reason({**good_signals(), "lang_share": None}) is None
    assert drop_reason({key: value for key, value in good_signals().items() if key != "lang_share"}) is None
    assert drop_reason({**good_signals(), "lang": None}) is None
    assert drop_reason({**good_signals(), "lang": None, "lang_score": 0.1}) == "wrong_language"
    assert drop_reason({**good_signals(), "lang": "fr", "lang_score": None}) == "wrong_language"
    assert drop_reason({**good_signals(), "mean_word_length": None, "stop_word_count": 0}) == "low_quality"
    assert drop_reason({**good_signals(), "header_all_caps": None, "n_chars": None}) is None
    assert drop_reason({}) is None


def test_nan_compares_as_spark_compares_it():
    """Spark orders NaN above every number: a NaN fails a maximum and passes a minimum."""
    nan = float("nan")
    assert drop_reason({**good_signals(), "repetition": nan}) == "repetitive"
    assert drop_reason({**good_signals(), "lang_score": nan}) is None
    assert drop_reason({**good_signals(), "mean_word_length": nan}) == "low_quality"
