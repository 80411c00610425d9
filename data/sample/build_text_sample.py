"""Rebuild data/sample/python-markdown-docs.jsonl.gz from the documentation sources of Python-Markdown 3.11.3.

Usage (from the repository root):

    .venv/bin/python data/sample/build_text_sample.py                  # downloads the sdist with pip
    .venv/bin/python data/sample/build_text_sample.py --sdist markdown-3.11.3.tar.gz

The sdist is PyPI's `markdown-3.11.3.tar.gz` (`pip download --no-deps --no-binary :all: Markdown==3.11.3`); its
SHA-256 is checked. Every Markdown page under docs/ becomes one JSON line {"id", "url", "text"}, in sorted
order: id is the page's path inside the sdist, url the page on the project's site (mkdocs, directory URLs),
text the file exactly as shipped (front matter included). Left out: docs/reference/ (one-line mkdocstrings
stubs, `::: markdown.util`, that the site fills from docstrings) and docs/playground.md (an HTML widget).
The output is byte-identical on every rebuild: fixed order, no timestamp or file name in the gzip header.
Licence: LICENSE-python-markdown.txt next to this script (BSD-3-Clause).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE, VERSION = "Markdown", "3.11.3"
SDIST_NAME = f"markdown-{VERSION}.tar.gz"
SDIST_SHA256 = "81eb91631dc97ad1efbc76019ef0f80fe90ca49ddf81546752d79989c3bfff3e"
ROOT = f"markdown-{VERSION}/"
DOCS = ROOT + "docs/"
SITE = "https://python-markdown.github.io/"
EXCLUDED = ("reference/", "playground.md")
DEFAULT_OUT = Path(__file__).resolve().parent / "python-markdown-docs.jsonl.gz"


def page_url(doc_path: str) -> str:
    """The site URL of a page, by mkdocs' directory URLs: docs/a/b.md -> SITE/a/b/, docs/a/index.md -> SITE/a/."""
    stem = doc_path.removesuffix(".md")
    if stem == "index" or stem.endswith("/index"):
        stem = stem.removesuffix("index")
    else:
        stem += "/"
    return SITE + stem


def records(sdist: Path) -> list[dict]:
    """One record per selected docs page of the sdist, sorted by path."""
    out = []
    with tarfile.open(sdist, "r:gz") as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            name = member.name
            if not (member.isfile() and name.startswith(DOCS) and name.endswith(".md")):
                continue
            doc_path = name.removeprefix(DOCS)
            if doc_path.startswith(EXCLUDED):
                continue
            text = archive.extractfile(member).read().decode("utf-8")
            out.append({"id": name, "url": page_url(doc_path), "text": text})
    return out


def write_jsonl_gz(rows: list[dict], out: Path) -> None:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
        for row in rows:
            handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    out.write_bytes(buffer.getvalue())


def download_sdist(directory: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    f"{PACKAGE}=={VERSION}", "-d", str(directory)], check=True)
    return directory / SDIST_NAME


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help=f"{SDIST_NAME} (downloaded with pip when not given)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(Path(tmp))
        digest = sha256(sdist)
        if digest != SDIST_SHA256:
            parser.error(f"{sdist} has SHA-256 {digest}, expected {SDIST_SHA256} ({SDIST_NAME})")
        rows = records(sdist)
    write_jsonl_gz(rows, args.out)
    n_chars = sum(len(row["text"]) for row in rows)
    print(f"{args.out}: {len(rows)} pages, {n_chars:,} characters, {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
