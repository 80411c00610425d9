"""Reading a rating out of a model: the generate-mode parser and the logprob-mode score arithmetic.

Pure Python (no torch, no Spark): `humpback.parse_rating` is imported from here by `import humpback`.

Parse rule (DESIGN.md): the score comes from the LAST line of the generated text that contains `Score:`, any
case (humpback.inference.labelled reads it, and completes a missing score for curate). Accepted on that line, after the colon: an integer 1..5, optionally written `N/5`, optionally wrapped in
markdown emphasis (`**Score:** 4`, `**Score: 4**`, `Score: **4**`, `**Score**: 4`) and optionally followed by one
period. Anything else after the colon - a decimal (4.5), a number out of range (0, 6, 10), a word ("five"),
another scale (4/10), trailing words ("4 - good") or nothing at all - makes the line `invalid`. Strict on purpose:
a loose reading (first integer on the line) is how other reproductions ended up storing 10, 91 and 10502 as
scores. No such line at all is `missing`.

Only the model's generated continuation is ever passed here (the engines return it without the prompt), so a
segment that contains "Score: 5" cannot score itself.

Logprob mode: the prompt ends with the assistant's reply prefilled up to `Score:` and the scorer reads the next
token's distribution over "1".."5". How a tokenizer spells " 4" matters: SmolLM2 (like Llama and Qwen) splits it
into a space token and a digit token, GPT-2-style tokenizers have one " 4" token. `candidate_spellings` finds,
for a tokenizer, the one-token spellings of each candidate right after the prefix ("4", and " 4" where it is one
token) and the two-token spellings that go through a lone space token (the "bridge"); `candidate_mass` adds them
up by the chain rule: P(4) = P("4") + P(" 4") + P(" ") * P("4" | " "). Scoring both positions costs one forward
pass: the bridge token is appended to the prompt and the logits of its last two positions are read.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from humpback.inference.labelled import LabelledValue
from humpback.prompts import SCORE_PREFIX, SCORE_TOKENS

OK, MISSING, INVALID = "ok", "missing", "invalid"
PARSE_STATUSES = (OK, MISSING, INVALID)
MIN_SCORE, MAX_SCORE = 1, 5

# "Score:" (any case, `**Score**:` too), then emphasis, an integer, an optional "/5", emphasis, one optional period.
# A completed score is one of SCORE_TOKENS ("1".."5").
SCORE = LabelledValue(SCORE_PREFIX.removesuffix(":"),
                      re.compile(r"^[\s*_]*(?P<n>[0-9]+)[*_]*(?:\s*/\s*5)?[\s*_]*\.?[\s*_]*$"), SCORE_TOKENS)


def parse_rating(text: str | None) -> tuple[float | None, str]:
    """(score, parse_status) from a generated rating, by the rule in the module docstring."""
    rest = SCORE.after_label(text)
    if rest is None:
        return None, MISSING
    value = SCORE.value.match(rest)
    if value is None:
        return None, INVALID
    score = int(value["n"])
    if not MIN_SCORE <= score <= MAX_SCORE:
        return None, INVALID
    return float(score), OK


def aggregate_samples(parsed: Sequence[tuple[float | None, str]]) -> tuple[float | None, str]:
    """Mean score over the samples that parsed, for n-sample rating; 'ok' if any did.

    With no parsed sample the status is 'invalid' if any sample had a Score line, else 'missing'.
    """
    scores = [score for score, status in parsed if status == OK and score is not None]
    if scores:
        return sum(scores) / len(scores), OK
    if any(status == INVALID for _, status in parsed):
        return None, INVALID
    return None, MISSING


def expected_score(probs: Mapping[str, float]) -> float:
    """Sum of k * p_k over the candidates "1".."5", after renormalizing them to sum to 1."""
    weights = {int(key): float(value) for key, value in probs.items() if key.strip().isdigit()}
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"no probability on any score in {dict(probs)!r}")
    return sum(score * weight for score, weight in weights.items()) / total


@dataclass(frozen=True)
class CandidateSpellings:
    """How each candidate can appear as the next token(s) after a prompt.

    `direct[c]`: tokens that spell c (or c with a leading space) alone, right after the prompt.
    `bridge`: a lone-space token; `after_bridge[c]`: tokens that spell c right after that space.
    Keys are token ids for local tokenizers and token strings for an HTTP server's logprobs.
    """

    direct: dict[str, frozenset] = field(default_factory=dict)
    bridge: Hashable | None = None
    after_bridge: dict[str, frozenset] = field(default_factory=dict)

    def tokens(self) -> set:
        """Every token whose probability the mass needs."""
        needed = set().union(*self.direct.values(), *self.after_bridge.values())
        return needed | ({self.bridge} if self.bridge is not None else set())


def candidate_spellings(encode: Callable[[str], list[int]], candidates: Sequence[str],
                        context: str = "") -> CandidateSpellings:
    """Token-id spellings of each candidate after `context` (the text the prompt ends with, e.g. "Score:").

    Each candidate is tokenized in context, with and without a leading space; a one-token result is a direct
    spelling, a two-token result whose first token is the lone-space token is a bridged one. Other spellings
    (three tokens and more) are not counted. Raises ValueError when a candidate has no usable spelling.
    """
    bridge = _tail_tokens(encode, context, " ")
    bridge_id = bridge[0] if bridge is not None and len(bridge) == 1 else None
    direct: dict[str, set] = {candidate: set() for candidate in candidates}
    after_bridge: dict[str, set] = {candidate: set() for candidate in candidates}
    for candidate in candidates:
        for spelling in (candidate, " " + candidate):
            tokens = _tail_tokens(encode, context, spelling)
            if tokens is not None and len(tokens) == 1:
                direct[candidate].add(tokens[0])
            elif tokens is not None and len(tokens) == 2 and bridge_id is not None and tokens[0] == bridge_id:
                after_bridge[candidate].add(tokens[1])
    unusable = [candidate for candidate in candidates if not direct[candidate] and not after_bridge[candidate]]
    if unusable:
        raise ValueError(f"candidates {unusable!r} are not one token after {context!r} for this tokenizer")
    has_bridged = any(after_bridge.values())
    return CandidateSpellings(
        direct={candidate: frozenset(ids) for candidate, ids in direct.items()},
        bridge=bridge_id if has_bridged else None,
        after_bridge={candidate: frozenset(ids) for candidate, ids in after_bridge.items()} if has_bridged else {},
    )


def _tail_tokens(encode: Callable[[str], list[int]], context: str, text: str) -> list[int] | None:
    """Tokens that `text` adds after `context`, or None where it merges with the context's last token."""
    head = encode(context) if context else []
    whole = encode(context + text)
    if whole[:len(head)] != head:
        return None
    return whole[len(head):]


