"""Plain text / Markdown -> header segments, with the same rule and the same Segment rows as HTML.

A document's lines become blocks (paragraphs, fenced code blocks, headers) and
`humpback.web.segment.segments_from_blocks` cuts them exactly as it cuts a page: one segment per header, holding
everything up to the next header of the same or a higher level, so a level-2 section contains its level-3 parts
(each sub-header's text stays in it as a paragraph of its own). Segment text keeps the document's own lines;
paragraphs are separated by one blank line.

Headers (CommonMark's rules, made stricter where plain text would be misread):
- ATX: `#` .. `######`, at most 3 spaces of indentation, then a space or the end of the line (`#hashtag` is
  text); a closing run of `#`s is dropped, as is a trailing attribute list such as `{ #anchor .class }`.
- Setext: a line of `=` (level 1) or `-` (level 2) directly under ONE line of paragraph text. CommonMark would
  make a whole multi-line paragraph the header; in plain text that is a ruled-off paragraph, so the underline is
  then a thematic break (`-`) or a line of text (`=`). A `---` line after a blank line, or under a list item,
  quote, header or another rule, is a thematic break: it separates paragraphs and is not kept.
- Fenced code blocks (``` or ~~~, closed by a fence of the same character at least as long; an unclosed fence
  runs to the end) stay whole, fence lines included, and nothing inside them is a header or a break. Lines
  indented 4+ spaces are never headers.
- Front matter (a `---` line opening the document, then a `key:` line, closed by `---` or `...` within
  MAX_FRONT_MATTER_LINES) is metadata, not text, and is left out.

Text outside every header section (the whole document when it has no header, else the part before its first
header) is cut into paragraph groups inside the length window [min_chars, max_chars] (the paper's 600..3,000,
the `segment` settings): consecutive paragraphs, cut at paragraph boundaries so that the groups are about equally
long and none is longer than max_chars. A paragraph longer than max_chars is cut at line ends, then sentence
ends, then spaces; a code block never is (a longer one is a group of its own). Such groups have level 0 and
the header `title` ("" by default; the empty_header rule judges headers of levels 1-6 only, so these are kept).
HTML pages leave text before their first header out; a text document's opening text is its content.
"""
from __future__ import annotations

import math
import re

from humpback.quality.rules import DEFAULT_THRESHOLDS
from humpback.web.segment import HeaderBlock, Segment, segments_from_blocks

DEFAULT_MIN_CHARS = int(DEFAULT_THRESHOLDS["min_chars"])
DEFAULT_MAX_CHARS = int(DEFAULT_THRESHOLDS["max_chars"])
PARAGRAPH_SEP = "\n\n"
MAX_FRONT_MATTER_LINES = 200
FRONT_MATTER_KEY_RE = re.compile(r"^[A-Za-z_][\w-]*[ \t]*:")  # front matter opens with a YAML key

ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
ATX_CLOSING_RE = re.compile(r"(?:^|[ \t]+)#+$")
SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
THEMATIC_BREAK_RE = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
FENCE_RE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
# A line that cannot be a setext header's text: list items, quotes, table rows, indented code.
NOT_SETEXT_TEXT_RE = re.compile(r"^(?: {4,}|\t| {0,3}(?:[-+*][ \t]|\d{1,9}[.)](?:[ \t]|$)|>|\|))")
# Attribute lists of Python-Markdown / Pandoc / kramdown at the end of a header: `{ #id .class key=value }`.
ATTR_LIST_RE = re.compile(r"[ \t]+\{:?[ \t]*(?:[#.][\w-]|[\w-]+=)[^{}]*\}$")
SENTENCE_END_RE = re.compile(r"(?<=[.!?])[ \t]+(?=\S)")


def segment_text(text: str, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = DEFAULT_MAX_CHARS,
                 title: str = "") -> list[Segment]:
    """The segments of a text document, in document order: paragraph groups of the text before the first header
    (all of it when there is none; level 0, header `title`), then one segment per header (see the module
    docstring). Raises ValueError unless 0 <= min_chars <= max_chars and max_chars > 0."""
    if not 0 <= min_chars <= max_chars or max_chars <= 0:
        raise ValueError(f"need 0 <= min_chars <= max_chars and max_chars > 0, got {min_chars}, {max_chars}")
    blocks = text_blocks(text)
    first_header = next((i for i, block in enumerate(blocks) if isinstance(block, HeaderBlock)), len(blocks))
    groups = paragraph_groups(blocks[:first_header], min_chars, max_chars)
    return [Segment(title, 0, group) for group in groups] + segments_from_blocks(blocks, sep=PARAGRAPH_SEP)


