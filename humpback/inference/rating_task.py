"""Rating an (instruction, output) pair on the paper's rubric, as an InferenceTask: curate's code path, shared.

`curate` rates candidate pairs (a segment's text as the output) into `ratings`; `scorer-check` rates labelled seed
pairs into `scorer_checks` with the same requests, the same sampling and the same parsing, so what it measures is
the scorer as curation uses it. The input rows carry the pair's `instruction`, its output under `output_field`, and
the key columns named by `keys`, which the output rows keep.

generate (the paper's way): brief reasoning, then `Score: N`, parsed by humpback.parse_rating. The score line is
guided, as vLLM's guided decoding or an OpenAI-style structured output would do it: when a sample has no valid
score line, its own reasoning is kept, "Score:" is appended and the score is the most likely of 1..5 in the model's
next-token distribution (score_source 'constrained'). All such samples of a batch go to the engine in one call, and
`raw_parse_status` keeps what the free text alone gave, so unguided parse failures stay measurable.
logprob: one forward pass with the reply prefilled up to "Score:"; the probabilities of 1..5 are stored in
score_probs and their expected value is the score (which gives the paper's 4.5 threshold a meaning).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from humpback.ids import NUL, pair_key
from humpback.inference.base import Sampling

# What curate rates: a candidate instruction for a segment, keyed as in `ratings`.
CANDIDATE_KEYS = ("segment_id", "instruction_hash")


def rating_request(instruction: str, output: str, assistant_prefix: str = "", seed: int | None = None):
    from humpback.inference.base import Request
    from humpback.prompts import SEED_TAG, rating_prompt

    # M0 learned the assistant's voice under the seed tag, so the rubric is asked in that voice.
    messages = ({"role": "system", "content": SEED_TAG}, {"role": "user", "content": rating_prompt(instruction, output)})
    return Request(messages=messages, assistant_prefix=assistant_prefix, seed=seed)


def row_key(row: dict, keys: Sequence[str]) -> str:
    """The pair's key, from which its sampling seed is derived: its key columns joined by NUL (for curate's
    (segment_id, instruction_hash) exactly humpback.ids.pair_key)."""
    if tuple(keys) == CANDIDATE_KEYS:
        return pair_key(row["segment_id"], row["instruction_hash"])
    return NUL.join(str(row[key]) for key in keys)


def generate_task(sampling: dict[str, Any], lineage: dict[str, Any], keys: Sequence[str] = CANDIDATE_KEYS,
                  output_field: str = "text"):
    """Pair -> rating from sampled rubric answers. Each pair samples with its own seed (a hash of the run's seed and
    the pair's key), recorded in `seed`; samples without a readable score line get the constrained score."""
    import json

    from humpback.inference.base import Request
    from humpback.inference.labelled import complete_labelled
    from humpback.inference.rating import OK, SCORE, aggregate_samples, parse_rating
    from humpback.inference.seeding import row_seed
    from humpback.inference.task import InferenceTask

    keys = tuple(keys)

    def seed_of(row: dict) -> int:
        return row_seed(sampling["seed"], row_key(row, keys))

    def format_input(row: dict) -> Request:
        return rating_request(row["instruction"], row[output_field], seed=seed_of(row))

    def complete(engine, requests: list[Request], generations: list) -> list:
        """(generation, raw parse statuses, {sample: (completed text, error)}): only the generated continuation
        is parsed, never the prompt; the samples without a valid score line are completed in one batched call."""
        raw = [[parse_rating(text)[1] for text in generation.texts] for generation in generations]
        pending = [(i, j) for i, statuses in enumerate(raw) for j, status in enumerate(statuses) if status != OK]
        completions = complete_labelled(engine, [requests[i] for i, _ in pending],
                                        [generations[i].texts[j] for i, j in pending], SCORE)
        guided = [{} for _ in generations]
        for (i, j), completion in zip(pending, completions):
            guided[i][j] = (completion.text, completion.error)
        return list(zip(generations, raw, guided))

    def format_output(row: dict, answer) -> dict:
        generation, raw, guided = answer
        seed = seed_of(row)
        base = {**{key: row[key] for key in keys}, **lineage,
                "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                "n_samples": len(generation.texts), "seed": seed,
                "sampling": json.dumps({**sampling, "run_seed": sampling["seed"], "seed": seed}, sort_keys=True)}
        if generation.error:
            return {**base, "status": "error", "error": generation.error, "parse_status": "missing",
                    "raw_parse_status": "missing"}
        texts = [guided[j][0] if j in guided else text for j, text in enumerate(generation.texts)]
        errors = [error for _, error in guided.values() if error]
        score, status = aggregate_samples([parse_rating(text) for text in texts])
        return {**base, "score": score, "parse_status": status, "raw_parse_status": OK if OK in raw else raw[-1],
                "score_source": "parsed" if all(s == OK for s in raw) else "constrained",
                "rationale": "\n---\n".join(texts), "status": "ok" if score is not None else "error",
                "error": None if score is not None else (errors[0] if errors else "no score could be read")}

    return InferenceTask(format_input, format_output, sampling=Sampling(**sampling), complete=complete)


def logprob_task(lineage: dict[str, Any], keys: Sequence[str] = CANDIDATE_KEYS, output_field: str = "text"):
    """Pair -> rating as the expected score of the rubric's 1..5 after 'Score:', from one forward pass."""
    from humpback.inference.rating import expected_score
    from humpback.inference.task import InferenceTask
    from humpback.prompts import SCORE_PREFIX, SCORE_TOKENS

    keys = tuple(keys)

    def format_input(row: dict):
        return rating_request(row["instruction"], row[output_field], SCORE_PREFIX)

    def format_output(row: dict, scores) -> dict:
        ok = scores.error is None
        return {**{key: row[key] for key in keys}, **lineage,
                "score": expected_score(scores.probs) if ok else None,
                "score_probs": scores.probs if ok else None, "parse_status": "ok" if ok else "missing",
                "raw_parse_status": "ok" if ok else "missing", "score_source": "logprob", "n_samples": 1,
                "status": "ok" if ok else "error", "error": scores.error,
                "prompt_tokens": scores.prompt_tokens, "completion_tokens": 0, "seed": None, "sampling": None}

    return InferenceTask(format_input, format_output, candidates=SCORE_TOKENS)


def rating_task(mode: str, lineage: dict[str, Any], sampling: dict[str, Any] | None = None,
                keys: Sequence[str] = CANDIDATE_KEYS, output_field: str = "text"):
    """The task for a rating mode: generate (with `sampling`) or logprob."""
    if mode == "generate":
        if sampling is None:
            raise ValueError("generate rating needs sampling settings")
        return generate_task(sampling, lineage, keys, output_field)
    if mode == "logprob":
        return logprob_task(lineage, keys, output_field)
    raise ValueError(f"unknown rating mode {mode!r}; expected generate or logprob")


def generate_sampling(settings: dict[str, Any]) -> dict[str, Any]:
    """Generate-mode sampling from config [curate] (temperature, top_p, max_new_tokens, seed, samples)."""
    return Sampling.from_settings(settings, n=int(settings["samples"])).to_dict()
