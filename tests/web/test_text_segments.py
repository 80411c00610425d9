import pytest

from humpback.web.segment import Segment, segment_html
from humpback.web.text_segment import paragraph_groups, segment_text, text_blocks

DOC = """# Guide

Intro.

## Install

Get it.

### On Linux

Use apt.

### On Windows

Use the installer.

## Use

Run it.
"""

# The same document as HTML: both segmenters apply one rule (humpback.web.segment.segments_from_blocks).
PAGE = ("<h1>Guide</h1><p>Intro.</p><h2>Install</h2><p>Get it.</p><h3>On Linux</h3><p>Use apt.</p>"
        "<h3>On Windows</h3><p>Use the installer.</p><h2>Use</h2><p>Run it.</p>")


def by_header(segments):
    return {s.header: s for s in segments}


def test_one_segment_per_header_in_document_order_as_html_segments():
    segments = segment_text(DOC)
    assert all(isinstance(s, Segment) for s in segments)
    assert [(s.header, s.level) for s in segments] == [
        ("Guide", 1), ("Install", 2), ("On Linux", 3), ("On Windows", 3), ("Use", 2)]
    html = segment_html(PAGE)
    assert [(s.header, s.level) for s in segments] == [(s.header, s.level) for s in html]
    # Same parts; text blocks are paragraphs, separated by a blank line where HTML lines are separated by one newline.
    assert [s.text.replace("\n\n", "\n") for s in segments] == [s.text for s in html]


def test_a_level_2_section_contains_its_level_3_parts_and_ends_at_the_next_level_2():
    segments = by_header(segment_text(DOC))
    assert segments["Install"].text == "Get it.\n\nOn Linux\n\nUse apt.\n\nOn Windows\n\nUse the installer."
    assert segments["On Linux"].text == "Use apt."
    assert "Run it." not in segments["Install"].text
    assert segments["Guide"].text.startswith("Intro.\n\nInstall\n\nGet it.")
    assert segments["Guide"].text.endswith("Use\n\nRun it.")


def test_setext_headers_are_level_1_and_2():
    doc = "Title\n=====\n\nIntro text.\n\nPart one\n--------\nFirst.\n\nPart two\n---\nSecond.\n"
    segments = segment_text(doc)
    assert [(s.header, s.level) for s in segments] == [("Title", 1), ("Part one", 2), ("Part two", 2)]
    assert by_header(segments)["Part one"].text == "First."
    assert by_header(segments)["Title"].text == "Intro text.\n\nPart one\n\nFirst.\n\nPart two\n\nSecond."


def test_a_dash_rule_after_a_blank_line_is_a_thematic_break_not_a_header():
    doc = "## Section\n\nFirst paragraph.\n\n---\n\nSecond paragraph.\n\n***\nThird.\n"
    [segment] = segment_text(doc)
    assert segment.header == "Section"
    assert segment.text == "First paragraph.\n\nSecond paragraph.\n\nThird."


def test_a_rule_under_a_multi_line_paragraph_or_a_list_item_is_no_header():
    doc = "## S\n\nline one\nline two\n---\n- item\n---\n> quote\n===\n"
    [segment] = segment_text(doc)
    assert segment.header == "S"
    assert segment.text == "line one\nline two\n\n- item\n\n> quote\n==="


def test_code_fences_stay_whole_and_their_hash_lines_are_no_headers():
    doc = ("# Code\n\nExample:\n\n```markdown\n---\ntitle: x\n---\n# Not a header\n\n## Nor this\nText\n===\n```\n\n"
           "~~~python\n# a comment\n\n\nx = 1  # another\n~~~\n\nAfter.\n\n## Next\n\nEnd.\n")
    segments = segment_text(doc)
    assert [(s.header, s.level) for s in segments] == [("Code", 1), ("Next", 2)]
    code = by_header(segments)["Code"].text
    assert "```markdown\n---\ntitle: x\n---\n# Not a header\n\n## Nor this\nText\n===\n```" in code
    assert "~~~python\n# a comment\n\n\nx = 1  # another\n~~~" in code
    assert code.startswith("Example:") and "After." in code


