"""WARC / WARC.gz files -> page rows and reject rows: the pure part of `humpback ingest`.

FastWARC reads the records. What this module adds is the policy: which records are pages, how their bytes are
decoded, and how a damaged file is read past. FastWARC stops at a corrupt gzip member (sometimes silently), so
after every stop we look for the next record start (the next gzip member that opens with `WARC/`, or the next
`WARC/1.` line in an uncompressed file) and go on from there; records before and after the damage are kept and
the damaged part becomes one reject row.
"""
from __future__ import annotations

import os
import re
import zlib
from typing import BinaryIO, Iterator

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType
from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5

from humpback.ids import page_id

DEFAULT_MAX_PAGE_BYTES = 2_000_000
STAGE = "ingest"

HTML_MIME_TYPES = frozenset({"text/html", "application/xhtml+xml"})
GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/1."
SCAN_CHUNK = 1 << 20

# Payloads that are certainly not HTML whatever their label says.
BINARY_SIGNATURES = (b"%PDF-", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# C0 controls that never occur in text (tab, newlines, form feed and ESC, used by ISO-2022 encodings, excepted).
CONTROL_BYTES = bytes(set(range(32)) - {9, 10, 11, 12, 13, 27})
BINARY_SAMPLE_BYTES = 8192
MAX_CONTROL_BYTE_FRACTION = 0.01
MAX_REPLACEMENT_FRACTION = 0.01

# The HTML standard's prescan looks for the charset in the first 1024 bytes; real pages put long scripts first.
META_SCAN_BYTES = 4096
META_CHARSET = re.compile(rb"""<meta\b[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE)
# Without a Content-Type, a payload is taken as HTML when one of these tags opens it.
HTML_SNIFF = re.compile(rb"<(?:!doctype\s+html|html|head|body)\b", re.IGNORECASE)
SNIFF_BYTES = 1024


def iter_warc(path_or_stream: str | os.PathLike | BinaryIO, source: str,
              max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES) -> Iterator[dict]:
    """Yield one row per WARC `response` record: a page row (kind='page') or a reject row (kind='reject').

    `source` names the file in the rows (warc_file, and the reject source `<source>@<offset>`). A stream must be
    binary and seekable. Other record types (warcinfo, request, metadata, ...) are not inputs and yield nothing.
    """
    if isinstance(path_or_stream, (str, os.PathLike)):
        with open(path_or_stream, "rb") as stream:
            yield from _iter_stream(stream, source, max_page_bytes)
    else:
        yield from _iter_stream(path_or_stream, source, max_page_bytes)


def _iter_stream(stream: BinaryIO, source: str, max_page_bytes: int) -> Iterator[dict]:
    pos = stream.tell()
    head = stream.read(2)
    if not head:  # an empty file is an input that holds nothing: recorded, not skipped
        yield reject_row(source, "empty_file", "the file is empty (0 bytes)")
        return
    gzipped = head == GZIP_MAGIC[:2]
    while pos is not None:
        stream.seek(pos)
        last, error = None, None
        try:
            for record in ArchiveIterator(stream, parse_http=True, auto_decode="all"):
                last = record.stream_pos
                row = _row_for_record(record, source, gzipped, max_page_bytes)
                if row is not None:
                    yield row
        except OSError as exc:
            error = str(exc)
        damaged, pos = _resume_point(stream, pos, last, error, gzipped)
        if damaged is not None and damaged != pos and not _at_eof(stream, damaged):
            yield _damaged_reject(stream, source, damaged, pos, gzipped, error)


def _resume_point(stream: BinaryIO, pos: int, last: int | None, error: str | None,
                  gzipped: bool) -> tuple[int | None, int | None]:
    """(start of unreadable bytes or None, where the next pass starts or None) after a pass that began at pos.

    `last` is the offset of the last record the pass saw. Resume points only ever move forward.
    """
    if last is None:  # nothing readable at pos
        return pos, _next_record_start(stream, pos + 1, gzipped)
    if gzipped:  # FastWARC may stop silently at a bad member: look past the last record's member in any case
        _, member_end = check_gzip_member(stream, last)
        resume_from = last + 1 if member_end is None else member_end
        return member_end, _next_record_start(stream, resume_from, gzipped)
    if error is not None:
        return None, _next_record_start(stream, last + 1, gzipped)
    return None, None  # uncompressed input: FastWARC raises on damage, so a clean stop is the end of the file


def _row_for_record(record: WarcRecord, source: str, gzipped: bool, max_page_bytes: int) -> dict | None:
    """The page or reject row for a response record; None for the other record types."""
    if record.record_type != WarcRecordType.response:
        return None
    where = f"{source}@{record.stream_pos}"
    url = (record.headers.get("WARC-Target-URI") or "").strip("<> ")
    status = record.http_headers.status_code if record.is_http_parsed else None
    mime = (record.http_content_type or "").strip().lower() or None
    try:
        truncated = "truncated_gzip" if gzipped else "truncated_record"
        problem = _header_problem(record, status, mime, max_page_bytes, truncated)
        if problem is None:
            body, problem = _read_payload(record, gzipped, max_page_bytes, truncated)
        if problem is None:
            problem = _payload_problem(body, status, mime)
        decoded = None if problem else decode_html(body, record.http_charset)
    except ValueError as exc:  # anything else FastWARC finds malformed in this record
        problem = ("warc_read_error", str(exc))
    if problem is None and decoded is None:
        problem = ("undecodable", "no charset decodes the payload")
    if problem is not None:
        reason, detail = problem
        return reject_row(where, reason, f"{detail} ({url})")
    return page_row(record, source, url, status, mime or "text/html", body, *decoded)


def _header_problem(record: WarcRecord, status: int | None, mime: str | None, max_page_bytes: int,
                    truncated: str) -> tuple[str, str] | None:
    """(reason, detail) when the headers alone rule the record out (before its payload is read)."""
    if record.headers.get("Content-Length") is None:
        return truncated, "WARC header ends early"
    if status is not None and not 200 <= status < 300:
        return "http_redirect" if 300 <= status < 400 else "http_error_status", f"HTTP status {status}"
    if status is not None and mime is not None and mime not in HTML_MIME_TYPES:
        return "not_html", f"content type {mime}"
    if record.content_length > max_page_bytes:
        return "too_large", f"payload of {record.content_length} bytes"
    return None


def _read_payload(record: WarcRecord, gzipped: bool, max_page_bytes: int,
                  truncated: str) -> tuple[bytes, tuple[str, str] | None]:
    """The payload, read up to one byte past the cap, and the problem with reading it, if any."""
    try:
        body = record.reader.read(max_page_bytes + 1)
    except OSError as exc:
        return b"", (_read_failure_reason(record, gzipped), str(exc))
    if len(body) > max_page_bytes:
        return body, ("too_large", f"payload over {max_page_bytes} bytes")
    if len(body) < record.content_length and not _is_transfer_decoded(record):
        return body, (truncated, f"{len(body)} of {record.content_length} payload bytes")
    return body, None


def _payload_problem(body: bytes, status: int | None, mime: str | None) -> tuple[str, str] | None:
    if status is None:
        return "malformed_http", "no HTTP status line"
    if not body.strip():
        return "empty_body", "no payload"
    if mime is None and not HTML_SNIFF.search(body, 0, SNIFF_BYTES):
        return "not_html", "no content type and no HTML start"
    if looks_binary(body):
        return "binary_payload", f"binary bytes labelled {mime or 'HTML'}"
    return None


def page_row(record: WarcRecord, source: str, url: str, status: int, mime: str, body: bytes, html: str,
             encoding: str, encoding_source: str) -> dict:
    record_id = record.record_id or ""
    return {
        "kind": "page",
        "page_id": page_id(record_id, url, body),
        "url": url,
        "warc_file": source,
        "warc_record_id": record_id,
        "http_status": status,
        "content_type": mime,
        "html": html,
        "n_bytes": len(body),
        "encoding": encoding,
        "encoding_source": encoding_source,
    }


def reject_row(source: str, reason: str, detail: str) -> dict:
    return {"kind": "reject", "source": source, "stage": STAGE, "reason": reason, "detail": detail}


def looks_binary(body: bytes) -> bool:
    """True for bytes no web page is made of: known binary signatures, or many control bytes."""
    if body.startswith(BINARY_SIGNATURES):
        return True
    sample = body[:BINARY_SAMPLE_BYTES]
    if sample.startswith(UTF16_BOMS):
        return False  # UTF-16 text is half NUL bytes
    n_control = len(sample) - len(sample.translate(None, CONTROL_BYTES))
    return n_control > MAX_CONTROL_BYTE_FRACTION * len(sample)


def decode_html(body: bytes, http_charset: str | None) -> tuple[str, str, str] | None:
    """(text, encoding, source) by the HTTP charset, then the HTML meta charset, then detection.

    A declared charset that is unknown, or that the bytes do not decode under, falls through to the next method.
    None when even the detected encoding leaves more than 1% of the text undecodable.
    """
    for encoding_source, label in (("http", http_charset), ("meta", meta_charset(body))):
        encoding = known_encoding(label)
        text = _decode_strict(body, encoding) if encoding else None
        if text is not None:
            return text.lstrip("\ufeff"), encoding, encoding_source
    encoding = detect_encoding(body)
    text = _decode_strict(body, encoding)
    if text is None:
        text = body.decode(encoding, errors="replace")
        if text.count("\ufffd") > MAX_REPLACEMENT_FRACTION * len(text):
            return None
    return text.lstrip("\ufeff"), encoding, "detected"


def meta_charset(body: bytes) -> str | None:
    match = META_CHARSET.search(body, 0, META_SCAN_BYTES)
    return match.group(1).decode("ascii") if match else None


def known_encoding(label: str | None) -> str | None:
    """The Python codec for a charset label as browsers read it (WHATWG), or None for unknown labels."""
    if not label:
        return None
    return map_encoding_to_html5(label.strip().strip("\"'"), fallback_utf8=False)


def _decode_strict(body: bytes, encoding: str) -> str | None:
    try:
        return body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _is_transfer_decoded(record: WarcRecord) -> bool:
    """True when FastWARC un-chunked or decompressed the payload, so its length differs from Content-Length."""
    headers = record.http_headers if record.is_http_parsed else None
    return headers is not None and bool(headers.get("Transfer-Encoding") or headers.get("Content-Encoding"))


def _read_failure_reason(record: WarcRecord, gzipped: bool) -> str:
    if _is_transfer_decoded(record):
        return "content_decoding_error"
    return "truncated_gzip" if gzipped else "warc_read_error"


def _damaged_reject(stream: BinaryIO, source: str, start: int, end: int | None, gzipped: bool,
                    error: str | None) -> dict:
    """The reject row for the bytes start..end, where no record could be read."""
    fault = check_gzip_member(stream, start, end)[0] if gzipped else None
    return reject_row(f"{source}@{start}", fault or "warc_read_error", error or "no readable WARC record here")


def check_gzip_member(stream: BinaryIO, start: int, end: int | None = None) -> tuple[str | None, int | None]:
    """(fault, member end) for the gzip member at start, reading no further than end.

    fault is None for a whole member, else 'truncated_gzip' (the data stops before the member does) or
    'corrupt_gzip'; the member end is None unless the member is whole. Output is inflated in bounded pieces and
    thrown away.
    """
    stream.seek(start)
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    consumed = 0
    try:
        while not inflater.eof:
            size = SCAN_CHUNK if end is None else min(SCAN_CHUNK, end - start - consumed)
            data = stream.read(size)
            if not data:
                return "truncated_gzip", None
            consumed += len(data)
            while data and not inflater.eof:
                inflater.decompress(data, SCAN_CHUNK)
                data = inflater.unconsumed_tail
    except zlib.error:
        return "corrupt_gzip", None
    return None, start + consumed - len(inflater.unused_data)


def _next_record_start(stream: BinaryIO, start: int, gzipped: bool) -> int | None:
    """The offset of the first record start at or after `start`, or None."""
    marker = GZIP_MAGIC if gzipped else WARC_MAGIC
    pos = start
    while True:
        stream.seek(pos)
        chunk = stream.read(SCAN_CHUNK)
        if len(chunk) < len(marker):
            return None
        found = chunk.find(marker)
        while found != -1:
            candidate = pos + found
            if _is_record_start(stream, candidate, gzipped):
                return candidate
            found = chunk.find(marker, found + 1)
        pos += len(chunk) - len(marker) + 1


def _is_record_start(stream: BinaryIO, offset: int, gzipped: bool) -> bool:
    """Whether a marker found by scanning really starts a record, not just bytes inside another one."""
    if gzipped:
        stream.seek(offset)
        try:
            head = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(stream.read(1024), 16)
        except zlib.error:
            return False
        return head.startswith(b"WARC/")
    if offset == 0:
        return True
    stream.seek(offset - 1)
    return stream.read(1) == b"\n"


def _at_eof(stream: BinaryIO, pos: int) -> bool:
    stream.seek(pos)
    return stream.read(1) == b""
