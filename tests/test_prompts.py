"""The prompts: the rating rubric holds every criterion of the paper's Table 1 at its level, versions are content
hashes, and templates are filled in one pass so that text in an instruction or a segment is never substituted."""
import re

import pytest

from humpback import prompts
from humpback.evaluation.judge import judge_prompt
from humpback.prompts import (
    BACKWARD_TEMPLATE,
    RATING_TEMPLATE,
    RATING_TEMPLATE_VERSION,
    SCORE_PREFIX,
    SCORE_TOKENS,
    backward_prompt,
    fill_template,
    rating_prompt,
    template_version,
)

# The paper's Table 1 (research/paper-notes.md section 1.5), as key phrases per level. Each must appear in that
# level's own line of the rubric, so a criterion moved to another level fails too.
PAPER_RUBRIC = {
    1: ["incomplete", "vague", "off-topic", "controversial", "not exactly what the user asked for",
        "content seems to be missing", "numbered list does not start from the beginning",
        "repeats the user's question", "another person's perspective", "personal experience", "blog post",
        "forum", "promotional text", "navigation text", "irrelevant information"],
    2: ["addresses most of what the user asked", "does not directly address the user's question",
        "high-level methodology", "instead of the exact solution"],
    3: ["helpful but not written by an AI Assistant", "all the basic asks", "complete and self-contained",
        "not written from an AI assistant's perspective but from other people's", "blog post", "web page",
        "web search results", "personal experience or opinion", "comments section", "social media"],
    4: ["written from an AI assistant's perspective", "clear focus on addressing the instruction",
        "complete, clear and comprehensive", "without missing or irrelevant information", "well organized",
        "self-contained", "helpful tone", "minor room for improvement", "more concise and focused"],
    5: ["perfect answer from an AI Assistant", "clear focus on being a helpful AI Assistant",
        "intentionally written to address the user's question", "without irrelevant sentences",
        "high-quality content demonstrating expert knowledge", "very well written",
        "logical, easy-to-follow, engaging and insightful"],
}
# RATING_TEMPLATE_VERSION before the rubric regained the paper's criteria (humpback/prompts.py at commit 0b4d5ce):
# ratings made with the old prompt must not look like ratings made with this one.
OLD_RATING_TEMPLATE_VERSION = "ba092816df81"


def rubric_levels(template: str) -> dict[int, str]:
    return {int(match[1]): match[2] for match in re.finditer(r"^([1-5]): (.+)$", template, re.MULTILINE)}


@pytest.mark.parametrize("level", sorted(PAPER_RUBRIC))
def test_every_criterion_of_the_paper_is_at_its_level(level):
    text = rubric_levels(RATING_TEMPLATE)[level].lower()
    missing = [phrase for phrase in PAPER_RUBRIC[level] if phrase.lower() not in text]
    assert not missing, f"level {level} lacks the paper's criteria {missing}"


def test_the_rubric_has_five_levels_and_asks_for_the_score_line():
    assert sorted(rubric_levels(RATING_TEMPLATE)) == [1, 2, 3, 4, 5]
    assert 'write the rating on the last line as "Score: <rating>"' in RATING_TEMPLATE
    # The instruction and the answer come last, after the rubric, as in the paper.
    assert RATING_TEMPLATE.endswith("Instruction:\n{instruction}\n\nAnswer:\n{output}")
    assert SCORE_PREFIX == "Score:" and SCORE_TOKENS == ("1", "2", "3", "4", "5")


def test_the_rating_prompt_version_is_its_content_hash_and_changed():
    assert RATING_TEMPLATE_VERSION == template_version(RATING_TEMPLATE + SCORE_PREFIX)
    assert re.fullmatch(r"[0-9a-f]{12}", RATING_TEMPLATE_VERSION)
    assert RATING_TEMPLATE_VERSION != OLD_RATING_TEMPLATE_VERSION


# Text a user or a web page may contain that looks like a template placeholder or format field.
TRICKY = ["{output}", "{instruction}", "{0}", "{}", "{{output}}", "a } b { c", "{answer_a}", "%s %(output)s", "\\1"]


@pytest.mark.parametrize("text", TRICKY)
def test_rating_prompt_sends_placeholders_in_the_instruction_and_output_as_text(text):
    instruction, output = f"Explain {text} in Python.", f"Use {text} like this: f'{{x}}'."
    prompt = rating_prompt(instruction, output)
    assert prompt == RATING_TEMPLATE.split("{instruction}")[0] + instruction + "\n\nAnswer:\n" + output
    assert prompt.count(instruction) == 1 and prompt.endswith("\n\nAnswer:\n" + output)


