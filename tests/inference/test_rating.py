"""The rating parser (DESIGN.md's rule), score arithmetic and candidate spellings: pure Python, no model."""
import math
import subprocess
import sys
from typing import ClassVar

import pytest

import humpback
from humpback.inference.rating import (
    CandidateSpellings,
    aggregate_samples,
    candidate_mass,
    candidate_spellings,
    expected_score,
    parse_rating,
    renormalize,
    string_spellings,
)

PARSE_CASES = [
    # (generated text, score, parse_status)
    ("The answer is complete and clear.\nScore: 4", 4.0, "ok"),
    ("Reasoning...\nScore: 5/5", 5.0, "ok"),
    ("Reasoning...\nScore: 3 / 5", 3.0, "ok"),
    ("Reasoning...\nScore: 2.", 2.0, "ok"),
    ("Reasoning...\nScore: 4/5.", 4.0, "ok"),
    ("Reasoning...\n**Score:** 4", 4.0, "ok"),
    ("Reasoning...\n**Score: 4**", 4.0, "ok"),
    ("Reasoning...\nScore: **4**", 4.0, "ok"),
    ("Reasoning...\n**Score**: 1", 1.0, "ok"),
    ("Reasoning...\n__Score:__ 3", 3.0, "ok"),
    ("reasoning\nscore: 2", 2.0, "ok"),
    ("reasoning\nSCORE: 5", 5.0, "ok"),
    ("Reasoning...\nFinal score: 3", 3.0, "ok"),
    ("  Score:   4   ", 4.0, "ok"),
    ("Score: 4\r\n", 4.0, "ok"),
    # several Score lines: the last one wins
    ("Score: 2\nOn reflection the answer is better.\nScore: 4", 4.0, "ok"),
    ("Score: 5\nActually no.\nScore: 1", 1.0, "ok"),
    # two labels on one line: the last label counts
    ("Score: 2 ... Score: 4", 4.0, "ok"),
    # 'Score:' mentioned mid-text, then a later valid line
    ("The rubric says to write Score: followed by a number.\nScore: 3", 3.0, "ok"),
    # a later Score line that is not a score makes the whole rating invalid (last line wins, strictly)
    ("Score: 4\nI hope this Score: explanation helps", None, "invalid"),
    # out of range, decimals, words, other scales, trailing words, nothing after the colon
    ("Score: 6", None, "invalid"),
    ("Score: 0", None, "invalid"),
    ("Score: 10", None, "invalid"),
    ("Score: 10502", None, "invalid"),
    ("Score: -3", None, "invalid"),
    ("Score: 4.5", None, "invalid"),
    ("Score: five", None, "invalid"),
    ("Score: 4/10", None, "invalid"),
    ("Score: 4/50", None, "invalid"),
    ("Score: 4 - good", None, "invalid"),
    ("Score: 4 out of 5", None, "invalid"),
    ("Score: [4]", None, "invalid"),
    ("Score:", None, "invalid"),
    ("Score:\n4", None, "invalid"),
    ("Score: ٤", None, "invalid"),  # a non-ASCII digit is not an integer 1..5 here
    # no Score line at all
    ("This answer deserves a 4.", None, "missing"),
    ("Rating: 4", None, "missing"),
    ("Score 4", None, "missing"),
    ("", None, "missing"),
    (None, None, "missing"),
]


@pytest.mark.parametrize(("text", "score", "status"), PARSE_CASES)
def test_parse_rating_table(text, score, status):
    assert parse_rating(text) == (score, status)


def test_parse_rating_is_the_public_humpback_parse_rating():
    assert humpback.parse_rating is parse_rating
    assert "parse_rating" in humpback.__all__


def test_import_humpback_stays_light():
    probe = "import sys, humpback; print(sorted(m for m in ('torch', 'pyspark', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_aggregate_samples_averages_the_parsed_ones():
    assert aggregate_samples([(4.0, "ok"), (5.0, "ok"), (None, "invalid")]) == (4.5, "ok")
    assert aggregate_samples([(None, "missing"), (3.0, "ok")]) == (3.0, "ok")
    assert aggregate_samples([(None, "missing"), (None, "invalid")]) == (None, "invalid")
    assert aggregate_samples([(None, "missing")]) == (None, "missing")
    assert aggregate_samples([]) == (None, "missing")


