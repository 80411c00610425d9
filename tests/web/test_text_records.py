import bz2
import gzip
import io
import json
import lzma

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from humpback.ids import sha256_hex
from humpback.web.text_records import UnknownFormat, content_doc_id, detect_format, iter_text_records

GOOD = [{"id": f"doc-{i}", "text": f"Document {i} text.", "url": f"https://example.org/{i}"} for i in range(3)]


def jsonl(rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def read(tmp_path, name: str, data: bytes, **kwargs) -> list[dict]:
    path = tmp_path / name
    path.write_bytes(data)
    return list(iter_text_records(path, **kwargs))


def documents(rows):
    return [r for r in rows if r["kind"] == "document"]


def rejects(rows):
    return [(r["reason"], r["source"]) for r in rows if r["kind"] == "reject"]


def test_jsonl_records_carry_id_url_text_source_and_line(tmp_path):
    rows = read(tmp_path, "a.jsonl", jsonl(GOOD))
    assert [(r["doc_id"], r["url"], r["text"], r["line"], r["id_source"]) for r in rows] == [
        (g["id"], g["url"], g["text"], i + 1, "field") for i, g in enumerate(GOOD)]
    assert {r["source_file"] for r in rows} == {str(tmp_path / "a.jsonl")}


@pytest.mark.parametrize("bad, reason", [
    ("{not json", "invalid_json"),
    ('{"text": "unterminated', "invalid_json"),
    ("[1, 2, 3]", "not_an_object"),
    ('"just a string"', "not_an_object"),
    ('{"id": "x", "url": "u"}', "missing_text"),
    ('{"text": null}', "missing_text"),
    ('{"text": 42}', "text_not_a_string"),
    ('{"text": ["a", "b"]}', "text_not_a_string"),
    ('{"text": ""}', "empty_text"),
    ('{"text": " \\n\\t "}', "empty_text"),
    ('{"text": "t", "id": 1.5}', "invalid_id"),
    ('{"text": "t", "id": true}', "invalid_id"),
    ('{"text": "t", "url": 7}', "url_not_a_string"),
])
def test_a_bad_row_is_a_named_reject_and_its_neighbours_are_kept(tmp_path, bad, reason):
    rows = read(tmp_path, "a.jsonl", jsonl([GOOD[0], bad, GOOD[1]]))
    assert [r["doc_id"] for r in documents(rows)] == ["doc-0", "doc-1"]
    assert [r["line"] for r in documents(rows)] == [1, 3]
    assert rejects(rows) == [(reason, f"{tmp_path / 'a.jsonl'}:2")]
    assert rows[1]["stage"] == "ingest" and rows[1]["detail"]


def test_invalid_utf8_blank_lines_a_bom_and_a_last_line_without_newline(tmp_path):
    data = b"\xef\xbb\xbf" + jsonl([GOOD[0]]) + b"\n   \n" + b'{"text": "caf\xe9"}\n' + json.dumps(GOOD[1]).encode()
    rows = read(tmp_path, "a.jsonl", data)
    assert [(r["doc_id"], r["line"]) for r in documents(rows)] == [("doc-0", 1), ("doc-1", 5)]
    assert [reason for reason, _ in rejects(rows)] == ["invalid_utf8"]


def test_custom_and_nested_field_names(tmp_path):
    rows = read(tmp_path, "a.jsonl", jsonl([{"content": "Body.", "doc": {"key": 7}, "meta.url": "https://x"}]),
                text_field="content", id_field="doc.key", url_field="meta.url")
    assert [(r["doc_id"], r["url"], r["text"]) for r in rows] == [("7", "https://x", "Body.")]


def test_a_missing_id_is_the_content_id_of_url_and_text_stable_across_files_and_reruns(tmp_path):
    row = {"text": "Same text.", "url": "https://example.org/p"}
    first = read(tmp_path, "a.jsonl", jsonl([row]))[0]
    again = read(tmp_path, "elsewhere.jsonl.gz", gzip.compress(jsonl([{"other": 1}, row])), id_field="missing")[0:2]
    assert first["id_source"] == "content"
    assert first["doc_id"] == sha256_hex("https://example.org/p\x00Same text.") == content_doc_id(row["url"], row["text"])
    assert documents(again)[0]["doc_id"] == first["doc_id"]
    assert read(tmp_path, "b.jsonl", jsonl([{"text": "Same text.", "id": ""}]))[0]["doc_id"] == content_doc_id(None, "Same text.")


def test_gzip_bzip2_xz_and_concatenated_members(tmp_path):
    data = jsonl(GOOD)
    for name, packed in [("a.jsonl.gz", gzip.compress(data)), ("a.json.gz", gzip.compress(data[:50]) + gzip.compress(data[50:])),
                         ("a.jsonl.bz2", bz2.compress(data)), ("a.jsonl.xz", lzma.compress(data)),
                         ("mislabelled.jsonl", gzip.compress(data))]:
        rows = read(tmp_path, name, packed)
        assert [r["doc_id"] for r in rows] == ["doc-0", "doc-1", "doc-2"], name


@pytest.mark.skipif(not pa.Codec.is_available("zstd"), reason="pyarrow built without zstd")
@pytest.mark.parametrize("name", ["a.jsonl.zst", "a.jsonl.zstd"])
def test_zstd(tmp_path, name):
    rows = read(tmp_path, name, pa.Codec("zstd").compress(jsonl([GOOD[0], "oops", GOOD[1]]), asbytes=True))
    assert [r["doc_id"] for r in documents(rows)] == ["doc-0", "doc-1"]
    assert [reason for reason, _ in rejects(rows)] == ["invalid_json"]


def many_rows(n: int) -> bytes:
    return jsonl([{"id": str(i), "text": f"Row {i} " + "filler words " * 20} for i in range(n)])


def test_a_truncated_gzip_keeps_the_rows_before_the_damage_and_names_it(tmp_path):
    packed = gzip.compress(many_rows(20_000))
    rows = read(tmp_path, "a.jsonl.gz", packed[: len(packed) // 2])
    docs = documents(rows)
    assert len(docs) > 1000
    assert [r["doc_id"] for r in docs] == [str(i) for i in range(len(docs))]  # every row up to the damage
    assert rows[-1]["kind"] == "reject" and rows[-1]["reason"] == "truncated_file"
    assert rejects(rows) == [("truncated_file", str(tmp_path / "a.jsonl.gz"))]
    assert f"line {len(docs) + 1} is cut off" in rows[-1]["detail"]


@pytest.mark.skipif(not pa.Codec.is_available("zstd"), reason="pyarrow built without zstd")
def test_a_truncated_zstd_file_keeps_the_rows_before_the_damage(tmp_path):
    packed = pa.Codec("zstd").compress(many_rows(50_000), asbytes=True)
    rows = read(tmp_path, "a.jsonl.zst", packed[: len(packed) * 2 // 3])
    assert len(documents(rows)) > 1000
    assert rejects(rows) == [("truncated_file", str(tmp_path / "a.jsonl.zst"))]


def test_bytes_after_the_last_gzip_member_are_named_and_all_rows_kept(tmp_path):
    rows = read(tmp_path, "a.jsonl.gz", gzip.compress(jsonl(GOOD).rstrip(b"\n")) + b"trailing junk")
    assert [r["doc_id"] for r in documents(rows)] == ["doc-0", "doc-1", "doc-2"]
    assert [reason for reason, _ in rejects(rows)] == ["decompression_error"]
    assert [r["doc_id"] for r in read(tmp_path, "b.jsonl.gz", gzip.compress(jsonl(GOOD)) + b"\0" * 512)] == [
        "doc-0", "doc-1", "doc-2"]  # zero padding is no damage


def test_an_over_long_line_is_skipped_without_being_held(tmp_path):
    long_row = json.dumps({"text": "x" * 5000})
    rows = read(tmp_path, "a.jsonl", jsonl([GOOD[0], long_row, GOOD[1]]), max_record_bytes=1000)
    assert [r["doc_id"] for r in documents(rows)] == ["doc-0", "doc-1"]
    assert rejects(rows) == [("too_large", f"{tmp_path / 'a.jsonl'}:2")]


def test_empty_blank_and_binary_files_are_one_reject_each(tmp_path):
    assert [r["reason"] for r in read(tmp_path, "e.jsonl", b"")] == ["empty_file"]
    assert [r["reason"] for r in read(tmp_path, "b.jsonl.gz", gzip.compress(b"\n\n  \n"))] == ["empty_file"]
    assert [r["reason"] for r in read(tmp_path, "p.jsonl", b"PAR1" + bytes(range(256)) * 4)] == ["not_text"]


def test_a_stream_and_a_file_uri_read_like_a_path(tmp_path):
    stream_rows = list(iter_text_records(io.BytesIO(jsonl(GOOD)), source="s3a://bucket/part-0.jsonl"))
    assert [r["doc_id"] for r in stream_rows] == ["doc-0", "doc-1", "doc-2"]
    assert stream_rows[0]["source_file"] == "s3a://bucket/part-0.jsonl"
    (tmp_path / "u.jsonl").write_bytes(jsonl(GOOD))
    uri_rows = list(iter_text_records(f"file://{tmp_path / 'u.jsonl'}"))
    assert [r["doc_id"] for r in uri_rows] == ["doc-0", "doc-1", "doc-2"]


# ----- Parquet -----

def write_parquet(path, table, row_group_size=2):
    pq.write_table(table, path, row_group_size=row_group_size, compression="none")
    return path


def test_parquet_with_custom_field_names_streamed_over_row_groups(tmp_path):
    table = pa.table({"body": ["a", None, "c", "", "e"], "key": [10, 11, 12, 13, None],
                      "meta": [{"link": f"https://x/{i}"} for i in range(5)], "unused": list(range(5))})
    path = write_parquet(tmp_path / "t.parquet", table)
    rows = list(iter_text_records(path, text_field="body", id_field="key", url_field="meta.link", batch_rows=1))
    assert [(r["doc_id"], r["url"], r["text"], r["line"]) for r in documents(rows)] == [
        ("10", "https://x/0", "a", 1), ("12", "https://x/2", "c", 3), (content_doc_id("https://x/4", "e"), "https://x/4", "e", 5)]
    assert rejects(rows) == [("missing_text", f"{path}:2"), ("empty_text", f"{path}:4")]


def test_parquet_type_problems_are_row_rejects(tmp_path):
    path = write_parquet(tmp_path / "n.parquet", pa.table({"text": [1, 2]}))
    assert [reason for reason, _ in rejects(iter_text_records(path))] == ["text_not_a_string"] * 2
    path = write_parquet(tmp_path / "b.parquet", pa.table({"text": pa.array([b"ok", b"\xff"], pa.binary())}))
    rows = list(iter_text_records(path))
    assert [r["text"] for r in documents(rows)] == ["ok"] and [reason for reason, _ in rejects(rows)] == ["invalid_utf8"]


def test_a_damaged_row_group_is_one_reject_and_the_next_group_is_read(tmp_path):
    path = write_parquet(tmp_path / "d.parquet", pa.table({"text": [f"row {i}" for i in range(6)]}))
    column = pq.ParquetFile(path).metadata.row_group(1).column(0)
    start = column.dictionary_page_offset or column.data_page_offset
    data = bytearray(path.read_bytes())
    data[start:start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    rows = list(iter_text_records(path))
    assert [r["text"] for r in documents(rows)] == ["row 0", "row 1", "row 4", "row 5"]
    assert rejects(rows) == [("parquet_read_error", f"{path}:3")]
    assert "rows 3..4" in rows[2]["detail"]


def test_parquet_file_problems(tmp_path):
    path = write_parquet(tmp_path / "c.parquet", pa.table({"content": ["x"]}))
    [row] = iter_text_records(path)
    assert row["reason"] == "missing_text_column" and "content" in row["detail"]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    assert [r["reason"] for r in iter_text_records(tmp_path / "bad.parquet")] == ["invalid_parquet"]
    whole = (tmp_path / "c.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    assert [r["reason"] for r in iter_text_records(tmp_path / "cut.parquet")] == ["invalid_parquet"]
    empty = write_parquet(tmp_path / "empty.parquet", pa.table({"text": pa.array([], pa.string())}))
    assert [r["reason"] for r in iter_text_records(empty)] == ["empty_file"]


# ----- formats -----

@pytest.mark.parametrize("name, fmt", [
    ("crawl/CC-MAIN-0001.warc.gz", "warc"), ("a.warc", "warc"), ("a.jsonl", "jsonl"), ("A.JSONL.GZ", "jsonl"),
    ("a.json.gz", "jsonl"), ("a.ndjson", "jsonl"), ("a.jsonl.zst", "jsonl"), ("a.jsonl.zstd", "jsonl"),
    ("a.jsonl.bz2", "jsonl"), ("a.jsonl.xz", "jsonl"), ("s3a://bucket/x/part-00000.parquet", "parquet"),
    ("hdfs://nn/data.pq", "parquet"), ("https://host/file.jsonl.gz?token=abc", "jsonl"),
])
def test_detect_format(name, fmt):
    assert detect_format(name) == fmt


@pytest.mark.parametrize("name", ["notes.txt", "a.csv.gz", "a.parquet.gz", "a.warc.zst", "jsonl", "a.gz"])
def test_unknown_extensions_are_a_clear_error(name):
    with pytest.raises(UnknownFormat, match="cannot tell the format"):
        detect_format(name)


def test_warc_files_are_not_read_here(tmp_path):
    with pytest.raises(ValueError, match="iter_warc"):
        list(iter_text_records(io.BytesIO(b""), source="a.warc.gz"))
