"""The transformers engine: batched, left-padded, length-sorted inference on CPU or GPU.

generate: requests are tokenized, sorted by length and cut into batches of `batch_size` (less padding per
batch), left-padded so every row's continuation starts at the same column, and answered in their original
order. Each sample of each row draws its tokens from its own `torch.Generator`, seeded with that sample's seed
(humpback.inference.seeding): a logits processor applies temperature and top-p, draws the row's token with the
row's generator and leaves only that token for transformers' greedy step. Rows never share a random stream, so
two rows with the same prompt sample differently and a rerun gives the same text; temperature 0 is greedy.
Every sample records its finish reason: `stop` when the model ended it, `length` when max_new_tokens cut it.

next_token_probs: one forward pass per batch, no decoding. The candidates are read through their spellings
(rating.candidate_spellings): with SmolLM2, " 4" is a space token then "4", so a lone-space "bridge" token is
appended to each prompt and the logits of the last two positions give P(next | prompt) and
P(next | prompt + " "); the candidates' mass is summed by the chain rule and renormalized. The long prefix every
rating prompt shares (system message and rubric) is run once: its key/value cache is kept and expanded across
each batch, and only the per-pair suffixes are computed (`prefix_cache` option, on by default).

Options (EngineSpec.options): device (default cuda when available, else cpu; bf16 on cuda), batch_size (8),
max_prompt_tokens (default: the model's max positions minus max_new_tokens), prefix_cache (true), cpu_threads
(torch's threads for the whole process; default torch's own choice - set it to cores / python workers when several
workers share a machine: oversubscribed CPU threads spin and run many times slower).
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from humpback.inference.base import (
    LENGTH,
    STOP,
    EngineSpec,
    Generation,
    Request,
    Sampling,
    TokenScores,
)
from humpback.inference.rating import (
    CandidateSpellings,
    candidate_mass,
    candidate_spellings,
    renormalize,
)
from humpback.inference.seeding import request_seeds
from humpback.models import load_model
from humpback.training.sft import render_prompt

DEFAULT_BATCH_SIZE = 8
# Below this many shared tokens, copying a cache costs about what recomputing the prefix does.
MIN_SHARED_PREFIX_TOKENS = 32
# Rows keep at least this many tokens outside the shared prefix: the last two positions are read.
MIN_SUFFIX_TOKENS = 2


def render_request(tokenizer, request: Request) -> str:
    """The prompt text: chat template with generation prompt (or the plain format), then the assistant prefix."""
    return render_prompt(tokenizer, list(request.messages)) + request.assistant_prefix


def encode_request(tokenizer, request: Request) -> list[int]:
    # a chat template writes its own special tokens; a plain prompt gets the tokenizer's usual ones (BOS)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    return tokenizer(render_request(tokenizer, request), add_special_tokens=not has_template)["input_ids"]


def encode_rows(tokenizer, requests: Sequence[Request], limit: int | None, results: list, result_type) -> list:
    """Token ids per request (None for a failed one); a request that cannot be rendered or is longer than
    `limit` gets its error, as a `result_type` (Generation or TokenScores), in `results`."""
    encoded: list[list[int] | None] = []
    for i, request in enumerate(requests):
        try:
            ids = encode_request(tokenizer, request)
        except Exception as error:  # noqa: BLE001 - e.g. a chat template that rejects the messages
            results[i] = result_type(error=error_text(error))
            encoded.append(None)
            continue
        if limit is not None and len(ids) > limit:
            results[i] = result_type(prompt_tokens=len(ids), error=too_long_error(len(ids), limit))
            encoded.append(None)
            continue
        encoded.append(ids)
    return encoded


@functools.lru_cache(maxsize=64)
def tokenizer_spellings(tokenizer, candidates: tuple[str, ...], context: str) -> CandidateSpellings:
    """How this tokenizer spells each candidate right after `context` (the request's assistant prefix)."""
    return candidate_spellings(lambda text: tokenizer(text, add_special_tokens=False)["input_ids"], candidates, context)


def too_long_error(n_tokens: int, limit: int) -> str:
    return f"prompt too long: {n_tokens} tokens > {limit}"


def length_sorted_batches(indices: Sequence[int], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory shows up at once)."""
    ordered = sorted(indices, key=lambda i: (-lengths[i], i))
    return [ordered[start:start + batch_size] for start in range(0, len(ordered), batch_size)]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), padded on the left to the longest row."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        if row:
            ids[r, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[r, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    length = min(len(row) for row in rows)
    for row in rows[1:]:
        same = 0
        while same < length and row[same] == first[same]:
            same += 1
        length = same
    return length


def with_row_fallback(rows: list, run_batch: Callable[[list], list], row_error: Callable[[Any, Exception], Any]) -> list:
    """run_batch(rows); if the batch fails, each row alone, so only the row that fails gets an error."""
    try:
        return run_batch(rows)
    except Exception as batch_error:  # noqa: BLE001 - any failure becomes a per-row error, never a dead job
        if len(rows) == 1:
            return [row_error(rows[0], batch_error)]
    return [with_row_fallback([row], run_batch, row_error)[0] for row in rows]


def error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass
class SharedPrefix:
    """The key/value cache of a token prefix that every prompt of a batch starts with."""

    ids: tuple[int, ...]
    cache: Any  # transformers DynamicCache for batch size 1

    def covers(self, row: Sequence[int]) -> bool:
        return len(row) >= len(self.ids) + MIN_SUFFIX_TOKENS and tuple(row[:len(self.ids)]) == self.ids

    def expanded(self, batch_size: int):
        """A copy of the cache repeated across the batch: the forward pass appends to it in place."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(batch_size)
        return cache


class TransformersEngine:
    kind = "transformers"

    def __init__(self, model_ref: str, tokenizer, model, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_prompt_tokens: int | None = None, prefix_cache: bool = True):
        self.model_ref = model_ref
        self.tokenizer = tokenizer
        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.max_prompt_tokens = int(max_prompt_tokens) if max_prompt_tokens else None
        self.prefix_cache = bool(prefix_cache)
        self.context_length = getattr(model.config, "max_position_embeddings", None)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = _eos_ids(tokenizer, model)
        self._shared_prefix: SharedPrefix | None = None

    @classmethod
    def from_spec(cls, spec: EngineSpec) -> TransformersEngine:
        if spec.option("cpu_threads"):
            # process-wide: several Spark python workers on one machine must share its cores, not each take all
            torch.set_num_threads(int(spec.option("cpu_threads")))
        tokenizer, model = load_model(spec.model_ref, device=spec.option("device"))
        return cls(spec.model_ref, tokenizer, model,
                   batch_size=int(spec.option("batch_size", DEFAULT_BATCH_SIZE)),
                   max_prompt_tokens=spec.option("max_prompt_tokens"),
                   prefix_cache=as_flag(spec.option("prefix_cache", True)))

    @property
    def device(self):
        return self.model.device

    def prompt_limit(self, new_tokens: int) -> int | None:
        """Most prompt tokens a request may have, leaving room for `new_tokens` (None: no known limit)."""
        if self.max_prompt_tokens:
            return self.max_prompt_tokens
        return self.context_length - new_tokens if self.context_length else None

    # ----- generate -----

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        encoded = encode_rows(self.tokenizer, requests, self.prompt_limit(sampling.max_new_tokens), results, Generation)
        sampled = sampling.temperature > 0
        per_row = sampling.n if sampled else 1  # greedy samples are all the same: decode once
        seeds = request_seeds(requests, sampling.seed, per_row) if sampled else [[] for _ in requests]
        # one item per (row, sample): each sample is its own sequence with its own generator
        items = [(i, j) for i, ids in enumerate(encoded) if ids is not None for j in range(per_row)]
        lengths = [len(encoded[i]) for i, _ in items]
        samples: dict[tuple[int, int], tuple[str, int, str] | str] = {}
        for batch in length_sorted_batches(range(len(items)), lengths, self.batch_size):
            answers = with_row_fallback(
                batch,
                lambda rows: self._generate_batch([encoded[items[k][0]] for k in rows],
                                                  [seeds[items[k][0]][items[k][1]] if sampled else None
                                                   for k in rows], sampling),
                lambda k, error: error_text(error),
            )
            for k, answer in zip(batch, answers):
                samples[items[k]] = answer
        for i, ids in enumerate(encoded):
            if ids is None:
                continue
            answers = [samples[(i, j)] for j in range(per_row)]
            failed = next((answer for answer in answers if isinstance(answer, str)), None)
            if failed is not None:
                results[i] = Generation(prompt_tokens=len(ids), error=failed)
                continue
            repeat = sampling.n // per_row
            results[i] = Generation(texts=[text for text, _, _ in answers] * repeat, prompt_tokens=len(ids),
                                    completion_tokens=sum(used for _, used, _ in answers),
                                    finish_reasons=[reason for _, _, reason in answers] * repeat,
                                    seeds=seeds[i])
        return results

    def _generate_batch(self, rows: list[list[int]], seeds: list[int | None],
                        sampling: Sampling) -> list[tuple[str, int, str]]:
        """(text, tokens generated, finish reason) for each row, sampled with its own seed (None: greedy)."""
        input_ids, attention_mask = left_pad(rows, self.pad_id, self.device)
        settings: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "pad_token_id": self.pad_id,
                                    "do_sample": False}
        if sampling.temperature > 0:
            settings["logits_processor"] = LogitsProcessorList([PerRowSampler(
                seeds, sampling.temperature, sampling.top_p, self.device)])
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **settings)
        answers = []
        for ids in output[:, input_ids.shape[1]:].tolist():
            text_ids, used, ended = self._cut_at_eos(ids)
            answers.append((self.tokenizer.decode(text_ids, skip_special_tokens=True), used,
                            STOP if ended or used < sampling.max_new_tokens else LENGTH))
        return answers

    def _cut_at_eos(self, ids: list[int]) -> tuple[list[int], int, bool]:
        """(text tokens before the first end-of-sequence, tokens generated including it, whether there was one);
        what follows it is padding."""
        for position, token in enumerate(ids):
            if token in self.eos_ids:
                return ids[:position], position + 1, True
        return ids, len(ids), False

    # ----- next_token_probs -----

    def next_token_probs(self, requests: Sequence[Request], candidates: Sequence[str]) -> list[TokenScores]:
        results: list[TokenScores | None] = [None] * len(requests)
        spellings = [tokenizer_spellings(self.tokenizer, tuple(candidates), request.assistant_prefix)
                     for request in requests]
        encoded = encode_rows(self.tokenizer, requests, self.prompt_limit(1), results, TokenScores)
        rows = {i: ids + ([spellings[i].bridge] if spellings[i].bridge is not None else [])
                for i, ids in enumerate(encoded) if ids is not None}
        prefix = self._prefix_for(list(rows.values())) if self.prefix_cache else None
        lengths = [len(rows[i]) if i in rows else 0 for i in range(len(requests))]
        for batch in length_sorted_batches(list(rows), lengths, self.batch_size):
            answers = with_row_fallback(
                batch,
                lambda idx: self._score_batch([rows[i] for i in idx], [spellings[i] for i in idx],
                                              [len(encoded[i]) for i in idx], prefix),
                lambda i, error: TokenScores(prompt_tokens=len(encoded[i]), error=error_text(error)),
            )
            for i, answer in zip(batch, answers):
                results[i] = answer
        return results

    def _prefix_for(self, rows: list[list[int]]) -> SharedPrefix | None:
        """The shared-prefix cache for these rows: the last one if it still fits, else built for their prefix."""
        if not rows:
            return None
        if self._shared_prefix is not None and all(self._shared_prefix.covers(row) for row in rows):
            return self._shared_prefix
        if len(rows) < 2:
            return None
        shared = min(common_prefix_length(rows), min(len(row) for row in rows) - MIN_SUFFIX_TOKENS)
        if shared < MIN_SHARED_PREFIX_TOKENS:
            return None
        ids = tuple(rows[0][:shared])
        with torch.inference_mode():
            output = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
        self._shared_prefix = SharedPrefix(ids=ids, cache=output.past_key_values)
        return self._shared_prefix

    def _score_batch(self, rows: list[list[int]], spellings: list[CandidateSpellings], prompt_tokens: list[int],
                     prefix: SharedPrefix | None) -> list[TokenScores]:
        last_two = self._last_two_distributions(rows, prefix)  # (batch, 1 or 2, vocab) probabilities
        scores = []
        for r, spelling in enumerate(spellings):
            needed = sorted(spelling.tokens())
            if spelling.bridge is None:  # no bridge appended: the prompt's own last position is the last one
                next_probs, bridge_probs = _probs_of(last_two[r, -1], needed), None
            else:
                next_probs, bridge_probs = _probs_of(last_two[r, -2], needed), _probs_of(last_two[r, -1], needed)
            probs, mass = renormalize(candidate_mass(spelling, next_probs, bridge_probs))
            scores.append(TokenScores(probs=probs, prompt_tokens=prompt_tokens[r], candidate_mass=mass))
        return scores

    def _last_two_distributions(self, rows: list[list[int]], prefix: SharedPrefix | None) -> torch.Tensor:
        """Softmax over the full vocabulary at each row's last two positions, in one forward pass."""
        skip = len(prefix.ids) if prefix is not None and all(prefix.covers(row) for row in rows) else 0
        input_ids, suffix_mask = left_pad([row[skip:] for row in rows], self.pad_id, self.device)
        attention_mask = torch.cat([torch.ones((len(rows), skip), dtype=torch.long, device=self.device),
                                    suffix_mask], dim=1)
        # positions count real tokens only, so a left-padded row sees the same positions as it would alone
        position_ids = skip + (suffix_mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = prefix.expanded(len(rows)) if skip else None
        with torch.inference_mode():
            output = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                past_key_values=cache, use_cache=cache is not None, logits_to_keep=2)
        return output.logits[:, -2:, :].float().softmax(dim=-1)

    def close(self) -> None:
        on_cuda = self.model is not None and self.model.device.type == "cuda"
        self.model = None
        self._shared_prefix = None
        if on_cuda:
            torch.cuda.empty_cache()


