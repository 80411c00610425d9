"""Per-row sampling seeds: every row, and every sample of a row, draws from its own seed.

One seed for a whole call makes rows with similar next-token distributions draw the same tokens, which collapses
the diversity of the instructions written. A row's seed is a hash of the run's seed and the row's key (a segment
id, a pair's key), so a rerun gives the same text whatever the batching or the order of rows, and two rows with
the same prompt still sample differently. Sample j > 0 of a row hashes the row's seed with j.
"""
from __future__ import annotations

from collections.abc import Sequence

from humpback.ids import joined_int

# Seeds stay below 2**32: numpy, torch, vLLM and OpenAI-compatible servers all accept that range.
SEED_RANGE = 2 ** 32


def _hash_seed(*parts: object) -> int:
    return joined_int(*parts) % SEED_RANGE


def row_seed(run_seed: int, key: str) -> int:
    """The seed of the row with this key in a run seeded with `run_seed`."""
    return _hash_seed("row", int(run_seed), key)


def sample_seeds(seed: int, n: int) -> list[int]:
    """Seeds of a row's n samples: the row's own seed first, then one hashed from it per further sample."""
    return [int(seed)] + [_hash_seed("sample", int(seed), j) for j in range(1, max(1, n))]


def request_seeds(requests: Sequence, run_seed: int, n: int) -> list[list[int]]:
    """The n sample seeds of each request: from its own seed, else from the run's seed and its place in the call."""
    return [sample_seeds(request.seed if request.seed is not None else row_seed(run_seed, f"#{index}"), n)
            for index, request in enumerate(requests)]
