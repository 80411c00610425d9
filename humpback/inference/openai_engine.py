"""The OpenAI-compatible engine: a served model (`vllm serve`, `transformers serve`, ...) over HTTP.

Every request goes to `{base_url}/chat/completions` (base_url as OpenAI clients take it, e.g.
http://127.0.0.1:8000/v1; a bare host gets /v1). Rows run concurrently on a thread pool (`concurrency`, default 8).
A 429, a 5xx or a connection error is retried with exponential backoff and jitter (`max_retries`, default 4;
a Retry-After header is honoured), any other 4xx is final; a row that still fails comes back with its error and
the other rows go on.

The assistant prefix (e.g. "Score:") is sent as a final assistant message with `continue_final_message: true`
and `add_generation_prompt: false` (vLLM's extension), so the reply continues it. A server that rejects those
fields (transformers serve answers 422) switches the engine to appending the prefix to the last user message
for the rest of its life (`prefix_mode`: auto | continue | append). Appended, the prefix is only a hint: the
reply does not continue it, and logprob rating refuses to run that way.

next_token_probs asks for one token with `logprobs: true, top_logprobs: 20` and reads the first position's
top tokens as text; "4" and " 4" both count for "4". Where a lone space is among them (tokenizers that split
" 4" into " " and "4"), a second request continues the prefix plus a space and the two are combined by the
chain rule (rating.candidate_mass). Tokens outside the top list count as 0. A server that returns no logprobs
(transformers serve ignores the field) gives each row an error saying so. The request also holds the one-token
reply to the candidates (vLLM's `structured_outputs: {"choice": [...]}`), and a reply outside them is a row error:
the server ignored the constraint (servers ignore fields they do not know, such as the removed `guided_choice`,
and still answer 200), so its scores would come from a reply the rubric does not allow. `choice_constraint =
false` rates without the constraint (servers that do not offer structured outputs). Checked against vLLM 0.32's
server: with the constraint it reports the constrained distribution (the candidates' mass is then ~1, and none is
ever missing from the top list), and the renormalized scores equal the unconstrained reading.

Options: base_url, api_key (else $OPENAI_API_KEY), served_model (else the engine's model_ref), concurrency,
max_retries, timeout_s (per request, 120), backoff_s (first retry delay, 0.5), top_logprobs (20), prefix_mode,
choice_constraint (true).
"""
from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx

from humpback.inference.base import (
    LENGTH,
    STOP,
    EngineSpec,
    Generation,
    Request,
    Sampling,
    TokenScores,
)
from humpback.inference.rating import candidate_mass, renormalize, string_spellings
from humpback.inference.seeding import request_seeds

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
MAX_BACKOFF_S = 30.0
CONTINUE_FIELDS = ("continue_final_message", "add_generation_prompt")
PREFIX_MODES = ("auto", "continue", "append")


class RequestFailed(Exception):
    """A request that failed for good: a final HTTP status, or retries used up."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base + "/chat/completions"


def is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def backoff_delay(attempt: int, base_s: float, retry_after: str | None = None) -> float:
    """Seconds before retry number `attempt` (0-based): the server's Retry-After, else exponential with jitter."""
    if retry_after is not None:
        try:
            return min(MAX_BACKOFF_S, max(0.0, float(retry_after)))
        except ValueError:
            pass  # an HTTP date: fall back to our own schedule
    return min(MAX_BACKOFF_S, base_s * (2 ** attempt) * random.uniform(0.5, 1.5))


def top_logprobs_of(response: dict[str, Any]) -> dict[str, float]:
    """{token text: probability} at the first generated position; RequestFailed if the server sent none."""
    try:
        entries = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        entries = None
    if not entries:
        raise RequestFailed("the server returned no logprobs: it does not support logprobs/top_logprobs "
                            "on /v1/chat/completions")
    probs: dict[str, float] = {}
    for entry in entries:  # two token ids can decode to the same text
        probs[entry["token"]] = probs.get(entry["token"], 0.0) + math.exp(entry["logprob"])
    return probs


