"""Labelled values in model replies (`Score: 4`, `Winner: A`): the last-labelled-line rule and the constrained
completion that ratings (curate) and judge verdicts share."""
import re

import pytest

from humpback.inference.base import Request, TokenScores
from humpback.inference.labelled import NO_PROBABILITY, Completion, LabelledValue, complete_labelled

LETTER = LabelledValue("Answer", re.compile(r"^\s*(?P<value>[abc])\s*$", re.IGNORECASE), ("a", "b", "c"))


@pytest.mark.parametrize("text, rest", [
    ("reasoning\nAnswer: b", " b"),
    ("**Answer**: b", " b"),
    ("__answer:__ c", "__ c"),
    ("Answer: a\nmore\nANSWER: c", " c"),  # the last line with a label
    ("Answer: a ... Answer: b", " b"),  # the last label on that line
    ("Answer: a\nthe Answer: field is hard", " field is hard"),  # strict: a later label line wins anyway
    ("Answer 4", None), ("", None), (None, None),
])
def test_the_text_after_the_last_label(text, rest):
    assert LETTER.after_label(text) == rest


def test_read_matches_the_value_pattern_on_what_follows_the_label():
    assert LETTER.read("Answer: B")["value"] == "B"
    assert LETTER.read("Answer: a\nAnswer: d") is None and LETTER.read("nothing") is None


def test_the_prefix_and_the_reasoning_a_completion_keeps():
    assert LETTER.prefix == "Answer:"
    assert LETTER.reasoning("It is clear.\n**ANSWER**: maybe") == "It is clear.\n**"
    assert LETTER.completion_prefix("It is clear.  \nanswer: ?") == "It is clear.\nAnswer:"
    assert LETTER.completion_prefix("No label at all.\n") == "No label at all.\nAnswer:"
    assert LETTER.completion_prefix("Answer: ?") == "Answer:"  # nothing before the label: the label alone


class FakeEngine:
    kind, model_ref = "fake", "fake"

    def __init__(self, scores):
        self.scores = scores
        self.calls = []

    def next_token_probs(self, requests, candidates):
        self.calls.append((list(requests), tuple(candidates)))
        return self.scores[:len(requests)]


def test_completions_take_the_most_likely_value_in_one_call():
    messages = ({"role": "user", "content": "Pick one."},)
    requests = [Request(messages, "ignored", seed=5), Request(messages), Request(messages)]
    engine = FakeEngine([TokenScores(probs={"a": 0.2, "b": 0.7, "c": 0.1}), TokenScores(error="too long"),
                         TokenScores(probs={})])
    completions = complete_labelled(engine, requests, ["I think b.", "Answer: ?", ""], LETTER)
    [(asked, candidates)] = engine.calls
    assert candidates == ("a", "b", "c")
    assert [(r.messages, r.assistant_prefix, r.seed) for r in asked] == [
        (messages, "I think b.\nAnswer:", None), (messages, "Answer:", None), (messages, "Answer:", None)]
    assert completions == [Completion("I think b.\nAnswer:", "b"), Completion("Answer:", None, "too long"),
                           Completion("Answer:", None, NO_PROBABILITY)]
    assert [c.text for c in completions] == ["I think b.\nAnswer: b", "Answer: ", "Answer: "]


def test_nothing_to_complete_asks_nothing():
    engine = FakeEngine([])
    assert complete_labelled(engine, [], [], LETTER) == [] and engine.calls == []
    with pytest.raises(ValueError):
        complete_labelled(engine, [Request(())], [], LETTER)


def test_rating_and_judging_use_the_kernel():
    from humpback.evaluation.judge import VERDICT, parse_verdict
    from humpback.inference.rating import SCORE, parse_rating
    from humpback.prompts import SCORE_PREFIX, SCORE_TOKENS

    assert (SCORE.prefix, SCORE.choices) == (SCORE_PREFIX, SCORE_TOKENS)
    assert VERDICT.prefix == "Winner:" and VERDICT.choices == ("A", "B", "tie")
    assert parse_rating(Completion("Reasoning.\nScore:", "4").text) == (4.0, "ok")
    assert parse_verdict(Completion("Reasoning.\nWinner:", "tie").text) == "tie"
