"""Content ids: each id pinned to the value it had before the ids moved to humpback.ids (stored tables and
recorded runs depend on them), and the primitives they are made of."""
import hashlib
from pathlib import Path

import pytest

from humpback import ids
from humpback.inference.seeding import row_seed, sample_seeds
from humpback.prompts import BACKWARD_TEMPLATE_VERSION, RATING_TEMPLATE_VERSION
from humpback.quality.dedup import lsh_band_keys, minhash_signature
from humpback.seeds import split_for

INSTRUCTION, OUTPUT = "Name a colour café ✓", "Red.\nSüß_e {output} 42°C"
SETTINGS = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 64, "seed": 3, "judge_max_new_tokens": 32, "other": 1}

# Computed with the code as it was before humpback.ids existed (seeds.py, web/warc.py, quality/dedup.py,
# prompts.py, config.py, inference/seeding.py and the augment, curate, evaluate and segment stages).
PINNED = {
    "example_id": "6700552ff3be86bb67637539e485946c",
    "page_id": "67db880b3efcdba784ebd1ac3d74e2633c09339704048aa0893c9149a5c1ec83",
    "text_hash": "a69521e3c492af637437298d6a36b9dbf82f8f8c9703b5d66c5e83c4ea3da5a0",
    "segment_id": "5876c39eb978b058270f81a4561ea00f",
    "instruction_hash": "25289772c93216cc09d2db805f08e49ec27962b53d22338d6766fc456d2b64a7",
    "template_version": "25289772c932",
    "config_hash": "84f95609989fb4c2",
    "evaluation_id": "02334359d8059daebd3f358364a8009b",
}


def test_every_id_keeps_its_value():
    assert ids.example_id(INSTRUCTION, OUTPUT) == PINNED["example_id"]
    assert ids.page_id("<urn:uuid:1>", "https://example.com/a", OUTPUT.encode()) == PINNED["page_id"]
    assert ids.text_hash(OUTPUT) == PINNED["text_hash"]
    assert ids.segment_id("pid", 3, "Header é", OUTPUT) == PINNED["segment_id"]
    assert ids.instruction_hash(INSTRUCTION) == PINNED["instruction_hash"] and ids.instruction_hash(None) is None
    assert ids.pair_key("seg", "ih") == "seg\x00ih"
    assert ids.template_version(INSTRUCTION) == PINNED["template_version"]
    assert ids.config_hash({"b": {"x": 1, "y": [1, 2]}, "a": "z", "p": Path("/x")}) == PINNED["config_hash"]
    pinned_models = {"model": "models:/m@1", "baseline": "b"}
    assert ids.evaluation_id(pinned_models, "abc123", 5, ("vllm", "transformers"), SETTINGS) == PINNED["evaluation_id"]


def test_ids_derived_from_them_keep_their_values():
    assert ids.split_bucket(PINNED["example_id"]) == 554118251 and ids.split_bucket("abc") == 364682184
    assert [split_for("abc", f) for f in (0.05, 0.1, 0.5)] == ["train", "dev", "dev"]
    assert row_seed(7, "seg\x00abc") == 2694544660
    assert sample_seeds(123, 3) == [123, 2908861709, 4157609173]
    assert (BACKWARD_TEMPLATE_VERSION, RATING_TEMPLATE_VERSION) == ("6ee43b01aa11", "a18ee77e94b1")
    assert minhash_signature(OUTPUT + " " + INSTRUCTION * 3, 16, 3, 1)[:4] == [2975602634, 2193912846, 1215728859,
                                                                              2759723866]
    assert lsh_band_keys(minhash_signature(OUTPUT, 16, 3, 1), 4, 4)[0] == "0:f9460ce7822d9723"


def test_the_instruction_hash_is_sparks_sha2_of_the_utf8_text():
    assert ids.instruction_hash("café") == hashlib.sha256("café".encode("utf-8")).hexdigest()


def test_an_evaluation_id_depends_only_on_the_decoding_settings():
    pinned = {"model": "m", "baseline": "b"}
    base = ids.evaluation_id(pinned, "x", 1, ("a", "b"), SETTINGS)
    assert ids.evaluation_id(pinned, "x", 1, ("a", "b"), {**SETTINGS, "other": 2, "batch_size": 8}) == base
    assert ids.evaluation_id(pinned, "x", 1, ("a", "b"), {**SETTINGS, "seed": 4}) != base


def test_primitives():
    assert ids.sha256_hex("é") == ids.sha256_hex("é".encode()) == hashlib.sha256("é".encode()).hexdigest()
    assert ids.joined_hash("a", 1) == hashlib.sha256(b"a\x001").hexdigest()
    assert ids.joined_hash("a", "b", sep="\n", chars=8) == hashlib.sha256(b"a\nb").hexdigest()[:8]
    assert ids.joined_int("x", n_bytes=4) == int(hashlib.sha256(b"x").hexdigest()[:8], 16)
    assert ids.json_hash({"b": 1, "a": 2}) == ids.json_hash({"a": 2, "b": 1})


def test_file_sha256_streams_the_files_bytes(tmp_path):
    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # more than one read block
    path.write_bytes(data)
    assert ids.file_sha256(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("text", ["  Hello,   WORLD!\n", "hello world", "HELLO — world?"])
def test_copies_differing_in_case_punctuation_and_spacing_share_a_text_hash(text):
    assert ids.text_hash(text) == ids.text_hash("hello world")