class PerRowSampler(LogitsProcessor):
    """Samples each row's next token with the row's own generator (temperature, then top-p; no top-k, as the
    paper samples), and leaves only that token's logit finite, so transformers' greedy step takes it."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, device):
        generator_device = device if torch.device(device).type == "cuda" else "cpu"
        self.generators = [torch.Generator(device=generator_device).manual_seed(int(seed)) for seed in seeds]
        self.temperature = float(temperature)
        self.top_p = float(top_p)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = top_p_filter((scores.float() / self.temperature).softmax(dim=-1), self.top_p)
        chosen = torch.empty(len(self.generators), dtype=torch.long)
        for row, generator in enumerate(self.generators):
            row_probs = probs[row].to(generator.device)
            chosen[row] = torch.multinomial(row_probs, 1, generator=generator).item()
        only = torch.full_like(scores, float("-inf"))
        only.scatter_(1, chosen.to(scores.device).unsqueeze(1), 0.0)
        return only


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Probabilities with everything outside each row's nucleus (the smallest set of most likely tokens whose
    mass reaches top_p; always at least the most likely one) set to 0."""
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the more likely tokens
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def _eos_ids(tokenizer, model) -> frozenset[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    configured = configured if isinstance(configured, (list, tuple)) else [configured]
    return frozenset(token for token in [*configured, tokenizer.eos_token_id] if token is not None)


def _probs_of(distribution: torch.Tensor, tokens: list[int]) -> dict[int, float]:
    return dict(zip(tokens, distribution[tokens].tolist()))


def as_flag(value: Any) -> bool:
    """An option's truth value; config strings such as 'false' or '0' are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)
