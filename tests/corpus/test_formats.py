"""Each format in, with exact offsets: text (LF, CRLF, CR, BOM), Markdown front matter, HTML, PDF pages.

No model: only the loader and, for the offsets of passages, the chunker with the real WordPiece
tokenizer read from the packaged model's tokenizer.json.
"""

from pathlib import Path

import pytest
from fpdf import FPDF
from tokenizers import Tokenizer

from rag.corpus.chunking import ChunkerParams, chunk_document
from rag.corpus.documents import load_corpus, load_document, page_of
from rag.encoding.model import resolve_model

PARAGRAPHS = [
    "The first paragraph talks about rivers and how they carry sediment down to the sea over many long years.",
    "A second paragraph describes mountains, which rise where plates of the crust collide and fold upward.",
]
TEXT = "River Notes\n\n" + PARAGRAPHS[0] + "\n\nMountains\n\n" + PARAGRAPHS[1] + "\n"


@pytest.fixture(scope="module")
def count_tokens():
    tokenizer = Tokenizer.from_file(str(resolve_model("default").local_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _assert_exact(doc, count_tokens):
    """Every paragraph and every passage is the slice of the served text its offsets name."""
    passages = chunk_document(doc, count_tokens, ChunkerParams(max_tokens=40, min_chars=0))
    assert passages
    for p in passages:
        assert doc.text[p.start : p.end] == p.text
        for start, end in p.sentences:
            assert p.start <= start < end <= p.end
    return passages


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no-BOM", "BOM"])
def test_text_with_any_line_ending_and_bom_has_the_same_paragraphs_and_exact_offsets(tmp_path, count_tokens, ending, bom):
    (tmp_path / "notes.txt").write_bytes(bom + TEXT.replace("\n", ending).encode("utf-8"))
    doc = load_document(tmp_path / "notes.txt")
    assert doc.text == TEXT  # served text: BOM dropped, line endings LF
    assert doc.title == "River Notes"  # a first line that reads like a title, no metadata
    assert [doc.text[p.start : p.end] for p in doc.paragraphs] == PARAGRAPHS
    assert [p.section for p in doc.paragraphs] == [None, "Mountains"]
    _assert_exact(doc, count_tokens)


def test_a_first_line_that_is_a_sentence_is_not_a_title(tmp_path):
    (tmp_path / "plain-note.txt").write_text("Just one paragraph of text.\n", encoding="utf-8")
    assert load_document(tmp_path / "plain-note.txt").title == "plain note"


def test_markdown_front_matter_lists_dates_and_quoted_strings(tmp_path, count_tokens):
    (tmp_path / "note.md").write_text(
        "---\r\ntitle: \"A Note: With a Colon\"\r\nauthor:\r\n  - Ann\r\n  - Bob\r\npublished: 2020-03-04\r\n"
        "tags: [a, b]\r\nfurniture: Share this\r\nurl: https://example.org/note\r\n---\r\n"
        "# A Note: With a Colon\r\n\r\nShare this\r\n\r\n" + PARAGRAPHS[0] + "\r\n\r\n## Second part\r\n\r\n" + PARAGRAPHS[1] + "\r\n",
        encoding="utf-8",
    )
    doc = load_document(tmp_path / "note.md")
    assert (doc.title, doc.author, doc.authors, doc.published) == ("A Note: With a Colon", "Ann, Bob", ("Ann", "Bob"), "2020-03-04")
    assert doc.url == "https://example.org/note" and doc.extra["tags"] == ["a", "b"]
    assert [doc.text[p.start : p.end] for p in doc.paragraphs] == PARAGRAPHS  # title heading and furniture out
    assert [p.section for p in doc.paragraphs] == [None, "Second part"]
    _assert_exact(doc, count_tokens)


def test_markdown_without_metadata_takes_its_first_heading_as_title(tmp_path):
    (tmp_path / "n.markdown").write_text("# Field Guide\n\n" + PARAGRAPHS[0] + "\n", encoding="utf-8")
    doc = load_document(tmp_path / "n.markdown")
    assert doc.title == "Field Guide" and [doc.text[p.start : p.end] for p in doc.paragraphs] == PARAGRAPHS[:1]


HTML = """<!DOCTYPE html><html><head><title>Rivers and Mountains | Example Site</title>
<meta name="author" content="Ann Author"><meta property="article:published_time" content="2021-05-06">
<link rel="canonical" href="https://example.org/rivers"><style>body {{ color: red }}</style>
<script>var tracking = "SCRIPT-TEXT";</script></head><body>
<nav><ul><li><a href="/">Home NAV-LINK</a></li><li><a href="/about">About NAV-LINK</a></li></ul></nav>
<div class="cookie-banner" id="cookie-consent">We use cookies COOKIE-TEXT. <button>Accept</button></div>
<main><article><h1>Rivers and Mountains</h1>
<p>{0}</p>
<h2>Mountains</h2>
<p>{1}</p>
<p>A third paragraph, with <b>bold</b> and <code>code</code> inline,
wrapped over two lines in the source.</p>
</article></main>
<footer><p>Copyright FOOTER-TEXT 2021. All rights reserved.</p></footer></body></html>
""".format(*PARAGRAPHS)


def test_html_main_text_headings_and_page_metadata_without_navigation(tmp_path, count_tokens):
    (tmp_path / "page.html").write_text(HTML, encoding="utf-8")
    doc = load_document(tmp_path / "page.html")
    for junk in ("NAV-LINK", "COOKIE-TEXT", "SCRIPT-TEXT", "color: red", "FOOTER-TEXT"):
        assert junk not in doc.text
    body = [doc.text[p.start : p.end] for p in doc.paragraphs]
    assert body[:2] == PARAGRAPHS
    assert body[2] == "A third paragraph, with bold and code inline, wrapped over two lines in the source."
    assert [p.section for p in doc.paragraphs] == [None, "Mountains", "Mountains"]
    assert doc.title == "Rivers and Mountains"  # "| Example Site" left out: the other side is the page's h1
    assert (doc.author, doc.published, doc.url) == ("Ann Author", "2021-05-06", "https://example.org/rivers")
    _assert_exact(doc, count_tokens)


@pytest.mark.parametrize(("head", "title"), [
    ('<title>City expands bike lanes | Riverside Gazette</title><meta property="og:site_name" content="Riverside Gazette">', "City expands bike lanes"),
    ('<title>Riverside Gazette — City expands bike lanes</title><meta property="og:site_name" content="Riverside Gazette">', "City expands bike lanes"),
    ("<title>os — Miscellaneous interfaces — Python 3.11 documentation</title>", "os — Miscellaneous interfaces"),  # Sphinx: h1 + ¶
    ("<title>Elsewhere in the city | Riverside Gazette</title>", "Elsewhere in the city"),  # the h1 starts with it
    ("<title>Part one - part two</title>", "Part one - part two"),  # no site name to tell apart: as it is
    ('<title>Part 1 - Getting started</title><meta property="og:title" content="Part 1 - Getting started">',
     "Part 1 - Getting started"),  # the page's own title has the separator in it
    ("<title>Tides | Harbour Weekly</title>", "Tides"),  # the logo's h1 in the header is not the page's own
])
def test_an_html_title_is_read_without_the_site_name(tmp_path, head, title):
    body = ("<h1>os — Miscellaneous interfaces<a class='headerlink' href='#x'>¶</a></h1>" if "Python" in head
            else f"<header><h1>Harbour Weekly</h1></header><main><h1>Tides</h1><p>{PARAGRAPHS[1]}</p></main>" if "Tides" in head
            else "<h1>Elsewhere in the city, along the river</h1>")
    (tmp_path / "page.html").write_text(f"<html><head><meta charset=\"utf-8\">{head}</head><body>{body}<p>{PARAGRAPHS[0]}</p></body></html>", encoding="utf-8")
    assert load_document(tmp_path / "page.html").title == title


TABLE_PAGE = """<html><head><meta charset="utf-8"><title>Ocean depths</title></head><body><main><article>
<h1>Ocean depths</h1><p>{0}</p>{{code}}
<table><thead><tr><th>Ocean</th><th>Deepest point</th></tr></thead><tbody><tr><td>Pacific</td><td>10994 m</td></tr>
<tr><td>Atlantic</td><td>8376 m</td></tr></tbody></table><p>{1}</p></article></main></body></html>""".format(*PARAGRAPHS)


@pytest.mark.parametrize("code", ["", "<pre>line one\nline two\nline three</pre>"])  # trafilatura's reading, the walk's
def test_an_html_table_is_its_rows_under_the_header_like_a_sheet(tmp_path, code):
    (tmp_path / "page.html").write_text(TABLE_PAGE.replace("{code}", code), encoding="utf-8")
    doc = load_document(tmp_path / "page.html")
    assert "Ocean | Deepest point\nPacific | 10994 m\nAtlantic | 8376 m" in [doc.text[p.start : p.end] for p in doc.paragraphs]


def _pdf(path: Path, pages: list[list[str]], title: str | None = "A Small Report") -> None:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
        pdf.set_author("Ann Author")
    pdf.set_font("helvetica", size=11)
    for paragraphs in pages:
        pdf.add_page()
        for paragraph in paragraphs:
            pdf.multi_cell(0, 5, paragraph)
            pdf.ln(5)
    pdf.output(str(path))


def test_pdf_text_per_page_joined_into_paragraphs_with_a_page_for_every_passage(tmp_path, count_tokens):
    long = " ".join(["Lines of this paragraph wrap in the PDF and must be joined back into one paragraph."] * 3)
    _pdf(tmp_path / "report.pdf", [[PARAGRAPHS[0], long], [PARAGRAPHS[1]], ["Third page text about deserts and their dunes."]])
    doc = load_document(tmp_path / "report.pdf")
    assert (doc.title, doc.author) == ("A Small Report", "Ann Author")
    assert len(doc.pages) == 3 and doc.pages[0] == 0
    body = [doc.text[p.start : p.end] for p in doc.paragraphs]
    assert body == [PARAGRAPHS[0], long, PARAGRAPHS[1], "Third page text about deserts and their dunes."]
    assert [page_of(doc, p.start) for p in doc.paragraphs] == [1, 1, 2, 3]
    passages = _assert_exact(doc, count_tokens)
    assert all(page_of(doc, p.start) in (1, 2, 3) for p in passages)
    assert page_of(load_document(_text_file(tmp_path)), 0) is None  # not a PDF: no page


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain.txt"
    path.write_text(PARAGRAPHS[0], encoding="utf-8")
    return path


def test_every_format_and_subfolders_in_one_corpus_with_path_ids(tmp_path):
    (tmp_path / "guide" / "deep").mkdir(parents=True)
    (tmp_path / "top.txt").write_text(PARAGRAPHS[0], encoding="utf-8")
    (tmp_path / "guide" / "Page One.html").write_text(HTML, encoding="utf-8")
    (tmp_path / "guide" / "deep" / "note.md").write_text("# Note\n\n" + PARAGRAPHS[1], encoding="utf-8")
    _pdf(tmp_path / "guide" / "deep" / "report.pdf", [[PARAGRAPHS[0]]])
    (tmp_path / "guide" / "deep" / "note.meta.json").write_text('{"title": "Sidecar Title"}', encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert corpus.skipped == ()
    ids = {d.id: d for d in corpus.documents}
    assert set(ids) == {"top", "guide.page-one", "guide.deep.note", "guide.deep.report"}
    assert ids["guide.deep.note"].title == "Sidecar Title" and ids["guide.deep.note"].source == "guide/deep/note.md"
