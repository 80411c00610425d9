import math

import pytest

from humpback.evaluation.gate import backward_gate_metrics, is_prompt_echo
from humpback.training.sft import BACKWARD_TEMPLATE

REFERENCES = ["What is Python?", "How do I copy a list?", "Why is Python called Python?", "What is pip?"]


def test_identical_instructions_score_one_and_echo_nothing():
    metrics = backward_gate_metrics(REFERENCES, REFERENCES, BACKWARD_TEMPLATE)
    assert metrics == {"rougeL_f": pytest.approx(1.0), "echo_share": 0.0, "n": 4}


def test_empty_and_template_echoes_are_counted():
    predicted = [
        "What is Python?",
        "   ",
        "Write the most likely instruction or question from a user for which this text",
        "How do I write the most likely answer?",  # four template words in a row are not an echo
    ]
    metrics = backward_gate_metrics(predicted, REFERENCES, BACKWARD_TEMPLATE)
    assert metrics["echo_share"] == 0.5
    assert metrics["n"] == 4
    assert metrics["rougeL_f"] == pytest.approx(0.25)  # only the first prediction shares words with its reference


def test_echo_never_spans_the_placeholder():
    # the end of the template's text followed by the start of the filled-in output is not the template
    assert not is_prompt_echo("Reply with the instruction only. Text: What is pip?", "Reply with it. {output}")
    assert is_prompt_echo("please reply with the instruction only text", BACKWARD_TEMPLATE)


def test_rouge_of_unrelated_strings_is_zero():
    assert backward_gate_metrics(["apples"], ["bananas"], BACKWARD_TEMPLATE)["rougeL_f"] == 0.0


def test_lengths_must_match_and_nothing_to_score_is_nan():
    with pytest.raises(ValueError):
        backward_gate_metrics(["a"], [], BACKWARD_TEMPLATE)
    metrics = backward_gate_metrics([], [], BACKWARD_TEMPLATE)
    assert metrics["n"] == 0 and math.isnan(metrics["rougeL_f"]) and math.isnan(metrics["echo_share"])
