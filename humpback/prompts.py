"""Every prompt the pipeline sends to a model, each versioned by a hash of its text.

The backward prompt asks for the instruction a text answers; the rating prompt carries the paper's five-level
rubric (every criterion of the paper's Table 1, in our own words; tests/test_prompts.py lists them) and asks for
brief reasoning, then `Score: N`.

Templates are filled in one pass over their own placeholders: an instruction or a segment is data, so text in it
such as "{output}", "{0}" or "{}" reaches the model as written and is never substituted.
"""
from __future__ import annotations

import hashlib
import re

SEED_TAG = "Answer in the style of an AI Assistant."
WEB_TAG = "Answer with knowledge from web search."
INFERENCE_TAG = f"{SEED_TAG} {WEB_TAG}"  # the paper's best inference setting: both tags together

BACKWARD_TEMPLATE = (
    "Below is a text. Write the most likely instruction or question from a user for which this text "
    "would be a great answer. Reply with the instruction only.\n\n"
    "Text:\n{output}"
)

RATING_TEMPLATE = """Below is an instruction from a user and a candidate answer. Judge whether the answer is a good example of how an AI Assistant should respond to the user's instruction, using this 5-point scale:

1: The answer is incomplete, vague, off-topic or controversial, or it is not exactly what the user asked for. For example: some content seems to be missing, a numbered list does not start from the beginning, or the opening sentence repeats the user's question. Or it is written from another person's perspective, with their personal experience (as in a blog post), or it looks like a reply from a forum. Or it contains promotional text, navigation text or other irrelevant information.
2: The answer addresses most of what the user asked, but it does not directly address the user's question. For example, it only gives a high-level methodology instead of the exact solution to the user's question.
3: The answer is helpful but not written by an AI Assistant. It addresses all the basic asks of the user and is complete and self-contained, with one drawback: it is not written from an AI assistant's perspective but from other people's perspective. It reads like an excerpt from a blog post, a web page or web search results; for example, it contains personal experience or opinion, mentions a comments section, or asks to share on social media.
4: The answer is written from an AI assistant's perspective, with a clear focus on addressing the instruction. It gives a complete, clear and comprehensive response to the user's question or instruction, without missing or irrelevant information. It is well organized, self-contained and written in a helpful tone. It has minor room for improvement, such as being more concise and focused.
5: The answer is a perfect answer from an AI Assistant. It has a clear focus on being a helpful AI Assistant: it looks intentionally written to address the user's question or instruction, without irrelevant sentences. It provides high-quality content demonstrating expert knowledge in the area, and it is very well written, logical, easy-to-follow, engaging and insightful.

First give a brief reasoning for your rating, then write the rating on the last line as "Score: <rating>", where <rating> is 1, 2, 3, 4 or 5.

Instruction:
{instruction}

Answer:
{output}"""

# Logprob mode: the assistant's reply is prefilled up to the score, and the next token's distribution over
# "1".."5" is read in one forward pass.
SCORE_PREFIX = "Score:"
SCORE_TOKENS = ("1", "2", "3", "4", "5")


def template_version(text: str) -> str:
    """Content hash naming a prompt template's version: sha256 hex, first 12 characters."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


BACKWARD_TEMPLATE_VERSION = template_version(BACKWARD_TEMPLATE)
RATING_TEMPLATE_VERSION = template_version(RATING_TEMPLATE + SCORE_PREFIX)


def fill_template(template: str, **values: str) -> str:
    """The template with each `{name}` of the given names replaced by its value, in one pass over the template.

    A value is never scanned again (chained str.replace would fill a "{output}" written inside an instruction),
    and other braces of the template stay as they are (str.format would need them doubled).
    """
    if not values:
        return template
    placeholder = re.compile(r"\{(" + "|".join(re.escape(name) for name in values) + r")\}")
    return placeholder.sub(lambda match: values[match.group(1)], template)


def backward_prompt(output: str) -> str:
    return fill_template(BACKWARD_TEMPLATE, output=output)


def rating_prompt(instruction: str, output: str) -> str:
    return fill_template(RATING_TEMPLATE, instruction=instruction, output=output)
