"""Every prompt the pipeline sends to a model, each versioned by a hash of its text.

The backward prompt asks for the instruction a text answers; the rating prompt carries the paper's five-level
rubric (written in our own words from the paper's Table 1) and asks for brief reasoning, then `Score: N`.
"""
from __future__ import annotations

import hashlib

SEED_TAG = "Answer in the style of an AI Assistant."
WEB_TAG = "Answer with knowledge from web search."
INFERENCE_TAG = f"{SEED_TAG} {WEB_TAG}"  # the paper's best inference setting: both tags together

BACKWARD_TEMPLATE = (
    "Below is a text. Write the most likely instruction or question from a user for which this text "
    "would be a great answer. Reply with the instruction only.\n\n"
    "Text:\n{output}"
)

RATING_TEMPLATE = """Below is an instruction from a user and a candidate answer. Judge whether the answer is a good example of how an AI Assistant should respond to the instruction, using this 5-point scale:

1: The answer is incomplete, vague, off-topic or controversial, or it is not what the user asked for. For example: content seems to be missing, a numbered list does not start at the beginning, the first sentence repeats the question, it is written from another person's point of view or personal experience (a blog post) or reads like a forum reply, or it contains promotional text, navigation text or other irrelevant material.
2: The answer addresses most of what the user asked but does not answer the question directly, for example it gives a high-level method instead of the exact solution.
3: The answer is helpful but not written by an AI Assistant. It covers all the basic asks and is complete and self-contained, but reads like an excerpt from a blog post, a web page or search results: it shows personal experience or opinion, mentions a comments section, or invites sharing on social media.
4: The answer is written from an AI Assistant's point of view and focuses clearly on the instruction. It is complete, clear, comprehensive, well organized, self-contained and helpful in tone, with minor room for improvement, such as being more concise and focused.
5: The answer is a perfect answer from an AI Assistant. Every sentence serves the user's question, it shows expert knowledge, and it is well written, logical, easy to follow, engaging and insightful.

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


def backward_prompt(output: str) -> str:
    return BACKWARD_TEMPLATE.format(output=output)


def rating_prompt(instruction: str, output: str) -> str:
    # str.replace, not format: a segment may contain braces, and its text is data, never a template.
    return RATING_TEMPLATE.replace("{instruction}", instruction).replace("{output}", output)
