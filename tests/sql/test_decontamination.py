"""Word n-gram overlap with the evaluation prompts (the Python side of the SQL function eval_overlap)."""
import pytest

from humpback.decontamination import build_index, eval_overlap, ngrams, words


def test_words_are_lower_cased_ascii_letter_and_digit_runs():
    assert words("Don't PANIC: it's 42°C!") == ["don", "t", "panic", "it", "s", "42", "c"]


def test_ngrams_slide_over_words_and_short_texts_are_one_gram():
    assert ngrams("a b c d", 3) == {"a b c", "b c d"}
    assert ngrams("Write a haiku.", 8) == {"write a haiku"}
    assert ngrams("!!!", 8) == set()
    with pytest.raises(ValueError):
        ngrams("a b", 0)


def test_overlap_is_the_share_of_the_texts_grams_found_in_the_prompts():
    index = build_index(["one two three four five"], 3)
    assert eval_overlap("one two three four six", index) == pytest.approx(2 / 3)
    assert eval_overlap("seven eight nine", index) == 0.0
    assert eval_overlap("", index) == 0.0 and eval_overlap(None, index) == 0.0


def test_a_prompt_pasted_into_a_long_text_counts_by_the_prompts_own_grams():
    prompt = "one two three four five six"  # 4 grams of 3 words
    index = build_index([prompt], 3)
    long_output = "intro words here and more " * 20 + prompt + " and a long ending " * 20
    assert eval_overlap(long_output, index) == 1.0  # every gram of the prompt is in the text
    half = "intro words here " * 20 + "one two three four" + " ending words" * 20  # 2 of the prompt's 4 grams
    assert eval_overlap(half, index) == pytest.approx(0.5)


def test_a_short_prompt_matches_when_it_occurs_inside_the_text():
    index = build_index(["Write a haiku about tea.", "Hi there", "Hello"], 8)
    assert eval_overlap("Please write a haiku about tea, with steam.", index) == 1.0
    assert eval_overlap("write a haiku about teapots", index) < 1.0  # whole words only
    # one- and two-word prompts match only a text of exactly those words
    assert eval_overlap("hi there", index) == 1.0 and eval_overlap("Hello!", index) == 1.0
    assert eval_overlap("Hello, I said hi there to the owner of the shop.", index) < 1.0


def test_the_index_keeps_long_and_short_prompts_apart():
    index = build_index(["a b c d", "x y", "", "!!!"], 3)
    assert index.prompt_sizes == (2,) and index.short_prompts == ("x y",)
    assert index.gram_prompts == {"a b c": (0,), "b c d": (0,)}
