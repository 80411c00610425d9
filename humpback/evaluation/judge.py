"""Pairwise judging with any engine: which of two answers better follows the instruction.

The judge writes a short comparison, then its verdict on the last line: `Winner: A`, `Winner: B` or
`Winner: tie`. As with ratings, the LAST line containing `Winner:` (any case, markdown emphasis allowed) is read
(humpback.inference.labelled); no such line, or another value on it, leaves the verdict unparsed.

A reply without a readable verdict keeps its reasoning, and the verdict is then read from the judge's own
next-token distribution after "Winner:" over A / B / tie (counted as `constrained`), as curate does for scores;
small judges rarely finish with the exact line, and a tie for every such pair would hide their preference.

Judges prefer a position (often the first answer). Every pair is therefore judged twice, the model's answer
shown first (as A) and then second (as B); a win or a loss needs both verdicts to agree, and anything else (a
disagreement, a tie in either order, an unparsed verdict) is a tie. Unparsed pairs are counted separately.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from humpback.evaluation.winrate import LOSS, TIE, WIN
from humpback.inference.base import Engine, Generation, Request, Sampling
from humpback.inference.labelled import LabelledValue, complete_labelled

VERDICT_PREFIX = "Winner:"
VERDICT_TOKENS = ("A", "B", "tie")

JUDGE_TEMPLATE = """Two AI assistants answered the same instruction from a user. Decide which answer follows the instruction better: it does what the user asked, it is correct, complete and clear, and it contains nothing irrelevant. A longer answer is not better for being longer, and the order in which the answers appear must not influence you.

Instruction:
{instruction}

Answer A:
{answer_a}

Answer B:
{answer_b}

Compare the two answers in a few sentences. Then write your verdict on the last line, exactly one of:
Winner: A
Winner: B
Winner: tie"""
MODEL, BASELINE = "model", "baseline"
A, B = "A", "B"

_PLACEHOLDER = re.compile(r"\{(instruction|answer_a|answer_b)\}")
# "Winner:" (any case, `**Winner**:` too), then A, B or tie, optionally "Answer A", in emphasis or backticks.
VERDICT = LabelledValue(VERDICT_PREFIX.removesuffix(":"),
                        re.compile(r"^[\s*_`]*(?:answer\s+)?(?P<value>a|b|tie)[\s*_`]*\.?[\s*_`]*$", re.IGNORECASE),
                        VERDICT_TOKENS)


def judge_prompt(instruction: str, answer_a: str, answer_b: str) -> str:
    # One pass over the template: an answer that contains "{answer_b}" stays text and is never substituted.
    values = {"instruction": instruction, "answer_a": answer_a, "answer_b": answer_b}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], JUDGE_TEMPLATE)


def judge_request(instruction: str, answer_a: str, answer_b: str) -> Request:
    return Request(messages=({"role": "user", "content": judge_prompt(instruction, answer_a, answer_b)},))


def parse_verdict(text: str | None) -> str | None:
    """'A', 'B' or 'tie' from the last `Winner:` line; None when there is no such line or it says something else."""
    value = VERDICT.read(text)
    if value is None:
        return None
    word = value["value"].lower()
    return "tie" if word == "tie" else word.upper()


def preferred(verdict: str | None, model_position: str) -> str | None:
    """Which side a verdict prefers ('model', 'baseline' or 'tie') given where the model's answer was shown."""
    if verdict is None:
        return None
    if verdict == "tie":
        return TIE
    return MODEL if verdict == model_position else BASELINE


def combine(model_first: str | None, model_second: str | None) -> str:
    """The pair's outcome from the verdict with the model's answer as A and the one with it as B."""
    first, second = preferred(model_first, A), preferred(model_second, B)
    if first is None or second is None or first != second:
        return TIE
    return {MODEL: WIN, BASELINE: LOSS, TIE: TIE}[first]


@dataclass(frozen=True)
class Judgment:
    instruction: str
    model_output: str
    baseline_output: str
    model_first_text: str  # the judge's reply with the model's answer shown as A
    model_second_text: str  # ... shown as B
    model_first_verdict: str | None
    model_second_verdict: str | None
    outcome: str  # win | tie | loss, for the model
    error: str | None = None  # the engine's error for either request (its verdict is then unparsed)
    constrained: int = 0  # verdicts read from the judge's next-token distribution (0, 1 or 2)

    @property
    def unparsed(self) -> bool:
        return self.model_first_verdict is None or self.model_second_verdict is None

    def to_json(self) -> dict:
        return {**asdict(self), "unparsed": self.unparsed}


def reply_text(generation: Generation) -> str:
    return generation.texts[0] if generation.texts and not generation.error else ""


def judge_pairs(engine: Engine, instructions: Sequence[str], model_outputs: Sequence[str],
                baseline_outputs: Sequence[str], sampling: Sampling, constrained_fallback: bool = True) -> list[Judgment]:
    """Judge every pair in both orders, in one batch of 2n requests."""
    if not len(instructions) == len(model_outputs) == len(baseline_outputs):
        raise ValueError("judge_pairs needs one model output and one baseline output per instruction")
    triples = list(zip(instructions, model_outputs, baseline_outputs))
    requests = [judge_request(text, mine, theirs) for text, mine, theirs in triples] + \
               [judge_request(text, theirs, mine) for text, mine, theirs in triples]
    generations = engine.generate(requests, sampling)
    replies = [reply_text(generation) for generation in generations]
    verdicts: list[str | None] = [parse_verdict(reply) for reply in replies]
    # Replies without a readable verdict (and without an engine error) get the judge's most likely one, in one call.
    pending = [i for i, (verdict, generation) in enumerate(zip(verdicts, generations))
               if verdict is None and generation.error is None] if constrained_fallback else []
    completions = complete_labelled(engine, [requests[i] for i in pending], [replies[i] for i in pending], VERDICT)
    constrained = set()
    for i, completion in zip(pending, completions):
        verdicts[i] = completion.value
        if completion.value is not None:
            constrained.add(i)
    judgments = []
    for index, (text, mine, theirs) in enumerate(triples):
        slots = (index, index + len(triples))  # the model's answer shown as A, then as B
        error = "; ".join(generations[i].error for i in slots if generations[i].error) or None
        first, second = (verdicts[i] for i in slots)
        judgments.append(Judgment(text, mine, theirs, replies[slots[0]], replies[slots[1]], first, second,
                                  combine(first, second), error, sum(i in constrained for i in slots)))
    return judgments
