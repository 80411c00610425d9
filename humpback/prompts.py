"""Every prompt the pipeline sends to a model, each versioned by a hash of its text.

The backward prompt asks for the instruction a text answers; the rating prompt carries the paper's five-level
rubric (every criterion of the paper's Table 1, in our own words; tests/test_prompts.py lists them) and asks for
brief reasoning, then `Score: N`.

Templates are filled in one pass over their own placeholders: an instruction or a segment is data, so text in it
such as "{output}", "{0}" or "{}" reaches the model as written and is never substituted.
"""
from __future__ import annotations

import functools
import re

from humpback.ids import template_version  # noqa: F401 - named from here too
from humpback.text import contains_run, ngrams, words

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


BACKWARD_TEMPLATE_VERSION = template_version(BACKWARD_TEMPLATE)
RATING_TEMPLATE_VERSION = template_version(RATING_TEMPLATE + SCORE_PREFIX)

# The rewrite stage (Nguyen et al. 2024, "Better Alignment with Instruction Back-and-Forth Translation"): an aligned
# model answers a curated pair's instruction from its web text, keeping the text's facts, in an assistant's voice.
# It is sent under the seed's tag as system message; the version covers both.
REWRITE_SYSTEM = SEED_TAG
REWRITE_TEMPLATE = (
    "Below is an instruction from a user and a text from the web that holds the facts needed to answer it. Write "
    "the answer an AI Assistant would give to the instruction: answer it directly and helpfully, in your own words, "
    "keeping the facts of the text and adding none it does not have. Do not mention the text, the passage or where "
    "the facts come from. Reply with the answer only."
    "\n\nInstruction:\n{instruction}\n\nText:\n{text}"
)
REWRITE_TEMPLATE_VERSION = template_version(REWRITE_SYSTEM + "\n" + REWRITE_TEMPLATE)


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


def rewrite_prompt(instruction: str, text: str) -> str:
    return fill_template(REWRITE_TEMPLATE, instruction=instruction, text=text)


# ----- prompt echoes -----
# A backward model that fails answers with (part of) its own prompt. One rule, for the instruction flag
# `prompt_echo` and the backward-model gate's echo share: the text shares a run of ECHO_NGRAM words with the
# template's fixed text, or contains one of its sentences of MIN_ECHO_SENTENCE_WORDS words or more ("Reply with
# the instruction only."). Shorter sentences are not enough: "Below is a text." also opens real instructions
# ("Below is a text message from my boss, how do I reply?"). Words are humpback.text.words, so case, punctuation
# and the kind of apostrophe do not hide an echo. No run spans a placeholder: the end of the fixed text followed
# by the start of the filled-in output is not the template.
ECHO_NGRAM = 6
MIN_ECHO_SENTENCE_WORDS = 5
_FIELD = re.compile(r"\{[^{}]*\}")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n+")


def echoes_template(text: str | None, template: str = BACKWARD_TEMPLATE) -> bool:
    """Whether `text` repeats the template's fixed text, by the rule above (an empty text repeats nothing)."""
    grams, sentences = _template_fingerprint(template)
    tokens = words(text)
    return bool(grams & ngrams(tokens, ECHO_NGRAM)) or any(contains_run(tokens, sentence) for sentence in sentences)


@functools.lru_cache(maxsize=16)
def _template_fingerprint(template: str) -> tuple[frozenset, tuple[tuple[str, ...], ...]]:
    """(word ECHO_NGRAM-grams of the template's fixed text, its sentences of MIN_ECHO_SENTENCE_WORDS+ words)."""
    grams: set[tuple[str, ...]] = set()
    sentences = []
    for piece in _FIELD.split(template):
        grams |= ngrams(words(piece), ECHO_NGRAM)
        sentences += [tuple(tokens) for tokens in map(words, _SENTENCE_END.split(piece))
                      if len(tokens) >= MIN_ECHO_SENTENCE_WORDS]
    return frozenset(grams), tuple(sentences)
