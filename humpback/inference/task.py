"""An LLM task: a request per input row, and an output row per answer (distilabel's format_input / format_output).

Every inference stage is one: augment (segment -> instruction), curate (pair -> rating) and evaluate's answers
(prompt -> answer). The task is called with a batch of rows and an engine, on a Spark worker (through
`spark_adapter.run_inference`) or on the driver; it asks the engine once per batch, so the engine batches.
A task either generates (`sampling` set) or reads next-token probabilities over `candidates` (the logprob rating).
`complete` may revise the answers with a second batched call before they are formatted (curate's constrained
score for samples without a readable score line).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from humpback.inference.base import Request, Sampling


@dataclass(frozen=True)
class InferenceTask:
    format_input: Callable[[dict], Request]
    format_output: Callable[[dict, Any], dict]
    sampling: Sampling | None = None  # generate with these settings; None: next-token probabilities
    candidates: Sequence[str] = ()  # the tokens whose probabilities are read when not generating
    complete: Callable[[Any, list[Request], list], list] | None = None  # (engine, requests, answers) -> answers

    def __post_init__(self) -> None:
        if (self.sampling is None) == (not self.candidates):
            raise ValueError("an inference task either generates (sampling) or reads candidates' probabilities")

    def __call__(self, rows: list[dict], engine) -> list[dict]:
        requests = [self.format_input(row) for row in rows]
        if self.sampling is not None:
            answers = engine.generate(requests, self.sampling)
        else:
            answers = engine.next_token_probs(requests, list(self.candidates))
        if self.complete is not None:
            answers = self.complete(engine, requests, answers)
        return [self.format_output(row, answer) for row, answer in zip(rows, answers)]
