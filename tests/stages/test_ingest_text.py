"""`humpback ingest` on text corpora (JSON Lines, Parquet): documents become pages, bad rows named rejects."""
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from humpback.ids import text_page_id
from humpback.tables import TEXT_CONTENT_TYPE
from humpback.stages import ingest, segment

FIELDS = ["--set", "ingest.text_field=body", "--set", "ingest.id_field=doc", "--set", "ingest.url_field=meta.url"]


def run_ingest(lakehouse, mlflow_store, *argv):
    return ingest.STAGE.main([*argv, "--lakehouse", lakehouse.root, "--mlflow-uri", mlflow_store])


def test_jsonl_documents_with_custom_fields_are_pages_and_bad_rows_rejects(tmp_path, lakehouse, mlflow_store,
                                                                            capsys):
    lines = [
        json.dumps({"doc": "a", "body": "# Title\n\nFirst document.", "meta": {"url": "https://example.com/a"}}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"doc": "c", "text": "the wrong field"}),
        json.dumps({"doc": "d", "body": 42}),
        json.dumps({"doc": "b", "body": "Second document.", "meta": {"url": "https://example.com/b"}}),
    ]
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert run_ingest(lakehouse, mlflow_store, "--input", str(path), *FIELDS) == 0
    pages = {row.warc_record_id: row for row in lakehouse.read("pages").collect()}
    assert sorted(pages) == ["a", "b"]
    first = pages["a"]
    assert (first.url, first.html, first.content_type) == ("https://example.com/a", "# Title\n\nFirst document.",
                                                           TEXT_CONTENT_TYPE)
    assert first.page_id == text_page_id("a", "https://example.com/a", "# Title\n\nFirst document.")
    rejects = sorted((row.source.rsplit(":", 1)[-1], row.reason) for row in lakehouse.read("rejects").collect())
    assert rejects == [("2", "invalid_json"), ("3", "not_an_object"), ("4", "missing_text"),
                       ("5", "text_not_a_string")]
    assert "1 jsonl" in capsys.readouterr().out
    # A rerun finds every page and reject already there.
    assert run_ingest(lakehouse, mlflow_store, "--input", str(path), *FIELDS) == 0
    assert lakehouse.read("pages").count() == 2 and lakehouse.read("rejects").count() == 4
    assert "(0 new" in capsys.readouterr().out


def test_parquet_documents_are_read_by_row(tmp_path, lakehouse, mlflow_store):
    table = pa.table({"doc": ["p1", "p2", "p3"], "body": ["One.", None, "Three."],
                      "meta": [{"url": "u1"}, {"url": "u2"}, {"url": "u3"}]})
    pq.write_table(table, tmp_path / "corpus.parquet")
    assert run_ingest(lakehouse, mlflow_store, "--input", str(tmp_path / "*.parquet"), *FIELDS) == 0
    assert sorted(row.url for row in lakehouse.read("pages").collect()) == ["u1", "u3"]
    assert [row.reason for row in lakehouse.read("rejects").collect()] == ["missing_text"]


def test_a_file_of_no_text_extension_is_read_as_warc_and_its_records_rejected(tmp_path, lakehouse, mlflow_store,
                                                                              capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert run_ingest(lakehouse, mlflow_store, "--input", str(tmp_path / "notes.txt")) == 2
    err = capsys.readouterr().err
    assert "every record was rejected" in err and "are these WARC files?" in err
    assert [row.reason for row in lakehouse.read("rejects").collect()] == ["warc_read_error"]


SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "python-markdown-docs.jsonl.gz"


def test_the_text_sample_gives_kept_segments_at_its_markdown_headers(lakehouse, mlflow_store):
    assert run_ingest(lakehouse, mlflow_store, "--input", str(SAMPLE)) == 0
    assert lakehouse.read("pages").count() == 37 and not lakehouse.exists("rejects")
    assert segment.STAGE.main(["--lakehouse", lakehouse.root, "--mlflow-uri", mlflow_store]) == 0
    segments = lakehouse.read("segments")
    kept = segments.where("drop_reason IS NULL").collect()
    assert len(kept) > 50
    assert all(row.header and row.header_level >= 1 for row in kept)
    assert not any(row.header.startswith("#") for row in segments.collect())


def test_a_document_without_headers_is_cut_into_kept_paragraph_groups(tmp_path, lakehouse, mlflow_store):
    text = "\n\n".join([
        "Bees keep the hive warm in winter by clustering together and shivering their flight muscles, which turns "
        "the honey they stored over the summer into heat for the whole colony.",
        "A strong colony can hold the centre of its cluster near thirty degrees even when the air outside is well "
        "below freezing, and the workers rotate between the cold outer layer and the warm core.",
        "Beekeepers help by leaving enough honey in autumn, by reducing the entrance so that mice stay out, and by "
        "tilting the hive slightly forward so that condensation runs out instead of dripping onto the cluster.",
        "In early spring the queen starts laying again, the brood needs more warmth, and the colony uses its stores "
        "quickly; this is when many colonies starve, often with honey a few frames away from the cluster.",
        "Checking the weight of the hive by lifting its back edge tells a beekeeper whether the bees need feeding, "
        "without opening the hive and letting the warm air out on a cold day.",
    ])  # about 900 characters, no header
    (tmp_path / "plain.jsonl").write_text(json.dumps({"id": "plain", "text": text}) + "\n")
    assert run_ingest(lakehouse, mlflow_store, "--input", str(tmp_path / "plain.jsonl")) == 0
    assert segment.STAGE.main(["--lakehouse", lakehouse.root, "--mlflow-uri", mlflow_store]) == 0
    rows = lakehouse.read("segments").collect()
    assert rows and all(row.header == "" and row.header_level == 0 for row in rows)
    assert {row.drop_reason for row in rows} == {None}  # no header to judge: empty_header is for levels 1-6
