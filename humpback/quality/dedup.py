"""The pure pieces of deduplication: a normalized text hash (exact duplicates) and MinHash + LSH band keys
(near duplicates). Spark groups rows by these values; nothing here needs more than one text at a time.

Every hash is a keyed BLAKE2b or SHA-256 digest, never Python's hash(), so values agree across processes,
machines and runs.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

# The exact-duplicate key, the normalization and the word rules live in humpback.ids and humpback.text; they are
# named here too, as the deduplication's pieces.
from humpback.ids import text_hash  # noqa: F401
from humpback.text import folded_words, jaccard, normalize_for_hash, shingles  # noqa: F401
from humpback.text import shingles as word_ngrams  # noqa: F401

# FineWeb's MinHash setting (datatrove): word 5-grams, 14 bands x 8 rows = 112 hashes, threshold ~0.72-0.75.
DEFAULT_DEDUP = {"num_perm": 112, "bands": 14, "rows": 8, "ngram": 5, "seed": 1}


def minhash_signature(text: str, num_perm: int = 112, ngram: int = 5, seed: int = 1) -> list[int]:
    """MinHash of the normalized text's word n-gram shingles: num_perm values in [0, 2**32).

    Each shingle gets a 64-bit BLAKE2b hash; hash function i is splitmix64(shingle hash XOR key_i), with keys
    derived from seed, and the signature keeps the low 32 bits of each minimum (so values fit a Spark long).
    A text without words gets all values 2**32 - 1.
    """
    grams = shingles(folded_words(text), ngram)
    if not grams:
        return [0xFFFFFFFF] * num_perm
    hashes = np.fromiter((_hash64(" ".join(gram)) for gram in grams), dtype=np.uint64, count=len(grams))
    mixed = _splitmix64(hashes[:, None] ^ _permutation_keys(num_perm, seed)[None, :])
    return (mixed.min(axis=0) & np.uint64(0xFFFFFFFF)).tolist()


def lsh_band_keys(signature: list[int], bands: int, rows: int) -> list[str]:
    """One key per band, '<band>:<digest of its rows>'; texts sharing any key are near-duplicate candidates."""
    if bands * rows > len(signature):
        raise ValueError(f"{bands} bands x {rows} rows need {bands * rows} hashes, signature has {len(signature)}")
    keys = []
    for band in range(bands):
        rows_text = ",".join(map(str, signature[band * rows:(band + 1) * rows]))
        keys.append(f"{band}:{hashlib.blake2b(rows_text.encode(), digest_size=8).hexdigest()}")
    return keys


def estimated_jaccard(signature_a: list[int], signature_b: list[int]) -> float:
    """The share of equal MinHash values: an estimate of the shingle sets' Jaccard similarity."""
    if len(signature_a) != len(signature_b) or not signature_a:
        raise ValueError("signatures must be non-empty and of equal length")
    return sum(x == y for x, y in zip(signature_a, signature_b)) / len(signature_a)


def _hash64(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "little")


@lru_cache(maxsize=8)
def _permutation_keys(num_perm: int, seed: int) -> np.ndarray:
    digests = (hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest() for i in range(num_perm))
    return np.fromiter((int.from_bytes(d, "little") for d in digests), dtype=np.uint64, count=num_perm)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, elementwise: a fast, well-mixed bijection on 64-bit integers."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
