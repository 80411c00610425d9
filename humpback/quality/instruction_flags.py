"""Flags on a generated instruction: the ways a backward model's output goes wrong, named, not yet acted on.

The SQL filters of the training-set stage decide what a flag costs; this module only says which apply:
- empty: nothing but whitespace (no other flag is computed for it)
- too_short / too_long: fewer than `min_chars` or more than `max_chars` characters after stripping
- prompt_echo: the instruction repeats the backward template (shares a run of 6 words with its fixed text, or
  contains one of its sentences of 5+ words: humpback.prompts.echoes_template, the rule the backward-model gate
  counts too), as in a reproduction whose model answered with its own prompt
- meta_instruction: it talks about writing an instruction ("generate an instruction", "backtranslate",
  "Here is a possible instruction:", a leading "Instruction:" label) instead of being one
- context_reference: it points at a context the user would not have ("the text above", "this article",
  "the passage", "the given text", "the author"); "the author of X" and "the passage of time" are not flagged
- truncated: the token budget cut it (finish_reason `length`): the instruction is unfinished
- copies_output: it copies the output (a shared run of 8 words, or the whole instruction, when longer than
  40 characters, found inside the output)
Word runs compare lowercased word tokens (humpback.text.words), so punctuation and spacing do not hide a copy.
"""
from __future__ import annotations

import re

from humpback.prompts import BACKWARD_TEMPLATE, echoes_template
from humpback.text import contains_run, ngrams, words

FLAG_NAMES = ("empty", "truncated", "too_short", "too_long", "prompt_echo", "meta_instruction", "context_reference",
              "copies_output")

COPY_NGRAM = 8
MIN_CONTAINED_COPY_CHARS = 40

_META_INSTRUCTION = re.compile(
    r"\b(?:generate|write|create|produce|give|provide|predict|suggest|come\s+up\s+with)\s+"
    r"(?:(?:a|an|the|one|some)\s+)?(?:(?:most\s+)?(?:likely|possible|suitable|good|plausible)\s+)?"
    r"(?:user\s+)?instructions?\b"
    r"|\bback[\s-]?translat\w*"
    r"|\b(?:the|this|my|your)\s+instruction\s+(?:is|would\s+be|could\s+be|might\s+be)\b"
    r"|\bhere\s+(?:is|are)\s+(?:a|an|the|one|some)\s+(?:(?:possible|likely|plausible|suitable|generated)\s+)?"
    r"(?:user\s+)?instructions?\b"
    r"|\bhere\s+(?:is|are)\s+(?:a|an|the|one|some)\s+(?:possible|likely|plausible|suitable|generated)\s+"
    r"(?:user\s+)?(?:questions?|prompts?)\b"
    r"|\binstruction\s+(?:for|to)\s+(?:this|the|that)\s+(?:text|answer|response|output|passage)\b"
    r"|^[\s*_#>\"']*(?:(?:user|generated)\s+)?(?:instruction|prompt|user\s+question)\s*[*_]*\s*:",
    re.IGNORECASE,
)

_CONTEXT_NOUNS = r"(?:text|article|passage|excerpt|paragraph|document|blog\s+post|post|snippet|essay|extract|story)"
_CONTEXT_REFERENCE = re.compile(
    # "this text", "these passages": pointing at something the user did not include
    rf"\b(?:this|these)\s+{_CONTEXT_NOUNS}s?\b"
    # "the given text", "the following passage", "the text provided"
    rf"|\bthe\s+(?:given|provided|following|above|preceding|previous|attached|original|accompanying|quoted|"
    rf"mentioned|aforementioned|same)\s+{_CONTEXT_NOUNS}s?\b"
    rf"|\bthe\s+{_CONTEXT_NOUNS}s?\s+(?:above|below|provided|given)\b"
    # "the article", "the passage", "the author" - but not "the author of Hamlet" or "the passage of time"
    r"|\bthe\s+(?:article|passage|excerpt|paragraph|author|writer)s?\b(?!\s+of\b)"
    r"|\bthis\s+(?:author|writer)\b"
    r"|\bthe\s+above\b"
    r"|\b(?:mentioned|described|stated|given|listed|shown|discussed|provided)\s+above\b"
    r"|\babove[\s-]mentioned\b",
    re.IGNORECASE,
)


def instruction_flags(instruction: str | None, output: str, template: str = BACKWARD_TEMPLATE,
                      min_chars: int = 10, max_chars: int = 1000, truncated: bool = False) -> list[str]:
    """The names of the flags that apply to `instruction` (written for `output`, cut by the token budget when
    `truncated`), in FLAG_NAMES order."""
    text = (instruction or "").strip()
    if not text:
        return ["empty", "truncated"] if truncated else ["empty"]
    raised = {
        "truncated": truncated,
        "too_short": len(text) < min_chars,
        "too_long": len(text) > max_chars,
        "prompt_echo": echoes_template(text, template),
        "meta_instruction": bool(_META_INSTRUCTION.search(text)),
        "context_reference": bool(_CONTEXT_REFERENCE.search(text)),
        "copies_output": copies_output(text, output or ""),
    }
    return [name for name in FLAG_NAMES if raised.get(name)]


def copies_output(instruction: str, output: str) -> bool:
    tokens, output_tokens = words(instruction), words(output)
    if len(tokens) >= COPY_NGRAM and ngrams(tokens, COPY_NGRAM) & ngrams(output_tokens, COPY_NGRAM):
        return True
    return len(instruction) > MIN_CONTAINED_COPY_CHARS and contains_run(output_tokens, tokens)