def reply_text(response: dict[str, Any]) -> str:
    try:
        return response["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def allowed_replies(candidates: Sequence[str]) -> list[str]:
    """Each candidate with and without a leading space: held to the bare digits, a model that spells " 4" as a
    space then "4" would lose that path, and the scores would differ from the other engines' chain-rule reading."""
    return [spelling for candidate in candidates for spelling in (candidate, " " + candidate)]


def check_choice(response: dict[str, Any], candidates: Sequence[str]) -> None:
    """RequestFailed unless the one-token reply starts an allowed reply (" " starts " 4"): the proof that the
    server held it to the candidates."""
    reply = reply_text(response)
    if not reply or not any(allowed.startswith(reply) for allowed in allowed_replies(candidates)):
        raise RequestFailed(f"the reply {reply!r} is not one of {', '.join(candidates)}: the server ignored the "
                            "choice constraint (structured_outputs; vLLM >= 0.10 honours it). Set [inference.openai] "
                            "choice_constraint = false to rate without it")


def with_prefix_continued(messages: list[dict[str, str]], prefix: str) -> tuple[list[dict[str, str]], dict]:
    """Messages ending in the assistant's prefix, and the request fields that make the server continue it."""
    return messages + [{"role": "assistant", "content": prefix}], {"continue_final_message": True,
                                                                   "add_generation_prompt": False}


def with_prefix_appended(messages: list[dict[str, str]], prefix: str) -> list[dict[str, str]]:
    """The prefix on a new line at the end of the last user message (servers that cannot continue a reply)."""
    last_user = max((i for i, message in enumerate(messages) if message.get("role") == "user"), default=None)
    if last_user is None:
        return messages + [{"role": "user", "content": prefix}]
    edited = dict(messages[last_user], content=f"{messages[last_user]['content']}\n\n{prefix}")
    return messages[:last_user] + [edited] + messages[last_user + 1:]


class OpenAIEngine:
    kind = "openai"

    def __init__(self, model_ref: str, base_url: str = DEFAULT_BASE_URL, served_model: str | None = None,
                 api_key: str | None = None, concurrency: int = 8, max_retries: int = 4, timeout_s: float = 120.0,
                 backoff_s: float = 0.5, top_logprobs: int = 20, prefix_mode: str = "auto",
                 choice_constraint: bool = True):
        if prefix_mode not in PREFIX_MODES:
            raise ValueError(f"prefix_mode must be one of {PREFIX_MODES}, got {prefix_mode!r}")
        self.model_ref = model_ref
        self.served_model = served_model or model_ref
        self.url = chat_url(base_url)
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = float(backoff_s)
        self.top_logprobs = int(top_logprobs)
        self.prefix_mode = prefix_mode
        self.choice_constraint = bool(choice_constraint)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(float(timeout_s)),
                                    limits=httpx.Limits(max_connections=self.concurrency))
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="humpback-openai")

    @classmethod
    def from_spec(cls, spec: EngineSpec) -> OpenAIEngine:
        return cls(spec.model_ref,
                   base_url=spec.option("base_url", DEFAULT_BASE_URL),
                   served_model=spec.option("served_model"),
                   api_key=spec.option("api_key") or os.environ.get("OPENAI_API_KEY"),
                   concurrency=int(spec.option("concurrency", 8)),
                   max_retries=int(spec.option("max_retries", 4)),
                   timeout_s=float(spec.option("timeout_s", 120.0)),
                   backoff_s=float(spec.option("backoff_s", 0.5)),
                   top_logprobs=int(spec.option("top_logprobs", 20)),
                   prefix_mode=spec.option("prefix_mode", "auto"),
                   choice_constraint=spec.option("choice_constraint", True))

    # ----- the engine interface -----

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Generation]:
        sampled = sampling.temperature > 0
        seeds = request_seeds(requests, sampling.seed, sampling.n if sampled else 1)
        return self._map_rows(list(zip(requests, seeds)),
                              lambda row: self._generate_one(row[0], sampling, row[1] if sampled else []),
                              lambda error: Generation(error=str(error)))

    def next_token_probs(self, requests: Sequence[Request], candidates: Sequence[str]) -> list[TokenScores]:
        return self._map_rows(requests, lambda request: self._score_one(request, candidates),
                              lambda error: TokenScores(error=str(error)))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    # ----- rows -----

    def _map_rows(self, rows: Sequence, answer: Callable, failed: Callable) -> list:
        def guarded(row):
            try:
                return answer(row)
            except Exception as error:  # noqa: BLE001 - one row's failure is that row's error, never the job's
                return failed(error if isinstance(error, RequestFailed) else f"{type(error).__name__}: {error}")

        return list(self._pool.map(guarded, rows))

    def _generate_one(self, request: Request, sampling: Sampling, seeds: list[int]) -> Generation:
        """One chat completion per sample, each with its own seed (one seed with `n` would tie the samples to
        the server's batching); greedy: one completion, repeated."""
        texts: list[str] = []
        reasons: list[str] = []
        prompt_tokens = completion_tokens = 0
        for seed in seeds or [None]:
            body = {"max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature,
                    "top_p": sampling.top_p}
            if seed is not None:
                body["seed"] = seed
            response = self._chat(request, body)
            choices = response.get("choices") or []
            if not choices:
                raise RequestFailed("the server returned no choices")
            texts.append(choices[0]["message"].get("content") or "")
            reasons.append(LENGTH if choices[0].get("finish_reason") == LENGTH else STOP)
            usage = response.get("usage") or {}
            prompt_tokens = usage.get("prompt_tokens", prompt_tokens)
            completion_tokens += usage.get("completion_tokens", 0)
        repeat = sampling.n // len(texts)
        return Generation(texts=texts * repeat, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          finish_reasons=reasons * repeat, seeds=seeds)

    def _score_one(self, request: Request, candidates: Sequence[str]) -> TokenScores:
        body = {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": self.top_logprobs}
        if self.choice_constraint:
            body["structured_outputs"] = {"choice": allowed_replies(candidates)}
        self._require_continuation(request)
        try:
            response = self._chat(request, body)
        except RequestFailed as error:
            if self.choice_constraint and error.status in (400, 422) and "structured_outputs" in error.body:
                raise RequestFailed("the server does not take the choice constraint (structured_outputs) that "
                                    "logprob rating sends; set [inference.openai] choice_constraint = false to rate "
                                    "without it", status=error.status, body=error.body) from None
            raise
        self._require_continuation(request)  # the request may just have found out the server cannot
        first = top_logprobs_of(response)
        spellings = string_spellings(candidates)
        after_space = None
        if first.get(spellings.bridge, 0.0) > 0:
            spaced = Request(messages=request.messages, assistant_prefix=request.assistant_prefix + " ")
            spaced_response = self._chat(spaced, body)
            after_space = top_logprobs_of(spaced_response)
            if self.choice_constraint:
                check_choice(spaced_response, candidates)
        if self.choice_constraint:
            check_choice(response, candidates)
        probs, mass = renormalize(candidate_mass(spellings, first, after_space))
        usage = response.get("usage") or {}
        return TokenScores(probs=probs, prompt_tokens=usage.get("prompt_tokens", 0), candidate_mass=mass)

    def _require_continuation(self, request: Request) -> None:
        if request.assistant_prefix and self.prefix_mode == "append":
            raise RequestFailed("the server cannot continue an assistant prefix (continue_final_message), "
                                "which logprob rating needs")

    # ----- HTTP -----

    def _chat(self, request: Request, fields: dict[str, Any]) -> dict[str, Any]:
        """POST one chat completion, the assistant prefix sent as the server allows."""
        messages = [dict(message) for message in request.messages]
        prefix = request.assistant_prefix
        if prefix and self.prefix_mode != "append":
            continued, extra = with_prefix_continued(messages, prefix)
            try:
                return self._post({"model": self.served_model, "messages": continued, **fields, **extra})
            except RequestFailed as error:
                if self.prefix_mode == "continue" or not _rejects_continue(error):
                    raise
                self.prefix_mode = "append"
        if prefix:
            messages = with_prefix_appended(messages, prefix)
        return self._post({"model": self.served_model, "messages": messages, **fields})

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer to `body`, retrying what a retry can fix; RequestFailed otherwise."""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TransportError as error:
                failure = RequestFailed(f"{type(error).__name__}: {error or 'connection failed'} ({self.url})")
            else:
                if response.status_code < 400:
                    return response.json()
                failure = RequestFailed(f"HTTP {response.status_code} from {self.url}: {response.text[:300]}",
                                        status=response.status_code, body=response.text)
                if not is_retryable(response.status_code):
                    raise failure
                retry_after = response.headers.get("retry-after")
            if attempt < self.max_retries:
                time.sleep(backoff_delay(attempt, self.backoff_s, retry_after))
        raise RequestFailed(f"{failure} (gave up after {self.max_retries + 1} attempts)", status=failure.status)


def _rejects_continue(error: RequestFailed) -> bool:
    return error.status in (400, 422) and any(field in error.body for field in CONTINUE_FIELDS)
