import subprocess
import sys
from pathlib import Path

import pytest

from humpback.quality.dedup import (estimated_jaccard, jaccard, lsh_band_keys, minhash_signature,
                                    normalize_for_hash, text_hash, word_ngrams)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = ("Instruction backtranslation starts from a small seed set of examples and a large collection of web "
        "text. A backward model writes an instruction for each segment, and a forward model rates each pair.")


def test_normalization_ignores_case_punctuation_and_spacing():
    assert normalize_for_hash("  Hello,   WORLD!\n It's  ﬁne. ") == "hello world it s fine"


def test_text_hash_matches_copies_that_differ_only_in_form():
    assert text_hash(TEXT) == text_hash(TEXT.upper().replace(".", " . "))
    assert text_hash(TEXT) != text_hash(TEXT.replace("small", "large"))
    assert len(text_hash(TEXT)) == 64


def test_word_ngrams():
    assert word_ngrams(["a", "b", "c", "d"], 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert word_ngrams(["a", "b"], 3) == {("a", "b")}
    assert word_ngrams([], 3) == set()


def test_jaccard():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == pytest.approx(0.5)
    assert jaccard({1}, {1}) == 1.0
    assert jaccard({1}, {2}) == 0.0
    assert jaccard(set(), set()) == 0.0


def test_minhash_signature_shape_and_range():
    signature = minhash_signature(TEXT, num_perm=64, ngram=5, seed=7)
    assert len(signature) == 64
    assert all(isinstance(v, int) and 0 <= v < 2**32 for v in signature)
    assert len(set(signature)) > 50


def test_minhash_depends_on_the_seed_and_not_on_the_form():
    assert minhash_signature(TEXT, 32, 5, 1) == minhash_signature(TEXT.upper(), 32, 5, 1)
    assert minhash_signature(TEXT, 32, 5, 1) != minhash_signature(TEXT, 32, 5, 2)


def test_minhash_is_the_same_in_another_process():
    code = ("from humpback.quality.dedup import minhash_signature; "
            f"print(minhash_signature({TEXT!r}, 16, 5, 3))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345"}, cwd=REPO_ROOT)
    assert other.stdout.strip() == str(minhash_signature(TEXT, 16, 5, 3))


def test_minhash_estimates_the_jaccard_similarity():
    words = [f"w{i}" for i in range(400)]
    a, b = " ".join(words[:300]), " ".join(words[100:400])  # 296 5-grams each, 196 of them shared
    true = jaccard(word_ngrams(a.split(), 5), word_ngrams(b.split(), 5))
    estimate = estimated_jaccard(minhash_signature(a, 256, 5, 1), minhash_signature(b, 256, 5, 1))
    assert true == pytest.approx(196 / 396)
    assert estimate == pytest.approx(true, abs=0.1)


def test_lsh_band_keys_group_duplicates_and_separate_different_texts():
    keys = lsh_band_keys(minhash_signature(TEXT, 112, 5, 1), bands=14, rows=8)
    copy = lsh_band_keys(minhash_signature(TEXT + " ", 112, 5, 1), bands=14, rows=8)
    other = lsh_band_keys(minhash_signature("A completely different text about cooking pasta at home.", 112, 5, 1),
                          bands=14, rows=8)
    assert len(keys) == 14 and len(set(keys)) == 14
    assert keys[0].startswith("0:") and keys[13].startswith("13:")
    assert keys == copy
    assert not set(keys) & set(other)


def test_lsh_needs_enough_hashes():
    with pytest.raises(ValueError):
        lsh_band_keys([1, 2, 3], bands=2, rows=2)
