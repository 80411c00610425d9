import io
import os

import pytest

from humpback.web.warc import decode_html, iter_warc, looks_binary
from warc_fixtures import (gzip_member, page_html, request_record, response_record, warcinfo_record,
                           write_warc)

PAGE_KEYS = {"kind", "page_id", "url", "warc_file", "warc_record_id", "http_status", "content_type", "html",
             "n_bytes", "encoding", "encoding_source"}
REJECT_KEYS = {"kind", "source", "stage", "reason", "detail"}


def read_rows(records, compress=True, **kwargs):
    data = b"".join(gzip_member(r) if compress else r for r in records)
    return list(iter_warc(io.BytesIO(data), "test.warc.gz", **kwargs))


def page_urls(rows):
    return [row["url"] for row in rows if row["kind"] == "page"]


def rejects(rows):
    return [(row["reason"]) for row in rows if row["kind"] == "reject"]


def test_a_response_becomes_a_page_row_with_the_table_columns(tmp_path):
    path = write_warc(tmp_path / "one.warc.gz", [response_record(1)])
    [row] = iter_warc(path, "one.warc.gz")
    assert set(row) == PAGE_KEYS
    assert row["kind"] == "page"
    assert row["url"] == "https://example.com/page-1"
    assert row["warc_file"] == "one.warc.gz"
    assert row["warc_record_id"].startswith("<urn:uuid:")
    assert row["http_status"] == 200
    assert row["content_type"] == "text/html"
    assert row["html"] == page_html("Page 1").decode()
    assert row["n_bytes"] == len(page_html("Page 1"))
    assert (row["encoding"], row["encoding_source"]) == ("utf-8", "http")


def test_other_record_types_are_skipped_without_rejects():
    rows = read_rows([warcinfo_record(), request_record(1), response_record(1)])
    assert page_urls(rows) == ["https://example.com/page-1"]
    assert rejects(rows) == []


def test_page_id_is_a_stable_content_hash():
    first = read_rows([response_record(1)])[0]["page_id"]
    again = read_rows([warcinfo_record(), response_record(1)])[0]["page_id"]
    changed = read_rows([response_record(1, body=page_html("Page 1", "Other text."))])[0]["page_id"]
    assert first == again
    assert len(first) == 64 and set(first) <= set("0123456789abcdef")  # sha256 hex
    assert changed != first


def test_uncompressed_warc_is_read_too():
    rows = read_rows([warcinfo_record(), response_record(1), response_record(2)], compress=False)
    assert page_urls(rows) == ["https://example.com/page-1", "https://example.com/page-2"]


