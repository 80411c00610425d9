"""Words and n-grams: the four word rules and where they differ, and the two n-gram rules."""
import re
import sys
import unicodedata

import pytest

from humpback.text import (alnum_words, ascii_words, contains_run, folded_words, jaccard, ngrams, normalize_for_hash,
                           shingles, words)

TEXT = "Don't PANIC: it's 42°C, naïve café_bar ﬁne Straße!"


def test_the_four_word_rules_on_one_text():
    assert words(TEXT) == ["don", "t", "panic", "it", "s", "42", "c", "naïve", "café_bar", "ﬁne", "straße"]
    assert folded_words(TEXT) == ["don", "t", "panic", "it", "s", "42", "c", "naïve", "café_bar", "fine", "strasse"]
    assert ascii_words(TEXT) == ["don", "t", "panic", "it", "s", "42", "c", "na", "ve", "caf", "bar", "ne", "stra", "e"]
    assert alnum_words(TEXT) == ["don", "t", "panic", "it", "s", "42", "c", "naïve", "café", "bar", "ﬁne", "straße"]


def test_no_text_has_no_words():
    for rule in (words, folded_words, ascii_words, alnum_words):
        assert rule("") == [] and rule(None) == [] and rule(" ?! ") == []


def test_normalize_for_hash_is_the_folded_words_joined_by_spaces():
    assert normalize_for_hash("  Hello,   WORLD!\n It's  ﬁne. ") == "hello world it s fine"
    assert normalize_for_hash("STRASSE") == normalize_for_hash("Straße")


def test_normalize_for_hash_equals_the_punctuation_stripping_rule_it_replaced():
    # Stored text hashes were made by replacing [^\w\s]+ with a space and splitting on whitespace; that is
    # the same as taking \w+ runs exactly when re's \s and str.isspace agree on every character.
    space = re.compile(r"\s")
    assert all(bool(space.fullmatch(chr(i))) == chr(i).isspace() for i in range(sys.maxunicode + 1))
    old = re.compile(r"[^\w\s]+")
    for text in (TEXT, "a\u00a0b\u2028c\u3000d_e", "x.y,z--w  \t\n v"):
        folded = unicodedata.normalize("NFKC", text).casefold()
        assert normalize_for_hash(text) == " ".join(old.sub(" ", folded).split())


def test_ngrams_are_runs_of_n_words_and_a_short_text_has_none():
    assert ngrams(["a", "b", "c", "d"], 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert ngrams(["a", "b"], 3) == set() and ngrams([], 3) == set()


def test_shingles_make_a_short_text_one_shingle():
    assert shingles(["a", "b", "c", "d"], 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert shingles(["a", "b"], 3) == {("a", "b")}
    assert shingles([], 3) == set()


@pytest.mark.parametrize("rule", [ngrams, shingles])
def test_an_n_below_one_is_an_error(rule):
    with pytest.raises(ValueError):
        rule(["a"], 0)


def test_contains_run_matches_whole_words_only():
    tokens = words("Reply with the instruction only, please")
    assert contains_run(tokens, ["the", "instruction", "only"])
    assert not contains_run(tokens, ["the", "instruct"]) and not contains_run(tokens, ["only", "reply"])


def test_jaccard():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == pytest.approx(0.5)
    assert jaccard({1}, {1}) == 1.0 and jaccard({1}, {2}) == 0.0 and jaccard(set(), set()) == 0.0
