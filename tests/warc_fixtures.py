"""Build small WARC files in tests: raw record bytes, one gzip member per record, exactly as crawlers write them."""
from __future__ import annotations

import gzip
import uuid
from pathlib import Path

HTML_UTF8 = "text/html; charset=utf-8"


def page_html(title: str = "Hello", paragraph: str = "Some text.") -> bytes:
    return f"<html><body><h1>{title}</h1><p>{paragraph}</p></body></html>".encode()


def http_response(body: bytes, status: str = "200 OK", content_type: str | None = HTML_UTF8,
                  extra_headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in extra_headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def warc_record(block: bytes, warc_type: str = "response", uri: str = "https://example.com/",
                record_id: str | None = None,
                content_type: str = "application/http; msgtype=response") -> bytes:
    record_id = record_id or f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, uri + warc_type)}>"
    headers = [
        "WARC/1.1",
        f"WARC-Type: {warc_type}",
        f"WARC-Record-ID: {record_id}",
        "WARC-Date: 2023-02-08T00:00:00Z",
        f"WARC-Target-URI: {uri}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(block)}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + block + b"\r\n\r\n"


def response_record(n: int, body: bytes | None = None, **http) -> bytes:
    """The n-th test page: a response record for https://example.com/page-<n>."""
    body = page_html(f"Page {n}") if body is None else body
    return warc_record(http_response(body, **http), uri=f"https://example.com/page-{n}")


def warcinfo_record() -> bytes:
    return warc_record(b"software: humpback-tests\r\n", warc_type="warcinfo", uri="",
                       content_type="application/warc-fields")


def request_record(n: int) -> bytes:
    block = f"GET /page-{n} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode()
    return warc_record(block, warc_type="request", uri=f"https://example.com/page-{n}",
                       content_type="application/http; msgtype=request")


def gzip_member(record: bytes) -> bytes:
    return gzip.compress(record, mtime=0)


def write_warc(path: Path, records: list[bytes], compress: bool = True) -> Path:
    """Write records to path, each in its own gzip member when compress is set."""
    path.write_bytes(b"".join(gzip_member(r) if compress else r for r in records))
    return path
