"""Structure kept from real files: headings as sections, the document's own title and dates, code kept as
blocks, navigation and contents lines out of the body (issue #20 item 4).

The files are Debian's own: an excerpt of Vim's help (tests/corpus/data/vim-version8-excerpt.txt, from
/usr/share/vim/vim90/doc/version8.txt), HTML manuals from /usr/share/doc kept gzipped in tests/corpus/data/debian/
(each test names the package that ships its file), and PDFs from /usr/share/doc or written here.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from fpdf import FPDF
from tokenizers import Tokenizer

from rag.corpus.chunking import ChunkerParams, chunk_document
from rag.corpus.documents import load_document, page_of
from rag.corpus.passage_text import heading_text
from rag.encoding.model import resolve_model
from rag.index.lexical import LexicalIndex

DATA = Path(__file__).parent / "data"


def _sections(doc) -> list:
    return [s.title for s in doc.sections]


def test_vim_help_headings_ruled_or_tagged_are_sections_and_ordinary_lines_are_not(tmp_path):
    doc = load_document(DATA / "vim-version8-excerpt.txt")
    assert _sections(doc) == [None, "VERSION 8.1", "The terminal window", "Changed", "Added"]
    by_section = {p.section: doc.text[p.start : p.end] for p in reversed(doc.paragraphs)}  # the first of each
    assert by_section["The terminal window"].startswith("You can now open a window which functions as a terminal.")
    assert by_section["VERSION 8.1"] == "This section is about improvements made between version 8.0 and 8.1."
    heading = next(s for s in doc.sections if s.title == "The terminal window")
    assert doc.text[heading.heading_start : heading.heading_end] == "The terminal window\t\t\t\t*new-terminal-window*\n-------------------"
    # a short line alone in its block that reads like a sentence, or a block of several lines, stays a paragraph
    assert "For more information see |terminal-window|." in [doc.text[p.start : p.end] for p in doc.paragraphs]
    assert doc.text[doc.paragraphs[0].start : doc.paragraphs[0].end].startswith("Patch 7.4.2366\nProblem:")


# --- HTML: Debian's manuals, kept gzipped in tests/corpus/data/debian/ (each names its package) -----------------


def _page(tmp_path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.decompress((DATA / "debian" / f"{name}.gz").read_bytes()))
    return path


@pytest.fixture(scope="module")
def count_tokens():
    tokenizer = Tokenizer.from_file(str(resolve_model("default").local_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _exact_passages(doc, count_tokens):
    passages = chunk_document(doc, count_tokens, ChunkerParams())
    assert all(doc.text[p.start : p.end] == p.text for p in passages)
    return passages


def test_a_markdown_section_is_named_by_its_path(tmp_path):
    """A Markdown title under other headings carries theirs: "### Fixed" under each release names its release, in the
    citation and in what is embedded and indexed; a heading of the same level or above ends the path."""
    path = tmp_path / "CHANGELOG.md"
    path.write_text("# Changelog\n\nAll notable changes.\n\n## [2.3.0] - 2025-02-20\n\n### Added\n\n- SMS reminders.\n\n"
                    "### Fixed\n\n- Double bookings.\n\n## [2.2.1] - 2024-12-05\n\n### Fixed\n\n- Time zones.\n\n"
                    "# Appendix\n\nNotes.\n")
    doc = load_document(path)
    assert [p.section for p in doc.paragraphs] == [
        None, "[2.3.0] - 2025-02-20 › Added", "[2.3.0] - 2025-02-20 › Fixed", "[2.2.1] - 2024-12-05 › Fixed", "Appendix"]
    assert doc.title == "Changelog"  # the title heading is the document's, not a section above every other
    passage = next(p for p in chunk_document(doc, len, ChunkerParams()) if "SMS" in p.text)
    assert "[2.3.0] - 2025-02-20 › Added" in heading_text(doc, passage)


def test_a_web_page_qualifies_only_the_titles_it_repeats(tmp_path):
    path = tmp_path / "notes.html"
    path.write_text("<html><head><title>Release notes | Ledger</title></head><body><main><h1>Release notes</h1>"
                    "<p>Intro text that is long enough to be kept by the extractor, about releases.</p>"
                    "<h2>Version 3.7.1 (28 May 2025)</h2><h3>Fixed</h3><p>Fixed rounding of VAT on invoices in all currencies.</p>"
                    "<h3>Added</h3><p>Added exports of invoices to CSV.</p><h2>Version 3.7.0 (2 May 2025)</h2><h3>Fixed</h3>"
                    "<p>Fixed the login page on Safari for all users.</p></main></body></html>")
    assert [p.section for p in load_document(path).paragraphs] == [
        None, "Version 3.7.1 (28 May 2025) › Fixed", "Added", "Version 3.7.0 (2 May 2025) › Fixed"]


def test_a_ruled_first_line_is_the_title_even_in_lower_case(tmp_path):
    path = tmp_path / "bw-cli-README.txt"
    path.write_text("bw - the Brightwell command-line tool\n=====================================\n\n"
                    "Version 2.4.1, released 3 July 2025.\n\nInstallation\n------------\n\nInstall it with pipx.\n")
    doc = load_document(path)
    assert doc.title == "bw - the Brightwell command-line tool"  # not "bw cli README", from the file name
    assert [s.title for s in doc.sections] == [None, "Installation"]


def test_headings_without_levels_keep_their_titles(tmp_path):
    path = tmp_path / "changes.txt"
    path.write_text("Changes\n\nRelease 2.3.0\n\nSMS reminders were added.\n\nFixed\n\nDouble bookings were fixed.\n")
    assert [p.section for p in load_document(path).paragraphs] == ["Release 2.3.0", "Fixed"]


def test_html_title_is_the_pages_title_not_its_first_heading(tmp_path):
    doc = load_document(_page(tmp_path, "python-policy.html"))  # python3: Sphinx, whose first <h1> is "Abstract"
    assert doc.title == "Debian Python Policy 0.12.0.0 documentation"
    assert _sections(doc)[:4] == ["Abstract", "Contents", "1. Copyright", "2. Completing the move to Python 3"]
    assert doc.published is None  # the page has no date metadata; its "1999-2021" copyright line is no date


def test_html_dates_never_come_from_copyright_lines(tmp_path):
    doc = load_document(_page(tmp_path, "users-and-groups.html"))  # base-passwd: DocBook, "Copyright © 2001, 2002 Joey Hess"
    assert "Copyright © 2001, 2002 Joey Hess" in doc.text
    assert (doc.title, doc.published) == ("Users and Groups in the Debian System", None)
    assert _sections(doc) == [None, "Chapter 1. Introduction", "Chapter 2. Users and Groups"]  # not the credits' <h3>s
    page = tmp_path / "dated.html"
    page.write_text(
        '<html><head><title>Dated</title><meta property="article:published_time" content="2019-03-04T10:00:00+00:00">'
        "</head><body><article><h1>Dated</h1><p>Copyright © 2001, 2002 Someone.</p><p>" + "Body text. " * 30 + "</p></article></body></html>",
        encoding="utf-8",
    )
    assert load_document(page).published == "2019-03-04"
    page.write_text(page.read_text(encoding="utf-8").replace('<meta property="article:published_time" content="2019-03-04T10:00:00+00:00">', "")
                    .replace("<h1>Dated</h1>", '<h1>Dated</h1><time datetime="2020-07-08">8 July</time>'), encoding="utf-8")
    assert load_document(page).published == "2020-07-08"
    page.write_text(page.read_text(encoding="utf-8").replace("<title>Dated</title>", '<title>Dated</title><meta name="DC.date" content="2018-01-02">')
                    .replace('<time datetime="2020-07-08">8 July</time>', ""), encoding="utf-8")
    assert load_document(page).published == "2018-01-02"


def test_docbook_upper_case_headings_are_sections(tmp_path):
    doc = load_document(_page(tmp_path, "shared-mime-info-x34.html"))  # shared-mime-info: <H1 CLASS="sect1"><A NAME=...>
    assert doc.title == "Unified system"  # its <TITLE>; the <H1> says "2. Unified system"
    assert _sections(doc)[:4] == ["2. Unified system", "2.1. Directory layout", "2.2. The source XML files", "2.3. The MEDIA/SUBTYPE.xml files"]
    assert "Prev" not in doc.text.split() and "Next" not in doc.text.split()  # the DocBook navigation header and footer
    spec = load_document(_page(tmp_path, "shared-mime-info-spec.html"))
    assert _sections(spec) == ["1. Introduction", "1.1. Version", "1.2. What is this spec?", "1.3. Language used in this specification"]
    assert "Thomas Leonard" not in [spec.text[p.start : p.end] for p in spec.paragraphs]  # the title page's credits


def test_texinfo_navigation_lines_are_out_of_the_body(tmp_path):
    doc = load_document(_page(tmp_path, "The-Basics.html"))  # libffi8: "Next: Simple Example, Up: Using libffi [Index]"
    assert _sections(doc) == ["2.1 The Basics"]
    assert "Next:" not in doc.text and "[Index]" not in doc.text
    assert doc.text[doc.paragraphs[0].start :].startswith("libffi assumes that you have a pointer to the function")


def test_pre_code_keeps_its_lines_and_the_buffer_size_is_found(tmp_path, count_tokens):
    doc = load_document(_page(tmp_path, "zlib_how.html"))  # zlib1g-dev: zpipe.c annotated, in <pre> blocks
    assert "#define CHUNK 16384" in doc.text.split("\n")
    assert "#include <stdio.h>\n#include <string.h>\n#include <assert.h>\n#include \"zlib.h\"" in doc.text
    assert doc.published is None  # "Version 1.4 11 December 2005" in a code comment is no date metadata
    passages = _exact_passages(doc, count_tokens)
    lexical = LexicalIndex([heading_text(doc, p) for p in passages])
    best = passages[int(np.argmax(lexical.scores("What buffer size does the zpipe example use?")))]
    assert "#define CHUNK 16384" in best.text.split("\n")


# --- PDF ---------------------------------------------------------------------------------------------------------

SHARED_MIME_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")  # Debian's shared-mime-info
BODY = ("Rivers carry water, silt and stones from the hills to the sea, and their banks shape where towns are built. "
        "A survey of their flow over a year shows how much the seasons change them. ")


def _report(path: Path) -> None:
    """A PDF without a /Title: its first line is the title, a contents page with dot leaders, numbered headings, a
    running header and page numbers, and a sentence that runs on over a page break."""
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("helvetica", size=11)
    pages = [
        ["Field Notes on Rivers", "", "Contents", "1. Introduction . . . . . . . . . . . . . . 2", "1.1. Version . . . . . . . . . . . . . . . . 2",
         "2. Method . . . . . . . . . . . . . . . . . . 3"],
        ["Field Notes on Rivers (draft)", "1. Introduction", BODY, "1.1. Version", "This is version 3 of the notes, written in spring.", "2"],
        ["Field Notes on Rivers (draft)", "2. Method", BODY, "Over the year the river carries its silt toward the", "3"],
        ["Field Notes on Rivers (draft)", "delta, where it settles in wide banks of sand and clay.", BODY, "4"],
    ]
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.multi_cell(0, 6, line) if line else pdf.ln(6)
            pdf.ln(3)
    pdf.output(str(path))


def _page_span(doc, passage) -> tuple[int, int]:
    return page_of(doc, passage.start), page_of(doc, max(passage.start, passage.end - 1))  # as HTTP's page, page_end


def test_pdf_title_numbered_headings_contents_and_running_headers(tmp_path, count_tokens):
    _report(tmp_path / "notes.pdf")
    doc = load_document(tmp_path / "notes.pdf")
    assert doc.title == "Field Notes on Rivers"  # the first line, not the file name
    assert _sections(doc) == [None, "1. Introduction", "1.1. Version", "2. Method"]
    passages = _exact_passages(doc, count_tokens)
    assert not any(". . . ." in p.text for p in passages)  # the contents page's dot leaders
    assert "(draft)" not in doc.text  # the running header
    assert not [p for p in doc.paragraphs if doc.text[p.start : p.end].strip().isdigit()]  # page numbers
    spanning = [p for p in passages if len(set(_page_span(doc, p))) > 1]  # page_end differs from page only here:
    assert len(spanning) == 1 and "toward the\ndelta, where it settles" in spanning[0].text  # one paragraph over the break
    assert _page_span(doc, spanning[0]) == (3, 4)


def test_a_two_page_pdf_loses_its_page_labels_and_the_header_of_its_second_page(tmp_path):
    """"Page 1 of 2" footers go at any length; a header on both pages of a two-page file is a running header
    (page 1 keeps its first line: it may be the title)."""
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("helvetica", size=11)
    pages = [["Lab Safety Sheet", "1. Gloves", "Use butyl gloves with acetone; nitrile gloves are not enough.", "Page 1 of 2"],
             ["Lab Safety Sheet", "2. Waste", "Solvent waste goes into the red canister by the door.", "Page 2 of 2"]]
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.multi_cell(0, 6, line)
            pdf.ln(3)
    pdf.output(str(tmp_path / "safety.pdf"))
    doc = load_document(tmp_path / "safety.pdf")
    assert doc.title == "Lab Safety Sheet" and "Page 1 of 2" not in doc.text and "Page 2 of 2" not in doc.text
    assert doc.text.count("Lab Safety Sheet") == 1
    assert _sections(doc) == ["1. Gloves", "2. Waste"]
    last = doc.paragraphs[-1]
    assert doc.text[last.start : last.end] == "Solvent waste goes into the red canister by the door."


@pytest.mark.skipif(not SHARED_MIME_PDF.exists(), reason="Debian's shared-mime-info is not installed")
def test_debian_pdf_manual_has_its_title_and_numbered_sections(count_tokens):
    doc = load_document(SHARED_MIME_PDF)
    assert doc.title == "Shared MIME-info Database"  # its /Title is empty; the file name says "shared mime info spec"
    assert _sections(doc)[:5] == [None, "1. Introduction", "1.1. Version", "1.2. What is this spec?", "1.3. Language used in this specification"]
    assert "2.17. User modification" in _sections(doc) and not [s for s in _sections(doc) if s and "CARD32" in s]
    passages = _exact_passages(doc, count_tokens)
    spanning = [p for p in passages if len(set(_page_span(doc, p))) > 1]
    assert 1 <= len(spanning) <= 3  # of 70 passages (8 before: short paragraphs merged over breaks, page numbers)
    for p in spanning:  # each is one paragraph running on over the break (no blank line at the page start)
        page_start = doc.pages[_page_span(doc, p)[1] - 1]
        assert doc.text[page_start - 2 : page_start] != "\n\n"


LIGHTHOUSE_TIGHT = """# Lighthouse notes

