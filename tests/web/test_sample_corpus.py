"""The embedded sample corpus: readable, small, and large enough for the demo (>= 300 kept segments)."""
import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from humpback.quality.dedup import DEFAULT_DEDUP, lsh_band_keys, minhash_signature, text_hash
from humpback.quality.rules import DEFAULT_THRESHOLDS, drop_reason
from humpback.quality.signals import compute_signals
from humpback.web.segment import segment_html
from humpback.web.warc import iter_warc

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
SAMPLE = SAMPLE_DIR / "python-docs.warc.gz"
DOCS_DIR = Path("/usr/share/doc/python3.11/html")


def kept_texts(rows):
    for row in rows:
        if row["kind"] == "page":
            for segment in segment_html(row["html"]):
                signals = compute_signals(segment.header, segment.text, segment.level)
                if drop_reason(signals, DEFAULT_THRESHOLDS) is None:
                    yield segment.text


def without_duplicates(texts):
    """Texts left after exact dedup and after dropping any text that shares an LSH band with an earlier one."""
    hashes, band_keys = set(), set()
    for text in texts:
        keys = lsh_band_keys(minhash_signature(text, DEFAULT_DEDUP["num_perm"], DEFAULT_DEDUP["ngram"],
                                               DEFAULT_DEDUP["seed"]), DEFAULT_DEDUP["bands"], DEFAULT_DEDUP["rows"])
        if text_hash(text) not in hashes and band_keys.isdisjoint(keys):
            yield text
        hashes.add(text_hash(text))
        band_keys.update(keys)


def test_sample_is_small_and_every_record_reads():
    rows = list(iter_warc(SAMPLE, "python-docs.warc.gz"))
    pages = [row for row in rows if row["kind"] == "page"]
    assert SAMPLE.stat().st_size < 4_000_000
    assert len(pages) >= 90
    assert not any(row["url"].startswith("https://docs.python.org/3.11/faq/") for row in pages)
    assert [row["reason"] for row in rows if row["kind"] == "reject"] == ["not_html", "not_html"]


@pytest.mark.slow
def test_sample_yields_at_least_300_kept_segments_after_dedup():
    rows = iter_warc(SAMPLE, "python-docs.warc.gz")
    assert sum(1 for _ in without_duplicates(kept_texts(rows))) >= 300


@pytest.mark.skipif(not (DOCS_DIR / "tutorial" / "index.html").exists(), reason="python3.11-doc not installed")
def test_rebuilding_the_sample_gives_the_same_bytes(tmp_path):
    out = tmp_path / SAMPLE.name
    subprocess.run([sys.executable, str(SAMPLE_DIR / "build_corpus.py"), "--out", str(out)], check=True)
    assert filecmp.cmp(out, SAMPLE, shallow=False)