def cut_in_half(member):
    return member[: len(member) // 2]


def flip_a_byte(member):
    damaged = bytearray(member)
    damaged[40] ^= 0xFF
    return bytes(damaged)


@pytest.mark.parametrize("damage, reason", [(cut_in_half, "truncated_gzip"), (flip_a_byte, "corrupt_gzip")])
def test_a_bad_gzip_member_in_the_middle_keeps_the_records_before_and_after(damage, reason):
    members = [gzip_member(r) for r in (warcinfo_record(), response_record(1), response_record(2),
                                        response_record(3), response_record(4))]
    members[2] = damage(members[2])
    rows = list(iter_warc(io.BytesIO(b"".join(members)), "damaged.warc.gz"))
    assert page_urls(rows) == ["https://example.com/page-1", "https://example.com/page-3",
                               "https://example.com/page-4"]
    [reject] = [row for row in rows if row["kind"] == "reject"]
    assert set(reject) == REJECT_KEYS
    assert reject["reason"] == reason
    assert reject["stage"] == "ingest"
    assert reject["source"] == f"damaged.warc.gz@{sum(map(len, members[:2]))}"


def test_a_large_record_cut_off_in_the_middle_keeps_its_neighbours():
    big = gzip_member(response_record(2, body=b"<html><body>" + os.urandom(200_000).hex().encode()))
    data = gzip_member(response_record(1)) + cut_in_half(big) + gzip_member(response_record(3))
    rows = list(iter_warc(io.BytesIO(data), "x.warc.gz"))
    assert page_urls(rows) == ["https://example.com/page-1", "https://example.com/page-3"]
    assert rejects(rows) == ["truncated_gzip"]


def test_a_file_cut_off_in_its_last_record_keeps_the_records_before():
    data = gzip_member(response_record(1)) + cut_in_half(gzip_member(response_record(2, body=page_html() * 200)))
    rows = list(iter_warc(io.BytesIO(data), "x.warc.gz"))
    assert page_urls(rows) == ["https://example.com/page-1"]
    assert rejects(rows) == ["truncated_gzip"]


def test_garbage_between_members_is_one_reject_and_reading_goes_on():
    data = gzip_member(response_record(1)) + b"\x00garbage" * 50 + gzip_member(response_record(2))
    rows = list(iter_warc(io.BytesIO(data), "x.warc.gz"))
    assert page_urls(rows) == ["https://example.com/page-1", "https://example.com/page-2"]
    assert len(rejects(rows)) == 1


def test_a_file_that_is_not_a_warc_is_one_reject():
    rows = list(iter_warc(io.BytesIO(b"just some text, not a WARC file\n" * 10), "notes.txt"))
    assert [(row["kind"], row["reason"], row["source"]) for row in rows] == [
        ("reject", "warc_read_error", "notes.txt@0")]


@pytest.mark.parametrize("status, reason", [("404 Not Found", "http_error_status"),
                                            ("500 Internal Server Error", "http_error_status"),
                                            ("301 Moved Permanently", "http_redirect")])
def test_non_2xx_statuses_are_rejected(status, reason):
    rows = read_rows([response_record(1, status=status), response_record(2)])
    assert rejects(rows) == [reason]
    assert page_urls(rows) == ["https://example.com/page-2"]
    assert status.split()[0] in rows[0]["detail"]


def test_non_html_payload_is_rejected():
    rows = read_rows([response_record(1, body=b"%PDF-1.7 ...", content_type="application/pdf")])
    assert rejects(rows) == ["not_html"]
    assert "application/pdf" in rows[0]["detail"]


def test_binary_payload_labelled_as_html_is_rejected():
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
    controls = b"<html>" + bytes(range(1, 9)) * 200
    rows = read_rows([response_record(1, body=png), response_record(2, body=controls), response_record(3)])
    assert rejects(rows) == ["binary_payload", "binary_payload"]
    assert page_urls(rows) == ["https://example.com/page-3"]


def test_empty_body_is_rejected():
    rows = read_rows([response_record(1, body=b""), response_record(2, body=b"  \r\n ")])
    assert rejects(rows) == ["empty_body", "empty_body"]


def test_multi_megabyte_page_is_rejected_as_too_large():
    huge = b"<html><body>" + b"<p>word</p>" * 300_000  # 3.3 MB
    rows = read_rows([response_record(1, body=huge), response_record(2)])
    assert rejects(rows) == ["too_large"]
    assert page_urls(rows) == ["https://example.com/page-2"]


def test_the_size_cap_is_a_parameter():
    rows = read_rows([response_record(1, body=page_html() * 10)], max_page_bytes=100)
    assert rejects(rows) == ["too_large"]


def test_missing_content_type_is_sniffed():
    rows = read_rows([response_record(1, content_type=None),
                      response_record(2, body=b"plain words, no markup", content_type=None)])
    assert page_urls(rows) == ["https://example.com/page-1"]
    assert rejects(rows) == ["not_html"]


def test_gzip_content_encoding_is_decoded():
    import gzip

    rows = read_rows([response_record(1, body=gzip.compress(page_html("Zipped")),
                                      extra_headers=(("Content-Encoding", "gzip"),))])
    assert "<h1>Zipped</h1>" in rows[0]["html"]


CAFE_HTML = "<html><body><h1>Café</h1><p>Crème brûlée, naïve façade — déjà vu à la française.</p></body></html>"


def test_charset_from_the_http_header():
    body = CAFE_HTML.encode("cp1252")
    [row] = read_rows([response_record(1, body=body, content_type="text/html; charset=windows-1252")])
    assert (row["encoding"], row["encoding_source"]) == ("cp1252", "http")
    assert "Crème brûlée" in row["html"]


def test_quoted_mixed_case_http_charset_is_understood():
    body = CAFE_HTML.encode("cp1252")  # browsers read the label ISO-8859-1 as windows-1252 (WHATWG)
    [row] = read_rows([response_record(1, body=body, content_type='TEXT/HTML; Charset="ISO-8859-1"')])
    assert (row["encoding"], row["encoding_source"]) == ("cp1252", "http")
    assert row["content_type"] == "text/html"
    assert "naïve façade — déjà" in row["html"]


def test_charset_from_meta_when_http_has_none():
    body = ('<html><head><meta charset="windows-1252"></head>' + CAFE_HTML[6:]).encode("cp1252")
    [row] = read_rows([response_record(1, body=body, content_type="text/html")])
    assert (row["encoding"], row["encoding_source"]) == ("cp1252", "meta")
    assert "déjà vu" in row["html"]


def test_charset_from_http_equiv_meta():
    body = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=koi8-r"></head>'
            '<body><p>Привет, мир</p></body></html>').encode("koi8-r")
    [row] = read_rows([response_record(1, body=body, content_type="text/html")])
    assert (row["encoding"], row["encoding_source"]) == ("koi8-r", "meta")
    assert "Привет, мир" in row["html"]


