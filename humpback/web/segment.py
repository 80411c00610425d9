"""HTML -> header segments: the text under each h1..h6, including the parts under its lower-level headers.

The page is parsed by lexbor (selectolax) and walked with an explicit stack, never by recursion, so any depth is
safe for the walk. Lexbor itself slows down quadratically with nesting depth (50,000 nested divs take seconds),
so pages whose markup can nest deeper than `max_depth` are refused before parsing with PageTooComplex, as are
pages with more than `max_nodes` nodes. The caller turns that into a reject 'too_complex'.
Page text is only ever copied: nothing in it is interpreted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from selectolax.lexbor import LexborHTMLParser, LexborNode

DEFAULT_MAX_NODES = 200_000
DEFAULT_MAX_DEPTH = 2_000

# Elements whose whole subtree is chrome, code or UI rather than page text.
DROP_TAGS = frozenset({
    "script", "style", "noscript", "nav", "form", "aside", "template", "svg", "iframe", "object", "embed",
    "canvas", "button", "select", "textarea", "input", "dialog", "head", "math",
})
DROP_ROLES = frozenset({
    "navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "toolbar", "dialog",
})
# Class or id tokens of page chrome in sites that predate <nav>/<footer> (the Python docs footer is one).
CHROME_TOKENS = frozenset({"footer", "site-footer", "sidebar", "navbar", "breadcrumb", "breadcrumbs"})
# <header>/<footer> are chrome at page level, but inside an article or main they hold its title or byline.
PAGE_CHROME_TAGS = frozenset({"header", "footer"})
CONTENT_TAGS = frozenset({"article", "main"})

HEADER_LEVELS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCK_TAGS = frozenset({
    "address", "article", "blockquote", "body", "caption", "center", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "header", "hr", "li", "main", "ol", "p", "section", "summary",
    "table", "tbody", "tfoot", "thead", "tr", "ul",
})
LIST_TAGS = frozenset({"ul", "ol"})
CELL_TAGS = frozenset({"td", "th"})

# Tags that the depth estimate ignores: void elements never nest, and these close themselves.
NON_NESTING_TAGS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
    "wbr", "p", "li", "dt", "dd", "option", "tr", "td", "th",
})
# Comment marks, or a tag's slash and name. The depth estimate skips comments and the raw text of scripts and
# styles, whose "a<b" comparisons are not tags.
TOKEN_RE = re.compile(r"<(?:(!--)|(/?)([A-Za-z][A-Za-z0-9]*))|(-->)")
RAW_TEXT_TAGS = frozenset({"script", "style"})
SPACES_RE = re.compile(r"\s+")
HEADER_ANCHOR_CHARS = "¶#§ \t\n"  # permalink marks that site generators append to header text


@dataclass(frozen=True, slots=True)
class Segment:
    header: str
    level: int
    text: str


class PageTooComplex(ValueError):
    """The page is nested too deeply or has too many nodes to be parsed within bounded time."""

    reason = "too_complex"


def segment_html(html: str, max_nodes: int = DEFAULT_MAX_NODES,
                 max_depth: int = DEFAULT_MAX_DEPTH) -> list[Segment]:
    """The header segments of a page, in document order. Raises PageTooComplex (see the module docstring)."""
    check_nesting(html, max_depth)
    body = LexborHTMLParser(html).body
    if body is None:
        return []
    return segments_from_blocks(_TextWalker(max_nodes).blocks(body))


def check_nesting(html: str, max_depth: int) -> None:
    """Raise PageTooComplex when the open-tag depth of the markup can exceed max_depth.

    A cheap upper bound on the depth lexbor will build: a close tag pops back to its opener, and tags that
    close themselves or never nest are not counted. Pages with fewer tags than max_depth are not scanned.
    """
    if html.count("<") <= max_depth:
        return
    stack: list[str] = []
    open_counts: dict[str, int] = {}
    for closing, name in _tags(html):
        if name in NON_NESTING_TAGS:
            continue
        if not closing:
            stack.append(name)
            open_counts[name] = open_counts.get(name, 0) + 1
            if len(stack) > max_depth:
                raise PageTooComplex(f"markup nested deeper than {max_depth} elements")
        elif open_counts.get(name):
            while True:
                top = stack.pop()
                open_counts[top] -= 1
                if top == name:
                    break


def _tags(html: str) -> Iterator[tuple[bool, str]]:
    """(is a close tag, lower-case name) for each tag, outside comments and script or style text."""
    skip_until = None  # what ends the comment or raw text being skipped: "-->" or a tag name
    for comment_open, closing, name, comment_close in TOKEN_RE.findall(html):
        name = name.lower()
        if skip_until is not None:
            if (comment_close and skip_until == "-->") or (closing and name == skip_until):
                skip_until = None
        elif comment_open:
            skip_until = "-->"
        elif name:
            yield bool(closing), name
            if not closing and name in RAW_TEXT_TAGS:
                skip_until = name


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """A header among the text blocks of a document (shared with humpback.web.text_segment)."""

    level: int
    text: str


class _TextWalker:
    """Turns a parsed body into blocks: text lines (str) and headers (HeaderBlock), in document order."""

    def __init__(self, max_nodes: int):
        self.max_nodes = max_nodes
        self.blocks_out: list[str | HeaderBlock] = []
        self.inline: list[str] = []
        self.header_level = 0  # > 0 while inside a header element
        self.pre_depth = 0
        self.lists: list[list] = []  # one [tag, item count] per open ul/ol
        self.pending_marker = ""

    def blocks(self, body: LexborNode) -> list[str | HeaderBlock]:
        # The stack holds (node, exiting, in_content); exiting entries close an element after its children.
        stack: list[tuple[LexborNode, bool, bool]] = [(body, False, False)]
        n_nodes = 0
        while stack:
            node, exiting, in_content = stack.pop()
            if exiting:
                self._close(node.tag)
                continue
            n_nodes += 1
            if n_nodes > self.max_nodes:
                raise PageTooComplex(f"more than {self.max_nodes} nodes")
            tag = node.tag
            if tag == "-text":
                self.inline.append(node.text_content or "")
                continue
            if tag.startswith("-") or _is_dropped(node, tag, in_content):
                continue  # comments, doctype, chrome
            self._open(tag)
            stack.append((node, True, in_content))
            in_content = in_content or tag in CONTENT_TAGS
            child = node.last_child
            while child is not None:
                stack.append((child, False, in_content))
                child = child.prev
        self._flush()
        return self.blocks_out

    def _open(self, tag: str) -> None:
        if tag in HEADER_LEVELS and not self.header_level:
            self._flush()
            self.header_level = HEADER_LEVELS[tag]
        elif tag == "pre":
            self._flush()
            self.pre_depth += 1
        elif tag == "br":
            self.inline.append("\n" if self.pre_depth else " ")
            self._flush()
        elif tag in LIST_TAGS:
            self._flush()
            self.lists.append([tag, 0])
        elif tag == "li":
            self._flush()
            self.pending_marker = self._list_marker()
        elif tag in BLOCK_TAGS:
            self._flush()
        elif tag in CELL_TAGS and any(piece.strip() for piece in self.inline):
            self.inline.append(" | ")

    def _close(self, tag: str) -> None:
        if tag in HEADER_LEVELS and self.header_level == HEADER_LEVELS[tag]:
            text = _collapse(self._take_inline()).strip(HEADER_ANCHOR_CHARS)
            self.blocks_out.append(HeaderBlock(self.header_level, text))
            self.header_level = 0
        elif tag == "pre":
            self.pre_depth -= 1
            if not self.pre_depth:
                code = self._take_inline().strip("\n").rstrip()
                if code:
                    self.blocks_out.append(self.pending_marker + code)
                    self.pending_marker = ""
        elif tag in LIST_TAGS:
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag in BLOCK_TAGS:
            self._flush()

    def _list_marker(self) -> str:
        if not self.lists:
            return "- "
        current = self.lists[-1]
        current[1] += 1
        indent = "  " * (len(self.lists) - 1)
        return f"{indent}{current[1]}. " if current[0] == "ol" else f"{indent}- "

    def _take_inline(self) -> str:
        text = "".join(self.inline)
        self.inline.clear()
        return text

    def _flush(self) -> None:
        """End the current line, unless inside a header or pre block, whose text ends with the element."""
        if self.header_level or self.pre_depth:
            return
        line = _collapse(self._take_inline()).strip()
        if line:
            self.blocks_out.append(self.pending_marker + line)
            self.pending_marker = ""


def _is_dropped(node: LexborNode, tag: str, in_content: bool) -> bool:
    if tag in DROP_TAGS or (tag in PAGE_CHROME_TAGS and not in_content):
        return True
    attrs = node.attributes  # a plain dict: much faster than node.attrs lookups
    if not attrs:
        return False
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    role = attrs.get("role")
    if role and role.strip().lower() in DROP_ROLES:
        return True
    return _has_chrome_token(attrs.get("class")) or _has_chrome_token(attrs.get("id"))


def _has_chrome_token(value: str | None) -> bool:
    return bool(value) and not CHROME_TOKENS.isdisjoint(value.lower().split())


def _collapse(text: str) -> str:
    return SPACES_RE.sub(" ", text)


def segments_from_blocks(blocks: list[str | HeaderBlock], sep: str = "\n") -> list[Segment]:
    """One segment per header: its blocks up to the next header of the same or a higher level, joined by `sep`.

    Lower-level headers inside a segment stay in its text as blocks of their own (their text alone). Blocks
    before the first header belong to no segment. HTML blocks are lines (sep "\n"); the text segmenter's are
    paragraphs (sep "\n\n").
    """
    header_positions = [i for i, block in enumerate(blocks) if isinstance(block, HeaderBlock)]
    ends = _segment_ends(blocks, header_positions)
    segments = []
    for start in header_positions:
        header = blocks[start]
        lines = (b.text if isinstance(b, HeaderBlock) else b for b in blocks[start + 1:ends[start]])
        segments.append(Segment(header.text, header.level, sep.join(line for line in lines if line)))
    return segments


def _segment_ends(blocks: list[str | HeaderBlock], header_positions: list[int]) -> dict[int, int]:
    """For each header position, the position of the next header at the same or a higher level (or the end)."""
    ends: dict[int, int] = {}
    open_headers: list[int] = []
    for position in header_positions:
        level = blocks[position].level
        while open_headers and blocks[open_headers[-1]].level >= level:
            ends[open_headers.pop()] = position
        open_headers.append(position)
    for position in open_headers:
        ends[position] = len(blocks)
    return ends
