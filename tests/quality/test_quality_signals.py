import pytest

from humpback.quality.signals import (compute_signals, header_signals, is_nav_header, line_signals,
                                      max_sentence_similarity, word_signals)

PROSE = ("The pipeline reads web pages and cuts them into segments. Each segment is the text under a header, "
         "and it keeps the structure of lists and paragraphs.\nA model then writes an instruction for every "
         "segment, and another model rates the pair on a five point scale.")


def test_compute_signals_returns_plain_values_with_all_keys():
    signals = compute_signals("Overview", PROSE, 2)
    expected = {"header_level", "n_chars", "n_words", "header_chars", "header_cap_ratio", "header_all_caps",
                "header_is_nav", "repetition", "mean_word_length", "alpha_word_frac", "stop_word_count",
                "stop_word_frac", "symbol_to_word_ratio", "n_lines", "mean_line_length", "bullet_line_frac",
                "ellipsis_line_frac", "duplicate_line_frac", "n_emails", "n_phones", "lang", "lang_score",
                "lang_share", "foreign_paragraphs"}
    assert set(signals) == expected
    assert all(type(v) in (int, float, bool, str) for v in signals.values())
    assert signals["n_chars"] == len(PROSE)
    assert signals["n_words"] == len(PROSE.split())
    assert signals["header_level"] == 2
    assert signals["lang"] == "en" and signals["lang_score"] > 0.9


def test_header_capital_ratio_and_all_caps():
    assert header_signals("ABC def")["header_cap_ratio"] == pytest.approx(0.5)
    assert header_signals("FREE SHIPPING 2024!")["header_all_caps"] is True
    assert header_signals("Free shipping")["header_all_caps"] is False
    assert header_signals("2024")["header_all_caps"] is False
    assert header_signals("2024")["header_cap_ratio"] == 0.0
    assert header_signals("  ")["header_chars"] == 0


@pytest.mark.parametrize("header", ["Advertisement", "Forum", "Quick Links", "Free Newsletter", "Related Posts",
                                    "Comments", "Share", "Subscribe to our newsletter", "Menu", "Navigation",
                                    "Log in", "Sign up", "Cookie Policy", "3. Leave a Reply"])
def test_navigation_headers_are_recognised(header):
    assert is_nav_header(header)


@pytest.mark.parametrize("header", ["Comments in Python source code are ignored", "Sharing state between processes",
                                    "Installing the package", "Menus", ""])
def test_content_headers_are_not_navigation(header):
    assert not is_nav_header(header)


def test_repetition_is_one_for_a_repeated_sentence_and_zero_for_distinct_ones():
    assert max_sentence_similarity("Buy cheap shoes here today. Nothing else. Buy cheap shoes here today.") == 1.0
    assert max_sentence_similarity("The cat sat on the mat. A dog ran in the park. Birds sing at dawn.") == 0.0


def test_repetition_is_the_jaccard_of_word_trigram_sets():
    # trigrams: {a b c, b c d, c d e} and {a b c, b c d, c d f}: 2 shared of 4 in all
    assert max_sentence_similarity("a b c d e.\na b c d f.") == pytest.approx(0.5)


def test_repetition_compares_only_the_first_sentences():
    filler = " ".join(f"Sentence number {i} is unique here." for i in range(300))
    text = "Repeat this line of words. " + filler + " Repeat this line of words."
    assert max_sentence_similarity(text, max_sentences=200) < 0.5
    assert max_sentence_similarity(text, max_sentences=400) == 1.0


def test_word_signals_follow_gopher():
    text = "The cat and the dog, with #tags ... 123 ..."
    signals = word_signals(text, text.split())
    # non-symbol words: The cat and the dog with tags 123 -> lengths 3 3 3 3 3 4 4 3
    assert signals["mean_word_length"] == pytest.approx(26 / 8)
    assert signals["alpha_word_frac"] == pytest.approx(7 / 10)
    assert signals["stop_word_count"] == 4  # the, and, the, with
    assert signals["stop_word_frac"] == pytest.approx(4 / 10)
    assert signals["symbol_to_word_ratio"] == pytest.approx(3 / 10)  # one '#', two '...'


def test_line_signals():
    lines = ["- item one", "- item one", "• item two", "A sentence that trails off...", "Plain line"]
    signals = line_signals(lines)
    assert signals["n_lines"] == 5
    assert signals["bullet_line_frac"] == pytest.approx(3 / 5)
    assert signals["ellipsis_line_frac"] == pytest.approx(1 / 5)
    assert signals["duplicate_line_frac"] == pytest.approx(1 / 5)
    assert signals["mean_line_length"] == pytest.approx(sum(map(len, lines)) / 5)


def test_blank_lines_are_not_counted():
    signals = compute_signals("H", "one\n\n\ntwo\n", 2)
    assert signals["n_lines"] == 2
    assert signals["duplicate_line_frac"] == 0.0


def test_emails_and_phone_numbers_are_counted():
    text = ("Write to jane.doe@example.com or sales@shop.example.co.uk, call +1 555-123-4567 or (020) 7946 0958. "
            "Version 3.11.2 and address 192.168.100.200 are not phone numbers.")
    signals = compute_signals("Contact", text, 2)
    assert signals["n_emails"] == 2
    assert signals["n_phones"] == 2


def test_empty_text_gives_zeros_not_errors():
    signals = compute_signals("", "", 1)
    assert signals["n_words"] == 0
    assert signals["mean_word_length"] == 0.0
    assert signals["repetition"] == 0.0
    assert signals["lang"] == "und"
