"""Flags on generated instructions: each flag on examples that raise it, and clean instructions that raise none."""
import time

import pytest

from humpback.prompts import BACKWARD_TEMPLATE
from humpback.quality.instruction_flags import FLAG_NAMES, instruction_flags

OUTPUT = ("Paris is the capital and largest city of France. It has been the country's capital for centuries "
          "and is home to the Louvre, the most visited museum in the world.")


@pytest.mark.parametrize("instruction", [
    "What is the capital of France?",
    "Tell me about the Louvre museum and why so many people visit it.",
    "Who is the author of Hamlet?",
    "Describe the passage of time in a short poem.",
    "Translate the text 'good morning' into French.",
    "Here is my question: how do I bake sourdough bread?",
    "Write a question for a geography quiz about European capitals.",
    "Summarize the history of Paris in three sentences.",
])
def test_clean_instructions_raise_no_flag(instruction):
    assert instruction_flags(instruction, OUTPUT) == []


@pytest.mark.parametrize("instruction", [
    "Write the most likely instruction or question from a user for which this text would be a great answer.",
    "below is a text. write the most likely instruction for it",
    "Reply with the instruction only.",
    "Text: Below is a text. Reply with the instruction only.",
])
def test_prompt_echo(instruction):
    assert "prompt_echo" in instruction_flags(instruction, OUTPUT)


def test_prompt_echo_follows_the_template_it_is_given():
    template = "Guess the request that produced the response below, please be brief.\n\n{output}"
    instruction = "guess the request that produced the response below"
    assert "prompt_echo" in instruction_flags(instruction, OUTPUT, template=template)
    assert "prompt_echo" not in instruction_flags(instruction, OUTPUT)


@pytest.mark.parametrize("instruction", [
    "Generate an instruction that this answer responds to.",
    "Write an instruction for a text about Paris.",
    "Predict the most likely user instruction for Paris facts.",
    "Can you backtranslate the following response into a question?",
    "Back-translation: what is the capital of France?",
    "The instruction is: tell me about Paris.",
    "Here is a possible instruction: describe Paris.",
    "Here is a plausible question: what is the capital of France?",
    "Instruction: describe the capital of France.",
    "**Instruction:** describe the capital of France.",
])
def test_meta_instruction(instruction):
    assert "meta_instruction" in instruction_flags(instruction, OUTPUT)


@pytest.mark.parametrize("instruction", [
    "Summarize the text above.",
    "What is this article about?",
    "According to the passage, what is the capital of France?",
    "Using the given text, list three facts about Paris.",
    "Rewrite the following text in simpler words.",
    "What does this text say about museums?",
    "What is the author's opinion of the Louvre?",
    "Explain the points mentioned above.",
    "What does the above say about Paris?",
    "Answer using the paragraph below.",
])
def test_context_reference(instruction):
    assert "context_reference" in instruction_flags(instruction, OUTPUT)


def test_copies_output_by_a_long_shared_word_run():
    instruction = "Explain why Paris has been the country's capital for centuries and is home to the Louvre."
    assert "copies_output" in instruction_flags(instruction, OUTPUT)


def test_copies_output_when_contained_in_it():
    instruction = "paris is the capital and largest city of france"
    assert "copies_output" in instruction_flags(instruction, OUTPUT)
    assert "copies_output" not in instruction_flags("Paris is the capital", OUTPUT)  # short: a topic, not a copy


def test_empty_and_length_flags():
    assert instruction_flags("", OUTPUT) == ["empty"]
    assert instruction_flags("   \n", OUTPUT) == ["empty"]
    assert instruction_flags(None, OUTPUT) == ["empty"]
    assert instruction_flags("Paris?", OUTPUT) == ["too_short"]
    assert instruction_flags("Why? " * 300, OUTPUT) == ["too_long"]
    assert instruction_flags("Paris?", OUTPUT, min_chars=3) == []
    assert instruction_flags("Tell me about Paris.", OUTPUT, max_chars=10) == ["too_long"]


def test_an_instruction_cut_by_the_token_budget_is_flagged_truncated():
    assert instruction_flags("How do I repot a cactus without", OUTPUT, truncated=True) == ["truncated"]
    assert instruction_flags("How do I repot a cactus?", OUTPUT) == []
    assert instruction_flags("   ", OUTPUT, truncated=True) == ["empty", "truncated"]


def test_flags_come_in_flag_names_order_and_are_known():
    flags = instruction_flags("Generate an instruction for this text. " + BACKWARD_TEMPLATE, OUTPUT, max_chars=50)
    assert flags == [name for name in FLAG_NAMES if name in flags]
    assert {"too_long", "prompt_echo", "meta_instruction", "context_reference"} <= set(flags)


def test_flags_are_deterministic_and_fast():
    instructions = [f"Question number {i}: what is the capital of France and why?" for i in range(2000)]
    started = time.perf_counter()
    first = [instruction_flags(text, OUTPUT) for text in instructions]
    elapsed = time.perf_counter() - started
    assert first == [instruction_flags(text, OUTPUT) for text in instructions]
    assert elapsed < 5.0
