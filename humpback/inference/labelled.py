"""A labelled value in a model's reply (`Score: 4`, `Winner: A`): reading it, and completing it when it is missing.

Reading (ratings and judge verdicts alike): the value is what follows the LAST label on the LAST line that contains
the label. The label is its word and a colon, in any case, with markdown emphasis allowed between the two
(`**Score**:`); emphasis around the value is the value pattern's business. The value pattern must match all the
text after the label, so a later line that mentions the label without a valid value leaves the reply unreadable
(strict on purpose: a loose reading is how other reproductions stored 10, 91 and 10502 as 1-5 scores).

Completing: a reply without a readable value keeps its own reasoning (the reply up to its last mention of the
label's word), the label is appended, and the value is the most likely of the allowed values in the model's
next-token distribution after it, as guided decoding would force it. All the replies of a batch go to the engine
in one `next_token_probs` call.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from humpback.inference.base import Engine, Request

NO_PROBABILITY = "no probability on any allowed value"


@dataclass(frozen=True)
class LabelledValue:
    """How one labelled value is written: its label's word, the pattern of what follows the label, and the values
    a constrained completion may choose from (as the model writes them right after "<word>:")."""

    word: str
    value: re.Pattern
    choices: tuple[str, ...]
    label: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", re.compile(re.escape(self.word) + r"[*_]*:", re.IGNORECASE))

    @property
    def prefix(self) -> str:
        """The label as a completion writes it: "Score:"."""
        return f"{self.word}:"

    def after_label(self, text: str | None) -> str | None:
        """The text after the last label of the last line with a label; None when no line has one."""
        for line in reversed((text or "").splitlines()):
            labels = list(self.label.finditer(line))
            if labels:
                # "Score: 3 ... Score: 4" on one line: the last label counts, as with lines
                return line[labels[-1].end():]
        return None

    def read(self, text: str | None) -> re.Match | None:
        """The value pattern's match on what follows the last label; None when there is no label or no match."""
        rest = self.after_label(text)
        return None if rest is None else self.value.match(rest)

    def reasoning(self, reply: str) -> str:
        """The reply up to (not including) its last mention of the label's word, any case, without trailing
        whitespace: the reasoning a completion keeps."""
        mentions = [match.start() for match in re.finditer(re.escape(self.word), reply, re.IGNORECASE)]
        return (reply[:mentions[-1]] if mentions else reply).rstrip()

    def completion_prefix(self, reply: str) -> str:
        """The assistant's reply a completion sends: the reasoning, then the label on its own line."""
        reasoning = self.reasoning(reply)
        return f"{reasoning}\n{self.prefix}" if reasoning else self.prefix


@dataclass(frozen=True)
class Completion:
    """A constrained completion: the prefix sent, the value chosen (None on error) and the engine's error."""

    prefix: str
    value: str | None
    error: str | None = None

    @property
    def text(self) -> str:
        """The completed reply: the prefix, a space and the value (only the space when there is no value)."""
        return f"{self.prefix} {self.value if self.value is not None else ''}"


def complete_labelled(engine: Engine, requests: Sequence[Request], replies: Sequence[str],
                      labelled: LabelledValue) -> list[Completion]:
    """For each request and its reply so far: the reply's reasoning, the label, and the most likely allowed value
    after them. One engine call for all; the requests' messages are reused, their own prefix and seed are not."""
    if len(requests) != len(replies):
        raise ValueError(f"{len(requests)} requests for {len(replies)} replies")
    if not requests:
        return []
    prefixes = [labelled.completion_prefix(reply) for reply in replies]
    asks = [Request(messages=request.messages, assistant_prefix=prefix) for request, prefix in zip(requests, prefixes)]
    completions = []
    for prefix, scores in zip(prefixes, engine.next_token_probs(asks, labelled.choices)):
        if scores.error or not scores.probs:
            completions.append(Completion(prefix, None, scores.error or NO_PROBABILITY))
        else:
            completions.append(Completion(prefix, max(scores.probs, key=scores.probs.get)))
    return completions
