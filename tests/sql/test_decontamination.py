"""Word n-gram overlap with the evaluation prompts (the Python side of the SQL rule)."""
import pytest

from humpback.decontamination import (
    is_contaminated,
    ngram_index,
    ngrams,
    overlap,
    words,
)


def test_words_are_lower_cased_ascii_letter_and_digit_runs():
    assert words("Don't PANIC: it's 42°C!") == ["don", "t", "panic", "it", "s", "42", "c"]


def test_ngrams_slide_over_words_and_short_texts_are_one_gram():
    assert ngrams("a b c d", 3) == {"a b c", "b c d"}
    assert ngrams("Write a haiku.", 8) == {"write a haiku"}
    assert ngrams("!!!", 8) == set()
    with pytest.raises(ValueError):
        ngrams("a b", 0)


def test_overlap_is_the_share_of_distinct_ngrams_found():
    index = ngram_index(["one two three four five"], 3)
    assert index == {"one two three", "two three four", "three four five"}
    assert overlap("one two three four six", index, 3) == pytest.approx(2 / 3)
    assert overlap("seven eight nine", index, 3) == 0.0
    assert overlap("", index, 3) == 0.0


def test_contamination_threshold_is_inclusive():
    index = ngram_index(["one two three four five"], 3)
    assert is_contaminated("one two three four six seven", index, 0.5, 3)  # 2 of 4 grams
    assert not is_contaminated("one two three four six seven", index, 0.51, 3)
    assert is_contaminated("ONE two, three four five", index, 1.0, 3)