def test_wrong_http_charset_falls_through_to_meta():
    body = ('<html><head><meta charset="windows-1252"></head>' + CAFE_HTML[6:]).encode("cp1252")
    [row] = read_rows([response_record(1, body=body, content_type="text/html; charset=utf-8")])
    assert row["encoding_source"] == "meta"
    assert "Crème" in row["html"]


def test_unknown_charset_name_falls_through_to_detection():
    body = CAFE_HTML.encode("utf-8")
    [row] = read_rows([response_record(1, body=body, content_type="text/html; charset=x-no-such-charset")])
    assert row["encoding_source"] == "detected"
    assert "Café" in row["html"]


def test_undeclared_latin1_bytes_are_detected():
    text, encoding, source = decode_html((CAFE_HTML * 3).encode("cp1252"), None)
    assert source == "detected"
    assert encoding in {"cp1252", "iso-8859-1", "latin-1", "iso-8859-15"}
    assert "Crème brûlée, naïve façade" in text


def test_decoding_strips_a_byte_order_mark():
    text, _, _ = decode_html(b"\xef\xbb\xbf<p>x</p>", "utf-8")
    assert text == "<p>x</p>"


def test_looks_binary_accepts_text_and_utf16():
    assert not looks_binary(CAFE_HTML.encode())
    assert not looks_binary("\ufeff<p>texte</p>".encode("utf-16"))
    assert looks_binary(b"%PDF-1.4\n" + b"a" * 100)
    assert looks_binary(b"<html>" + b"\x00\x01\x02\x03" * 50)


def test_an_uncompressed_file_cut_off_in_its_last_record_keeps_the_records_before():
    last = response_record(2, body=page_html() * 50)
    rows = read_rows([response_record(1), last[: len(last) // 2]], compress=False)
    assert page_urls(rows) == ["https://example.com/page-1"]
    assert rejects(rows) == ["truncated_record"]


def test_a_payload_that_fails_its_content_encoding_is_rejected_and_reading_goes_on():
    broken = response_record(1, body=b"\x8b\x02\x80not brotli", extra_headers=(("Content-Encoding", "br"),))
    rows = read_rows([broken, response_record(2)])
    assert rejects(rows) == ["content_decoding_error"]
    assert page_urls(rows) == ["https://example.com/page-2"]


def test_an_empty_file_is_one_reject_not_skipped(tmp_path):
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    rows = list(iter_warc(tmp_path / "empty.warc.gz", "empty.warc.gz"))
    assert [(row["kind"], row["reason"], row["source"]) for row in rows] == [("reject", "empty_file", "empty.warc.gz")]