def text_blocks(text: str) -> list[str | HeaderBlock]:
    """The document as blocks in order: paragraphs and code blocks (str, lines as written) and headers."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[str | HeaderBlock] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append("\n".join(paragraph))
            paragraph.clear()

    i = _front_matter_end(lines)
    while i < len(lines):
        line = lines[i].rstrip()
        fence = FENCE_RE.match(line)
        if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
            flush()
            end = _fence_end(lines, i, fence.group(2))
            blocks.append("\n".join(raw.rstrip() for raw in lines[i:end]).strip("\n"))
            i = end
            continue
        i += 1
        if not line.strip():
            flush()
            continue
        atx = ATX_RE.match(line)
        if atx:
            flush()
            blocks.append(HeaderBlock(len(atx.group(1)), _header_text(ATX_CLOSING_RE.sub("", atx.group(2) or ""))))
            continue
        setext = SETEXT_RE.match(line)
        if setext and len(paragraph) == 1 and not NOT_SETEXT_TEXT_RE.match(paragraph[0]):
            level = 1 if setext.group(1)[0] == "=" else 2
            blocks.append(HeaderBlock(level, _header_text(paragraph.pop())))
            continue
        if THEMATIC_BREAK_RE.match(line):
            flush()
            continue
        paragraph.append(line)
    flush()
    return blocks


def paragraph_groups(blocks: list[str | HeaderBlock], min_chars: int = DEFAULT_MIN_CHARS,
                     max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Consecutive paragraphs joined into texts inside [min_chars, max_chars] wherever the paragraphs allow it.

    Header blocks are read as paragraphs of their text. Greedy, in one pass: a group ends at the paragraph
    boundary nearest to an equal share of what is left (the rest split into as few groups of at most max_chars
    as possible), never past max_chars, and not before min_chars unless the next paragraph would pass max_chars.
    Only text shorter than min_chars in all, or cut short by a paragraph that fills a group alone, gives a
    group under min_chars; only a code block longer than max_chars gives one over it.
    """
    units: list[tuple[str, str]] = []  # (text, separator before it)
    for block in blocks:
        text = block.text if isinstance(block, HeaderBlock) else block
        if text.strip():
            units += _pieces(text, max_chars, PARAGRAPH_SEP)
    groups: list[str] = []
    current: list[tuple[str, str]] = []
    size = 0
    rest = sum(len(text) + len(sep) for text, sep in units) - (len(units[0][1]) if units else 0)
    target = _target(rest, max_chars)
    for text, sep in units:
        added = len(text) + (len(sep) if current else 0)
        if current and (size + added > max_chars or (
                size >= min_chars and size + added > target and target - size <= size + added - target)):
            groups.append(_join(current))
            rest -= size + len(sep)
            target = _target(rest, max_chars)
            current, size, added = [], 0, len(text)
        current.append((text, sep))
        size += added
    if current:
        groups.append(_join(current))
    return groups


def _target(rest: int, max_chars: int) -> float:
    return rest / max(1, math.ceil(rest / max_chars))


def _join(units: list[tuple[str, str]]) -> str:
    return units[0][0] + "".join(sep + text for text, sep in units[1:])


def _pieces(text: str, max_chars: int, sep: str) -> list[tuple[str, str]]:
    """The paragraph as one unit, or cut at line ends, sentence ends, then spaces until each piece fits.

    A fenced code block is never cut.
    """
    if len(text) <= max_chars or FENCE_RE.match(text.split("\n", 1)[0]):
        return [(text, sep)]
    for splitter, inner_sep in ((re.compile(r"\n"), "\n"), (SENTENCE_END_RE, " ")):
        parts = [part for part in splitter.split(text) if part.strip()]
        if len(parts) > 1:
            pieces = [(parts[0], sep)] + [(part, inner_sep) for part in parts[1:]]
            return [piece for part, part_sep in pieces for piece in _pieces(part, max_chars, part_sep)]
    return _cut_at_spaces(text, max_chars, sep)


def _cut_at_spaces(text: str, max_chars: int, sep: str) -> list[tuple[str, str]]:
    """Pieces of at most max_chars, cut at the last space before the limit (hard cuts where there is none)."""
    pieces: list[tuple[str, str]] = []
    next_sep = sep
    while len(text) > max_chars:
        cut = text.rfind(" ", 1, max_chars + 1)
        if cut <= 0:  # no space to cut at: a hard cut, rejoined without a space
            pieces.append((text[:max_chars], next_sep))
            text, next_sep = text[max_chars:], ""
        else:
            pieces.append((text[:cut], next_sep))
            text, next_sep = text[cut:].lstrip(" "), " "
    if text:
        pieces.append((text, next_sep))
    return pieces


def _header_text(text: str) -> str:
    return ATTR_LIST_RE.sub("", text.strip()).strip()


def _fence_end(lines: list[str], start: int, opener: str) -> int:
    """The index after the line that closes the fence opened at `start` (len(lines) when none does)."""
    closing = re.compile(rf"^ {{0,3}}{re.escape(opener[0])}{{{len(opener)},}}[ \t]*$")
    for i in range(start + 1, len(lines)):
        if closing.match(lines[i].rstrip()):
            return i + 1
    return len(lines)


def _front_matter_end(lines: list[str]) -> int:
    """The index of the first line after a front-matter block opening the document (0 when there is none)."""
    if len(lines) < 2 or lines[0].rstrip() != "---" or not FRONT_MATTER_KEY_RE.match(lines[1]):
        return 0
    for i in range(1, min(len(lines), MAX_FRONT_MATTER_LINES + 1)):
        if lines[i].rstrip() in ("---", "..."):
            return i + 1
    return 0