def test_expected_score_renormalizes():
    assert expected_score({"1": 0, "2": 0, "3": 0, "4": 1.0, "5": 0}) == pytest.approx(4.0)
    assert expected_score({"4": 0.25, "5": 0.25}) == pytest.approx(4.5)
    assert expected_score({str(k): 0.2 for k in range(1, 6)}) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        expected_score({"1": 0.0, "2": 0.0})


def test_renormalize_reports_the_raw_mass():
    probs, mass = renormalize({"1": 0.1, "2": 0.3})
    assert mass == pytest.approx(0.4)
    assert probs == pytest.approx({"1": 0.25, "2": 0.75})
    with pytest.raises(ValueError):
        renormalize({"1": 0.0})


class SplitSpaceTokenizer:
    """Like SmolLM2: a digit is its own token and " 4" is a space token then "4"."""

    vocab: ClassVar[dict[str, int]] = {"Score": 10, ":": 11, " ": 12, **{str(d): 20 + d for d in range(10)}}

    def __call__(self, text):
        ids, rest = [], text
        while rest:
            piece = "Score" if rest.startswith("Score") else rest[0]
            ids.append(self.vocab[piece])
            rest = rest[len(piece):]
        return ids


class MergedSpaceTokenizer(SplitSpaceTokenizer):
    """Like GPT-2: " 4" is one token of its own."""

    vocab: ClassVar[dict[str, int]] = {**SplitSpaceTokenizer.vocab, **{f" {d}": 40 + d for d in range(10)}}

    def __call__(self, text):
        ids, rest = [], text
        while rest:
            piece = rest[:2] if rest[:2] in self.vocab else ("Score" if rest.startswith("Score") else rest[0])
            ids.append(self.vocab[piece])
            rest = rest[len(piece):]
        return ids


def test_spellings_go_through_a_space_bridge_when_the_tokenizer_splits_it():
    spellings = candidate_spellings(SplitSpaceTokenizer(), ["1", "2"], context="Score:")
    assert spellings.direct == {"1": {21}, "2": {22}}
    assert spellings.bridge == 12
    assert spellings.after_bridge == {"1": {21}, "2": {22}}


def test_spellings_use_the_single_space_digit_token_when_there_is_one():
    spellings = candidate_spellings(MergedSpaceTokenizer(), ["1", "2"], context="Score:")
    assert spellings.direct == {"1": {21, 41}, "2": {22, 42}}
    assert spellings.bridge is None


def test_a_candidate_with_no_one_token_spelling_is_refused():
    with pytest.raises(ValueError, match="not one token"):
        candidate_spellings(SplitSpaceTokenizer(), ["10"], context="Score:")


def test_candidate_mass_follows_the_chain_rule():
    spellings = CandidateSpellings(direct={"1": frozenset({21}), "2": frozenset({22})}, bridge=12,
                                   after_bridge={"1": frozenset({21}), "2": frozenset({22})})
    next_probs = {21: 0.05, 22: 0.15, 12: 0.6}
    after_space = {21: 0.5, 22: 0.25}
    mass = candidate_mass(spellings, next_probs, after_space)
    assert mass["1"] == pytest.approx(0.05 + 0.6 * 0.5)
    assert mass["2"] == pytest.approx(0.15 + 0.6 * 0.25)
    assert candidate_mass(spellings, next_probs, None) == pytest.approx({"1": 0.05, "2": 0.15})


def test_string_spellings_count_both_forms_of_a_digit():
    spellings = string_spellings(["4", "5"])
    mass = candidate_mass(spellings, {"4": 0.1, " 4": 0.2, " ": 0.5, "5": 0.1}, {"4": 0.5, "5": 0.5})
    assert mass["4"] == pytest.approx(0.1 + 0.2 + 0.25)
    assert mass["5"] == pytest.approx(0.1 + 0.25)
    assert math.isclose(sum(renormalize(mass)[0].values()), 1.0)