def test_a_fence_closes_only_with_its_own_character_and_an_unclosed_fence_runs_to_the_end():
    doc = "# A\n\n````\n```\n# inside\n~~~\n````\n\n# B\n\n~~~\n# still code\n```\n"
    segments = segment_text(doc)
    assert [s.header for s in segments] == ["A", "B"]
    assert by_header(segments)["A"].text == "````\n```\n# inside\n~~~\n````"
    assert by_header(segments)["B"].text == "~~~\n# still code\n```"


@pytest.mark.parametrize("line, expected", [
    ("# Title #", ("Title", 1)),
    ("###### Six ######", ("Six", 6)),
    ("   ## Indented three", ("Indented three", 2)),
    ("## C# and F#", ("C# and F#", 2)),
    ("## Options { #options .wide data-toc-label='x' }", ("Options", 2)),
    ("## Using {braces}", ("Using {braces}", 2)),
    ("#", ("", 1)),
])
def test_atx_header_lines(line, expected):
    [segment] = segment_text(f"{line}\nBody.\n")
    assert (segment.header, segment.level) == expected
    assert segment.text == "Body."


@pytest.mark.parametrize("line", ["#hashtag", "####### seven", "    # indented code"])
def test_lines_that_are_not_headers(line):
    assert not any(s.level for s in segment_text(f"Some text.\n\n{line}\n"))


def test_front_matter_is_left_out():
    doc = "---\ntitle: Page\nhide:\n  - toc\n---\n\nHeading\n=======\n\nBody.\n"
    assert [(s.header, s.level, s.text) for s in segment_text(doc)] == [("Heading", 1, "Body.")]


def test_crlf_line_endings():
    assert [(s.header, s.text) for s in segment_text("# H\r\n\r\nOne\r\ntwo\r\n")] == [("H", "One\ntwo")]


def paragraph(i: int, n_chars: int = 290) -> str:
    words = f"Paragraph {i} says something about topic {i}. "
    return (words * (n_chars // len(words) + 1))[:n_chars].rstrip()


def test_a_document_without_headers_is_cut_into_paragraph_groups_inside_the_window():
    paragraphs = [paragraph(i) for i in range(25)]  # about 7,300 characters
    segments = segment_text("\n\n".join(paragraphs), min_chars=600, max_chars=3000, title="Doc title")
    assert len(segments) == 3
    assert all(s.level == 0 and s.header == "Doc title" for s in segments)
    assert all(600 <= len(s.text) <= 3000 for s in segments)
    # Cut at paragraph boundaries, nothing lost or reordered.
    assert "\n\n".join(s.text for s in segments) == "\n\n".join(paragraphs)
    # About equal shares, not 3,000 + 3,000 + a short rest.
    assert max(len(s.text) for s in segments) - min(len(s.text) for s in segments) < 600


def test_a_short_document_without_headers_is_one_group():
    segments = segment_text("Just one line.\n\nAnd another.")
    assert [(s.header, s.level, s.text) for s in segments] == [("", 0, "Just one line.\n\nAnd another.")]


def test_a_paragraph_longer_than_the_window_is_cut_at_sentence_ends():
    sentences = [f"Sentence number {i} is here and it carries a little meaning." for i in range(120)]
    text = " ".join(sentences)  # one paragraph of about 7,000 characters, no newlines
    groups = paragraph_groups(text_blocks(text), 600, 3000)
    assert len(groups) >= 3 and all(600 <= len(g) <= 3000 for g in groups)
    assert " ".join(groups) == text
    assert all(g.endswith(".") for g in groups)


def test_a_long_code_block_is_never_cut():
    code = "```\n" + "\n".join(f"line_{i} = {i}" for i in range(400)) + "\n```"
    groups = paragraph_groups(text_blocks(f"Intro paragraph.\n\n{code}\n\nOutro."), 600, 3000)
    assert code in groups


def test_text_before_the_first_header_is_a_level_0_group():
    segments = segment_text("An opening paragraph.\n\n# First\n\nBody.\n", title="T")
    assert [(s.header, s.level, s.text) for s in segments] == [("T", 0, "An opening paragraph."), ("First", 1, "Body.")]


def test_empty_documents_have_no_segments():
    assert segment_text("") == []
    assert segment_text("\n \n\t\n") == []


def test_the_window_is_checked():
    with pytest.raises(ValueError):
        segment_text("x", min_chars=10, max_chars=5)
