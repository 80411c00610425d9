"""The embedded plain-text sample: Python-Markdown's documentation as JSON Lines (data/sample/python-markdown-docs.jsonl.gz)."""
import gzip
import importlib.util
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from humpback.quality.rules import DEFAULT_THRESHOLDS, drop_reason
from humpback.quality.signals import compute_signals
from humpback.web.text_records import detect_format, iter_text_records
from humpback.web.text_segment import segment_text

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
SAMPLE = SAMPLE_DIR / "python-markdown-docs.jsonl.gz"
SITE = "https://python-markdown.github.io/"


def load_build_script():
    spec = importlib.util.spec_from_file_location("build_text_sample", SAMPLE_DIR / "build_text_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows():
    return list(iter_text_records(SAMPLE))


@pytest.fixture(scope="module")
def segments(rows):
    return [(row, segment) for row in rows for segment in segment_text(row["text"])]


def test_the_sample_is_small_licensed_and_reads_without_rejects(rows):
    assert detect_format(SAMPLE) == "jsonl"
    assert SAMPLE.stat().st_size < 300_000
    licence = (SAMPLE_DIR / "LICENSE-python-markdown.txt").read_text()
    assert "BSD 3-Clause License" in licence and "python-markdown-docs.jsonl.gz" in licence
    assert [r for r in rows if r["kind"] != "document"] == []
    assert len(rows) == 37
    assert all(r["id_source"] == "field" for r in rows)
    assert len({r["doc_id"] for r in rows}) == len(rows)
    assert all(r["doc_id"].startswith("markdown-3.11.3/docs/") and r["url"].startswith(SITE) for r in rows)


def test_the_ids_and_urls_follow_the_build_scripts_rule(rows):
    build = load_build_script()
    assert [r["url"] for r in rows] == [build.page_url(r["doc_id"].removeprefix(build.DOCS)) for r in rows]
    assert [r["doc_id"] for r in rows] == sorted(r["doc_id"] for r in rows)


def test_every_page_gives_header_segments_and_many_fall_in_the_window(segments, rows):
    assert {row["doc_id"] for row, _ in segments} == {r["doc_id"] for r in rows}
    levels = Counter(segment.level for _, segment in segments)
    assert levels[0] == 0  # front matter is left out; every page opens with its title
    assert levels[1] >= len(rows) and levels[2] >= 100 and levels[3] >= 50
    assert len(segments) >= 250
    in_window = [s for _, s in segments if DEFAULT_THRESHOLDS["min_chars"] <= len(s.text) <= DEFAULT_THRESHOLDS["max_chars"]]
    assert len(in_window) >= 120
    # Code examples of Markdown syntax (`# Header` lines inside fences) never become headers.
    toc = [s for row, s in segments if row["doc_id"].endswith("extensions/toc.md")]
    assert [s.header for s in toc][:3] == ["Table of Contents", "Summary", "Syntax"]
    assert "#Header\n#Header\n#Header" in toc[2].text


def test_the_segments_take_the_html_path_s_signals_and_rules(segments):
    decisions = Counter(drop_reason(compute_signals(s.header, s.text, s.level), DEFAULT_THRESHOLDS)
                        for _, s in segments)
    assert decisions[None] >= 60


def test_the_build_script_turns_an_sdist_into_the_records_offline(tmp_path):
    build = load_build_script()
    sdist = tmp_path / build.SDIST_NAME
    pages = {"index.md": "# Home\n", "extensions/toc.md": "---\ntitle: T\n---\n\nT\n=\n", "extensions/index.md": "x",
             "reference/markdown.util.md": "::: markdown.util", "playground.md": "<div></div>", "custom.css": "p {}"}
    with tarfile.open(sdist, "w:gz") as archive:
        for name, text in pages.items():
            data = text.encode()
            info = tarfile.TarInfo(build.DOCS + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    records = build.records(sdist)
    assert [(r["id"], r["url"]) for r in records] == [
        (build.DOCS + "extensions/index.md", SITE + "extensions/"),
        (build.DOCS + "extensions/toc.md", SITE + "extensions/toc/"),
        (build.DOCS + "index.md", SITE)]
    assert records[1]["text"] == pages["extensions/toc.md"]
    out_a, out_b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    build.write_jsonl_gz(records, out_a)
    build.write_jsonl_gz(records, out_b)
    assert out_a.read_bytes() == out_b.read_bytes()  # no timestamp: byte for byte
    assert [json.loads(line) for line in gzip.decompress(out_a.read_bytes()).splitlines()] == records