def string_spellings(candidates: Sequence[str]) -> CandidateSpellings:
    """Spellings keyed by token text, for servers that report logprobs as strings (OpenAI API)."""
    return CandidateSpellings(
        direct={candidate: frozenset({candidate, " " + candidate}) for candidate in candidates},
        bridge=" ",
        after_bridge={candidate: frozenset({candidate}) for candidate in candidates},
    )


def candidate_mass(spellings: CandidateSpellings, next_probs: Mapping, after_bridge_probs: Mapping | None
                   ) -> dict[str, float]:
    """Probability of each candidate as the model's next text, by the chain rule over its spellings.

    `next_probs` is the next-token distribution after the prompt, `after_bridge_probs` the one after the prompt
    plus the bridge token (None when there is no bridge). Tokens missing from a mapping count as 0 (a server's
    top-k list is a lower bound).
    """
    bridge_prob = next_probs.get(spellings.bridge, 0.0) if spellings.bridge is not None else 0.0
    mass = {}
    for candidate, tokens in spellings.direct.items():
        direct = sum(next_probs.get(token, 0.0) for token in tokens)
        bridged = 0.0
        if after_bridge_probs is not None:
            bridged = sum(after_bridge_probs.get(token, 0.0) for token in spellings.after_bridge.get(candidate, ()))
        mass[candidate] = float(direct + bridge_prob * bridged)
    return mass


def renormalize(mass: Mapping[str, float]) -> tuple[dict[str, float], float]:
    """(probabilities over the candidates summing to 1, the raw mass they had); ValueError when it is 0."""
    total = float(sum(mass.values()))
    if total <= 0:
        raise ValueError("the model put no probability on any candidate")
    return {candidate: value / total for candidate, value in mass.items()}, total
