"""Rebuild data/sample/python-docs.warc.gz from the HTML of the Python 3.11 documentation (Debian python3.11-doc).

Usage (from the repository root):

    apt-get install -y python3.11-doc            # puts the pages under /usr/share/doc/python3.11/html
    .venv/bin/python data/sample/build_corpus.py

Without root, unpack the package instead and point the script at it:

    apt-get download python3.11-doc && dpkg -x python3.11-doc_*.deb /tmp/pydoc
    .venv/bin/python data/sample/build_corpus.py --docs-dir /tmp/pydoc/usr/share/doc/python3.11/html

The output is byte-identical on every rebuild from the same package: record ids are uuid5 of the URL, dates are
fixed, gzip members carry no timestamp, and pages are written in sorted order. The FAQ pages (faq/) are left out:
the seed set is built from them. Licence: LICENSE-python-docs.txt next to this script.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import sys
import uuid
from pathlib import Path

DEFAULT_DOCS_DIR = Path("/usr/share/doc/python3.11/html")
DEFAULT_OUT = Path(__file__).resolve().parent / "python-docs.warc.gz"
BASE_URL = "https://docs.python.org/3.11/"
# The release date of Python 3.11.2, the version the Debian package documents.
WARC_DATE = "2023-02-08T00:00:00Z"
HTTP_DATE = "Wed, 08 Feb 2023 00:00:00 GMT"

# Prose-heavy sections whole, plus a few library reference pages for the API-reference style of writing.
PAGE_DIRS = ("tutorial", "howto", "reference", "using", "extending", "installing", "install", "distributing",
             "whatsnew")
LIBRARY_PAGES = ("argparse", "asyncio-task", "sqlite3", "subprocess", "typing", "unittest")
# Real non-HTML resources of the same site: the ingest stage rejects them as 'not_html'.
STYLESHEETS = ("_static/pydoctheme.css", "_static/pygments.css")
EXCLUDED_DIRS = ("faq",)


def select_pages(docs_dir: Path) -> list[str]:
    """Paths relative to docs_dir, sorted, of the HTML pages that go into the sample."""
    pages = [p.relative_to(docs_dir).as_posix() for d in PAGE_DIRS for p in (docs_dir / d).glob("*.html")]
    pages += [f"library/{name}.html" for name in LIBRARY_PAGES]
    return sorted(p for p in pages if p.split("/")[0] not in EXCLUDED_DIRS)


def sha1_digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def record_id(name: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}>"


def warc_record(warc_type: str, block: bytes, content_type: str, extra: list[tuple[str, str]]) -> bytes:
    headers = [("WARC-Type", warc_type), *extra, ("WARC-Date", WARC_DATE), ("Content-Type", content_type),
               ("WARC-Block-Digest", sha1_digest(block)), ("Content-Length", str(len(block)))]
    head = "WARC/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode() + block + b"\r\n\r\n"


def warcinfo_record(filename: str) -> bytes:
    fields = (
        "software: humpback data/sample/build_corpus.py\r\n"
        "format: WARC File Format 1.1\r\n"
        f"description: HTML pages of the Python 3.11 documentation, as served under {BASE_URL}\r\n"
        "license: PSF License Version 2; code examples also Zero-Clause BSD (see LICENSE-python-docs.txt)\r\n"
    ).encode()
    extra = [("WARC-Record-ID", record_id("warcinfo:" + filename)), ("WARC-Filename", filename)]
    return warc_record("warcinfo", fields, "application/warc-fields", extra)


def response_record(url: str, payload: bytes, mime: str, warcinfo_id: str) -> bytes:
    http_head = (f"HTTP/1.1 200 OK\r\nDate: {HTTP_DATE}\r\nContent-Type: {mime}; charset=utf-8\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n").encode()
    extra = [("WARC-Record-ID", record_id(url)), ("WARC-Target-URI", url), ("WARC-Warcinfo-ID", warcinfo_id),
             ("WARC-Payload-Digest", sha1_digest(payload))]
    return warc_record("response", http_head + payload, "application/http; msgtype=response", extra)


def build(docs_dir: Path, out: Path) -> int:
    """Write the WARC file (one gzip member per record, warcinfo first); return the number of responses."""
    warcinfo = warcinfo_record(out.name)
    warcinfo_id = record_id("warcinfo:" + out.name)
    resources = [(p, "text/html") for p in select_pages(docs_dir)] + [(p, "text/css") for p in STYLESHEETS]
    with open(out, "wb") as handle:
        handle.write(gzip.compress(warcinfo, compresslevel=9, mtime=0))
        for path, mime in resources:
            record = response_record(BASE_URL + path, (docs_dir / path).read_bytes(), mime, warcinfo_id)
            handle.write(gzip.compress(record, compresslevel=9, mtime=0))
    return len(resources)


def verify(out: Path, expected: int) -> None:
    """Read the file back with FastWARC and check every record's block digest."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    responses = 0
    for record in ArchiveIterator(str(out), parse_http=False):
        if not record.verify_block_digest():
            raise SystemExit(f"bad block digest in {record.record_id}")
        responses += record.record_type == WarcRecordType.response
    if responses != expected:
        raise SystemExit(f"wrote {expected} responses, read back {responses}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs-dir", type=Path, default=DEFAULT_DOCS_DIR, help="the python3.11-doc html folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the WARC.gz file to write")
    args = parser.parse_args(argv)
    if not (args.docs_dir / "tutorial" / "index.html").exists():
        parser.error(f"{args.docs_dir} does not hold the Python HTML docs (install python3.11-doc)")
    n = build(args.docs_dir, args.out)
    verify(args.out, n)
    print(f"{args.out}: {n} responses, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
