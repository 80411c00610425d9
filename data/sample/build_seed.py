"""Build data/sample/seed.jsonl from the FAQ pages of the Python 3.11 documentation.

Every FAQ question is a section header; its answer is the section's own text (up to the next header).
Source: the Debian package python3.11-doc (HTML under /usr/share/doc/python3.11/html/faq/), licensed under
the PSF License Version 2 (see LICENSE-python-faq.txt). The pairs are human-written, not model-generated.

    apt-get install -y python3.11-doc
    .venv/bin/python data/sample/build_seed.py

Without root, unpack the package instead and point the script at it:

    apt-get download python3.11-doc && dpkg -x python3.11-doc_*.deb /tmp/pydoc
    .venv/bin/python data/sample/build_seed.py --faq-dir /tmp/pydoc/usr/share/doc/python3.11/html/faq

The output is deterministic: pages in file-name order, questions in document order, fixed key order.
Answers are plain text: paragraphs separated by a blank line, list items as "- " / "1. ", inline code in
backticks and code blocks fenced with ```.
"""

import argparse
import json
import re
from html.parser import HTMLParser
from pathlib import Path

DEFAULT_FAQ_DIR = Path("/usr/share/doc/python3.11/html/faq")
DEFAULT_OUT = Path(__file__).with_name("seed.jsonl")
SOURCE_PREFIX = "python-3.11-faq"
LICENSE = "PSF-2.0"

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
BLOCKS = {"p", "pre", "li", "ul", "ol", "blockquote", "div", "dt", "dd", "dl", "table", "tr"}
SKIPPED = {"nav", "script", "style"}
VOID = {"br", "hr", "img", "input", "link", "meta", "wbr"}  # no end tag, so never counted as nesting


class _Section:
    def __init__(self, anchor, order):
        self.anchor = anchor
        self.order = order
        self.heading = []
        self.blocks = []


class FaqPageParser(HTMLParser):
    """Collects (anchor, question, answer) for every header section inside the page's main body."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections = []
        self._open = []
        self._body_depth = 0  # div nesting depth inside <div class="body">; 0 = outside
        self._skip_depth = 0
        self._in_heading = False
        self._in_pre = False
        self._line = []
        self._list_stack = []
        self._pending_prefix = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if not self._body_depth:
            if tag == "div" and attrs.get("class") == "body":
                self._body_depth = 1
            return
        if tag in VOID:
            return
        if tag == "div":
            self._body_depth += 1
        if self._skip_depth or tag in SKIPPED or "headerlink" in (attrs.get("class") or ""):
            self._skip_depth += 1
            return
        if tag == "section":
            self._flush()
            self._open.append(_Section(attrs.get("id", ""), len(self.sections) + len(self._open)))
        elif tag in HEADINGS:
            self._flush()
            self._in_heading = True
        elif tag in BLOCKS:
            self._start_block(tag)
        elif tag == "code" and not self._in_pre:
            self._line.append("`")

    def handle_endtag(self, tag):
        if not self._body_depth or tag in VOID:
            return
        if tag == "div":
            self._body_depth -= 1
        if self._skip_depth:
            self._skip_depth -= 1
            return
        if tag == "section":
            self._flush()
            if self._open:
                self.sections.append(self._open.pop())
        elif tag in HEADINGS:
            self._in_heading = False
        elif tag in BLOCKS:
            self._end_block(tag)
        elif tag == "code" and not self._in_pre:
            self._line.append("`")

    def handle_data(self, data):
        if not self._body_depth or self._skip_depth or not self._open:
            return
        if self._in_heading:
            self._open[-1].heading.append(data)
        else:
            self._line.append(data)

    def _start_block(self, tag):
        self._flush()
        if tag in {"ul", "ol"}:
            self._list_stack.append([tag, 0])
        elif tag == "li" and self._list_stack:
            kind = self._list_stack[-1]
            kind[1] += 1
            self._pending_prefix = f"{kind[1]}. " if kind[0] == "ol" else "- "
        elif tag == "pre":
            self._in_pre = True

    def _end_block(self, tag):
        if tag == "pre":
            code = "".join(self._line).rstrip("\n")
            self._line = []
            self._in_pre = False
            self._add_block(f"```\n{code}\n```")
            return
        self._flush()
        if tag in {"ul", "ol"} and self._list_stack:
            self._list_stack.pop()

    def _flush(self):
        text = re.sub(r"[ \t\r\n]+", " ", "".join(self._line)).strip()
        text = text.replace("``", "")  # an empty inline code span
        self._line = []
        if text:
            self._add_block(text)

    def _add_block(self, text):
        if not self._open:
            return
        self._open[-1].blocks.append(self._pending_prefix + text)
        self._pending_prefix = ""


def faq_pairs(page_path):
    """Yields (anchor, question, answer) for every section of one FAQ page that has text of its own."""
    parser = FaqPageParser()
    parser.feed(page_path.read_text(encoding="utf-8"))
    parser.close()
    for section in sorted(parser.sections, key=lambda s: s.order):
        question = re.sub(r"\s+", " ", "".join(section.heading)).strip()
        answer = _join_blocks(section.blocks)
        if question and answer:
            yield section.anchor, question, answer


def _join_blocks(blocks):
    # consecutive list items stay on adjacent lines; everything else is a paragraph
    out = []
    for block in blocks:
        is_item = bool(re.match(r"(- |\d+\. )", block))
        if out and is_item and re.match(r"(- |\d+\. )", out[-1].split("\n")[-1]):
            out[-1] += "\n" + block
        else:
            out.append(block)
    return "\n\n".join(out).strip()


def seed_records(faq_dir):
    for page in sorted(faq_dir.glob("*.html")):
        if page.stem == "index":
            continue
        for anchor, question, answer in faq_pairs(page):
            yield {
                "instruction": question,
                "output": answer,
                "source": f"{SOURCE_PREFIX}:{page.stem}#{anchor}",
                "license": LICENSE,
            }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faq-dir", type=Path, default=DEFAULT_FAQ_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.faq_dir.is_dir():
        raise SystemExit(f"{args.faq_dir} not found: install the Debian package python3.11-doc")
    records = list(seed_records(args.faq_dir))
    with args.out.open("w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} pairs to {args.out}")


if __name__ == "__main__":
    main()