def test_an_instruction_naming_the_output_placeholder_does_not_receive_the_segment():
    # The bug this guards against: .replace("{instruction}", ...).replace("{output}", ...) pasted the segment in.
    segment = "SEGMENT TEXT " * 3
    prompt = rating_prompt("What does {output} mean in a template?", segment)
    assert prompt.count(segment) == 1
    assert "Instruction:\nWhat does {output} mean in a template?\n" in prompt


@pytest.mark.parametrize("text", TRICKY)
def test_backward_prompt_sends_the_text_as_written(text):
    output = f"A text with {text} inside, and {{braces}}."
    assert backward_prompt(output) == BACKWARD_TEMPLATE.removesuffix("{output}") + output


def test_fill_template_fills_only_the_named_placeholders_in_one_pass():
    template = "a={a} b={b} other={c} {}"
    assert fill_template(template, a="{b}", b="{a}") == "a={b} b={a} other={c} {}"
    assert fill_template(template) == template


@pytest.mark.parametrize("text", TRICKY)
def test_judge_prompt_sends_the_answers_as_written(text):
    prompt = judge_prompt(f"Q {text}", f"A {text}", f"B {text}")
    assert f"Instruction:\nQ {text}\n\nAnswer A:\nA {text}\n\nAnswer B:\nB {text}\n\n" in prompt


def test_every_template_of_the_module_is_filled_by_a_function_that_uses_fill_template():
    # A new template added with str.format or chained replace would bring the bug back.
    import inspect

    source = inspect.getsource(prompts)
    assert ".format(" not in source and '.replace("{' not in source


# ----- prompt echoes: one rule for the instruction flag and the backward-model gate -----

@pytest.mark.parametrize("text", [
    "Write the most likely instruction or question from a user for which this text would be a great answer.",
    "please reply with the instruction only text",  # a run of 6 words, across the template's blank line
    "Reply with the instruction only.",  # a sentence of 5 words: the gate missed it (no run of 6 words)
    "Text: Below is a text. Reply with the instruction only.",  # ditto, after another sentence of the template
    "REPLY with the instruction ONLY!",  # case and punctuation do not hide it
    "below is a text. write the most likely instruction for it",  # a run of 6 words across two sentences
])
def test_echoes_of_the_backward_template(text):
    from humpback.evaluation.gate import is_prompt_echo
    from humpback.quality.instruction_flags import instruction_flags

    assert prompts.echoes_template(text)
    assert is_prompt_echo(text, BACKWARD_TEMPLATE) and "prompt_echo" in instruction_flags(text, "Some output.")


@pytest.mark.parametrize("text", [
    "Below is a text message from my boss. How should I reply?",  # the flag's 4-word sentence rule took this
    "How do I write the most likely answer?",  # four template words in a row
    "What is the capital of France?",
    "Reply with the answer only: what is pip?",
    "你好，请介绍一下巴黎。",  # words in another script: not empty for the gate (its ASCII words had none)
])
def test_real_instructions_are_not_echoes(text):
    from humpback.evaluation.gate import is_prompt_echo
    from humpback.quality.instruction_flags import instruction_flags

    assert not prompts.echoes_template(text)
    assert not is_prompt_echo(text, BACKWARD_TEMPLATE) and "prompt_echo" not in instruction_flags(text, "Output.")


def test_an_echo_never_spans_a_placeholder_and_short_fixed_text_is_not_enough():
    # the end of the fixed text followed by the start of the filled-in output is not the template
    assert not prompts.echoes_template("Reply with the instruction only. Text: What is pip?", "Reply with it. {output}")
    # a template whose fixed text is a few words: those words alone are not an echo (the gate used to shrink its
    # run length to the template's longest piece, so "Question: {output}" made every "question" an echo)
    assert not prompts.echoes_template("What is the question?", "Question: {output}")
    assert prompts.echoes_template("guess the request that produced the response", "Guess the request that produced "
                                   "the response below.\n\n{output}")


def test_only_the_gate_counts_an_empty_prediction():
    from humpback.evaluation.gate import is_prompt_echo

    assert not prompts.echoes_template("") and not prompts.echoes_template(None)
    assert is_prompt_echo("   ", BACKWARD_TEMPLATE) and is_prompt_echo("?!", BACKWARD_TEMPLATE)