## Keepers
The keeper of the Skerryvore lighthouse logs the fog horn test every Thursday.
She rows to the mainland on Sundays.

## Supplies
Paraffin for the lamp is delivered by the tender Pharos twice a month.

```sh
# a comment in code, not a heading
make lamp

# still code after a blank line
```

Bug reports
-----------
Send the output of ps.
"""


def test_markdown_headings_with_text_straight_under_them_are_sections(tmp_path):
    """Markdown needs no blank line after a heading (`## Keepers` then its text; `Bug reports` over `---`): each is
    a section, its text a paragraph of it, exactly as with blank lines; `#` lines inside fenced code are code."""
    (tmp_path / "tight.md").write_text(LIGHTHOUSE_TIGHT, encoding="utf-8")
    loose = LIGHTHOUSE_TIGHT.replace("## Keepers\n", "## Keepers\n\n").replace("## Supplies\n", "## Supplies\n\n")
    (tmp_path / "loose.md").write_text(loose.replace("-----------\n", "-----------\n\n"), encoding="utf-8")
    tight, spaced = load_document(tmp_path / "tight.md"), load_document(tmp_path / "loose.md")
    assert tight.title == spaced.title == "Lighthouse notes"
    assert _sections(tight) == _sections(spaced) == ["Keepers", "Supplies", "Bug reports"]
    texts = lambda doc: [(p.section, doc.text[p.start : p.end]) for p in doc.paragraphs]  # noqa: E731
    assert texts(tight) == texts(spaced)
    assert texts(tight)[0] == ("Keepers", "The keeper of the Skerryvore lighthouse logs the fog horn test every Thursday.\n"
                                          "She rows to the mainland on Sundays.")
    assert ("Supplies", "# still code after a blank line\n```") in texts(tight)
    assert texts(tight)[-1] == ("Bug reports", "Send the output of ps.")
    heading = next(s for s in tight.sections if s.title == "Supplies")
    assert tight.text[heading.heading_start : heading.heading_end] == "## Supplies"


def test_plain_text_ruled_headings_with_text_straight_under_them_are_sections(tmp_path):
    path = tmp_path / "bugs.txt"
    path.write_text("BUG REPORTS\n===========\n\nIntro text here.\n\nWhat to send\n------------\nThe version and the output.\n\n"
                    "lower-case words\n~~~~~~~~~~~~~~~~\nstay one paragraph: they do not read as a heading.\n", encoding="utf-8")
    doc = load_document(path)
    assert _sections(doc) == ["BUG REPORTS", "What to send"]
    texts = [doc.text[p.start : p.end] for p in doc.paragraphs]
    assert texts[:2] == ["Intro text here.", "The version and the output."]
    assert texts[2].startswith("lower-case words\n~~~")
