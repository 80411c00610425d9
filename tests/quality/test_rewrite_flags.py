"""Flags on rewritten answers: too little of the original kept, a verbatim copy, talk about 'the text', truncation."""
import pytest

from humpback.quality.rewrite_flags import (
    FLAG_NAMES,
    content_overlap,
    content_words,
    copied_share,
    refers_to_source,
    rewrite_flags,
)

ORIGINAL = ("Cacti need gritty, fast-draining soil and very little water. Water them once a month in summer and "
            "almost never in winter, when they rest. A pot with a drainage hole keeps the roots from rotting.")
GOOD = ("Give your cactus gritty, fast-draining soil and a pot with a drainage hole, so its roots never sit in "
        "water and start rotting. Water it about once a month in summer; in winter, while it rests, almost never.")


def test_a_faithful_rewrite_raises_no_flag():
    assert rewrite_flags(GOOD, ORIGINAL) == []
    assert 0.5 < content_overlap(GOOD, ORIGINAL) <= 1.0 and copied_share(GOOD, ORIGINAL) < 0.2


def test_an_answer_that_ignores_the_original_keeps_too_little_of_it():
    other = "Most houseplants like bright, indirect light and a regular feeding with a balanced fertilizer."
    assert content_overlap(other, ORIGINAL) < 0.1
    assert rewrite_flags(other, ORIGINAL) == ["low_overlap"]
    assert rewrite_flags(other, ORIGINAL, min_content_overlap=0.0) == []  # the threshold is a setting


def test_content_words_leave_out_function_words_and_keep_numbers():
    assert content_words("The cactus needs 30 ml of water, and it is in a pot.") == {
        "cactus", "needs", "30", "ml", "water", "pot"}
    assert content_overlap("anything", "the and of") == 1.0  # nothing to keep


@pytest.mark.parametrize("copy", [
    ORIGINAL,
    ORIGINAL.upper().replace(".", " ;"),  # case and punctuation do not hide a copy
    "Sure! " + ORIGINAL,  # a copy with a one-word opening is still a copy
])
def test_a_verbatim_copy_is_flagged(copy):
    assert "copies_original" in rewrite_flags(copy, ORIGINAL)


def test_a_short_rewrite_is_a_copy_only_when_the_original_contains_it_whole():
    assert copied_share("very little water", ORIGINAL) == 1.0
    assert copied_share("little very water", ORIGINAL) == 0.0
    assert copied_share("", ORIGINAL) == 0.0


@pytest.mark.parametrize("text", [
    "According to the text, cacti need very little water.",
    "Based on the passage, water cacti monthly.",
    "The passage says that cacti rest in winter.",
    "The text does not mention fertilizer.",
    "The text doesn\u2019t say how often to repot.",
    "As mentioned in the article, use a pot with a hole.",
    "The provided text recommends gritty soil.",
    "In the excerpt, the roots rot when wet.",
    "The author says cacti rest in winter.",
    "Everything described in the text above applies.",
])
def test_talk_about_the_source_is_a_context_reference(text):
    assert refers_to_source(text)
    assert "context_reference" in rewrite_flags(text, ORIGINAL, min_content_overlap=0.0)


@pytest.mark.parametrize("text", [
    "Split the text on commas with str.split(',').",
    "Select the text and press Ctrl+C to copy it.",
    "The Northwest Passage links the Atlantic and the Pacific.",
    "Memories fade with the passage of time.",
    "The author of Hamlet is Shakespeare.",
    "Based on the source code, the function returns None.",
])
def test_ordinary_mentions_of_text_are_not_flagged(text):
    assert not refers_to_source(text)


def test_a_rewrite_cut_by_the_budget_is_truncated_and_an_empty_one_is_only_empty():
    assert rewrite_flags(GOOD, ORIGINAL, truncated=True) == ["truncated"]
    assert rewrite_flags("   ", ORIGINAL) == ["empty"]
    assert rewrite_flags(None, ORIGINAL, truncated=True) == ["empty", "truncated"]


def test_flags_come_in_their_declared_order_each_once():
    flags = rewrite_flags("According to the text: " + ORIGINAL, ORIGINAL, truncated=True)
    assert flags == ["truncated", "copies_original", "context_reference"]
    assert flags == [name for name in FLAG_NAMES if name in flags]
