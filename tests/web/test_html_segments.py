import pytest

from humpback.web.segment import PageTooComplex, Segment, segment_html

PAGE = """<html><head><title>Title</title><style>p { color: red }</style></head><body>
<p>Text before any header belongs to no segment.</p>
<h1>Guide</h1>
<p>Intro.</p>
<h2>Install</h2>
<p>Get it.</p>
<h3>On Linux</h3>
<p>Use apt.</p>
<h3>On Windows</h3>
<p>Use the installer.</p>
<h2>Use</h2>
<p>Run it.</p>
</body></html>"""


def by_header(segments):
    return {s.header: s for s in segments}


def test_one_segment_per_header_in_document_order():
    segments = segment_html(PAGE)
    assert [(s.header, s.level) for s in segments] == [
        ("Guide", 1), ("Install", 2), ("On Linux", 3), ("On Windows", 3), ("Use", 2)]
    assert all(isinstance(s, Segment) for s in segments)


def test_a_segment_contains_its_subsections_with_their_header_lines():
    install = by_header(segment_html(PAGE))["Install"]
    assert install.text == "Get it.\nOn Linux\nUse apt.\nOn Windows\nUse the installer."


def test_a_segment_ends_at_the_next_header_of_the_same_or_higher_level():
    segments = by_header(segment_html(PAGE))
    assert segments["On Linux"].text == "Use apt."
    assert segments["Use"].text == "Run it."
    assert "Run it." not in segments["Install"].text


def test_a_top_level_segment_holds_everything_under_it():
    guide = by_header(segment_html(PAGE))["Guide"]
    assert guide.text.startswith("Intro.\nInstall\nGet it.")
    assert guide.text.endswith("Use\nRun it.")
    assert "Text before any header" not in guide.text


def test_lists_keep_their_markers_and_nesting():
    html = ("<h2>Steps</h2><ul><li>one</li><li>two<ul><li>two a</li></ul></li></ul>"
            "<ol><li>first</li><li><p>second</p></li></ol>")
    [segment] = segment_html(html)
    assert segment.text == "- one\n- two\n  - two a\n1. first\n2. second"


def test_paragraphs_become_lines_and_inline_whitespace_collapses():
    html = "<h2>H</h2><p>Some   <b>bold</b>\n   words.</p><p>Next<br>line</p><div>Block</div>"
    [segment] = segment_html(html)
    assert segment.text == "Some bold words.\nNext\nline\nBlock"


def test_pre_blocks_keep_their_newlines_and_indentation():
    html = "<h2>Code</h2><p>Example:</p><pre>def f():\n    return 1\n\nx = f()\n</pre><p>After.</p>"
    [segment] = segment_html(html)
    assert segment.text == "Example:\ndef f():\n    return 1\n\nx = f()\nAfter."


def test_table_cells_are_separated_on_their_row_line():
    [segment] = segment_html("<h2>T</h2><table><tr><th>Op</th><th>Result</th></tr>"
                             "<tr><td>x + y</td><td>sum</td></tr></table>")
    assert segment.text == "Op | Result\nx + y | sum"


def test_scripts_styles_navigation_and_page_chrome_are_dropped():
    html = """<body>
    <header><h1>Site name</h1><p>tagline</p></header>
    <nav><h2>Menu</h2><a>Home</a></nav>
    <h2>Article</h2>
    <p>Kept text.</p>
    <script>var secret = "script text";</script>
    <noscript>enable js</noscript>
    <form><h3>Search form</h3><input value="q"></form>
    <aside><h3>Related</h3><p>aside text</p></aside>
    <div role="navigation"><h3>Nav by role</h3></div>
    <div class="footer">footer by class</div>
    <template><p>template text</p></template>
    <footer><p>page footer</p></footer>
    </body>"""
    [segment] = segment_html(html)
    assert segment == Segment("Article", 2, "Kept text.")


def test_header_and_footer_inside_an_article_are_content():
    html = "<header>Site</header><article><header><h1>Post title</h1></header><p>Body.</p></article>"
    assert segment_html(html) == [Segment("Post title", 1, "Body.")]


def test_permalink_marks_are_trimmed_from_headers():
    html = '<h2>3.1. Numbers<a class="headerlink" href="#numbers">¶</a></h2><p>x</p>'
    assert segment_html(html)[0].header == "3.1. Numbers"


def test_a_header_without_text_gives_an_empty_header():
    assert segment_html('<h2><img src="logo.png"></h2><p>text</p>') == [Segment("", 2, "text")]


def test_page_text_is_copied_never_interpreted():
    payload = "{{7*7}} ${jndi:ldap://x/a} <%= system('ls') %> `rm -rf /` $(whoami)"
    html = "<h2>Data</h2><p>" + payload.replace("<", "&lt;").replace(">", "&gt;") + "</p>"
    assert segment_html(html)[0].text == payload


def test_a_page_without_headers_has_no_segments():
    assert segment_html("<p>only a paragraph</p>") == []
    assert segment_html("") == []


def test_tens_of_thousands_of_nested_elements_are_refused_not_recursed():
    html = "<h2>Deep</h2>" + "<div>" * 50_000 + "bottom" + "</div>" * 50_000
    with pytest.raises(PageTooComplex) as caught:
        segment_html(html)
    assert caught.value.reason == "too_complex"


def test_deep_but_allowed_nesting_is_walked_without_recursion():
    html = "<h2>Deep</h2>" + "<div>" * 1_500 + "bottom" + "</div>" * 1_500
    assert segment_html(html) == [Segment("Deep", 2, "bottom")]


def test_stray_close_tags_do_not_hide_deep_nesting():
    html = "<h2>Deep</h2>" + "<div></span>" * 5_000
    with pytest.raises(PageTooComplex):
        segment_html(html)


def test_too_many_nodes_are_refused():
    html = "<h2>Wide</h2>" + "<p>x</p>" * 2_000
    assert len(segment_html(html, max_nodes=10_000)[0].text.split("\n")) == 2_000
    with pytest.raises(PageTooComplex):
        segment_html(html, max_nodes=1_000)


def test_comparisons_in_scripts_and_tags_in_comments_do_not_count_as_nesting():
    html = ("<h2>Code</h2><script>" + "if (a<b) { c<d }" * 3_000 + "</script>"
            "<!--" + "<div>" * 3_000 + "--><p>ok</p>")
    assert segment_html(html) == [Segment("Code", 2, "ok")]
