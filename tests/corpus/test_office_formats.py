"""Office formats end to end: a real file for each, written in the test by its own library (RTF, CSV and one ODT
by hand), read by the real corpus loader (through the worker process), chunked by the real chunker with the
model's tokenizer, and indexed and served by a real Service.

Checked for every format: the sections the file's structure gives, the metadata it carries, and that every
passage's offsets index into the document text exactly. Per format: a slide is the page (`page_of`), a sheet's
header starts every passage of that sheet and each line names its row, an e-mail's subject/From/Date are the
title/author/published date with the text/plain body preferred and each attachment of a kind read here a section
of its own (others never read). Hostile files (a zip
bomb, text past the size limit, an OLE container) and a missing library are skips with a reason, never a crash.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.corpus import formats, office
from rag.corpus.documents import load_corpus, load_document, page_of
from rag.errors import Unreadable
from rag.query.verdict import MISSING_ROW_CONFIDENCE
from rag.service import Service
from tests.reliability_support import settings_for

SECRET = "TOP-SECRET-ATTACHMENT-77"
SALES_ROWS = 80  # enough rows that the Sales sheet needs several passages
SLIDES = {1: "Quarterly review", 2: "Revenue", 3: "Slide 3"}  # slide number -> its section


# --- the files, each made by its own library ---------------------------------------------------


def make_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.core_properties.author = "Ann Writer"
    d.core_properties.created = dt.datetime(2021, 4, 5, 9, 30)
    d.add_paragraph("Rivers of the North", style="Title")
    d.add_paragraph("An opening paragraph before any heading, about why rivers matter to the towns along them.")
    d.add_heading("Sources", level=1)
    d.add_paragraph("Rivers begin in mountains, fed by melting snow and by rain that falls on the high slopes.")
    d.add_heading("Tributaries", level=2)
    d.add_paragraph("The largest tributaries are listed in the table below, with their length in kilometres.")
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([["River", "Length", "Country"], ["Rhine", "1233", "Germany"], ["Danube", "2850", "Austria"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Mouths", level=1)
    d.add_paragraph("Every river ends at a mouth, where fresh water meets the sea and drops the silt it carried.")
    d.save(path)


def add_slide(deck, layout: int, title: str, body: str):
    """A slide of python-pptx's template layout `layout` (0: title, 1: title and content) with its two placeholders filled."""
    slide = deck.slides.add_slide(deck.slide_layouts[layout])
    slide.shapes.title.text = title
    slide.placeholders[1].text = body
    return slide


def make_pptx(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Quarterly review"
    deck.core_properties.author = "Finance Team"
    add_slide(deck, 0, "Quarterly review", "Prepared by the finance team for the board meeting in October.")
    slide = add_slide(deck, 1, "Revenue", "Revenue grew twelve percent in the third quarter.\nCosts fell for the second quarter running.")
    slide.notes_slide.notes_text_frame.text = "Mention the new shipping contract signed with the harbour authority."
    slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no title placeholder
    box = slide.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1))
    box.text_frame.text = "An untitled slide about the warehouse in Lisbon and its new cranes."
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(3), Inches(4), Inches(1)).table
    for (r, c), value in {(0, 0): "Site", (0, 1): "Cranes", (1, 0): "Lisbon", (1, 1): "4"}.items():
        table.cell(r, c).text = value
    deck.save(path)


def make_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.properties.title = "Company figures"
    book.properties.creator = "Ledger Bot"
    sales = book.active
    sales.title = "Sales"
    sales.append(["Region", "Quarter", "Revenue", "Manager"])
    for i in range(SALES_ROWS):
        sales.append([f"Region {i}", f"Q{i % 4 + 1}", 1000 + i * 7.5, f"Manager number {i}"])
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Joined", "Office"])
    staff.append(["Ann", dt.date(2020, 3, 4), "Porto"])
    staff.append([None, None, None])  # an empty row: not a line, and the numbering keeps the sheet's
    staff.append(["Bob", dt.datetime(2021, 1, 2), "Tallinn"])
    hidden = book.create_sheet("Secret")
    hidden.append([SECRET])
    hidden.sheet_state = "hidden"
    book.save(path)


def make_odt(path: Path) -> None:
    from odf import dc, meta
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, List, ListItem, P, S, Span

    doc = OpenDocumentText()
    doc.meta.addElement(dc.Title(text="Glaciers"))
    doc.meta.addElement(meta.InitialCreator(text="Gus Ice"))
    doc.meta.addElement(meta.CreationDate(text="2021-05-06T10:00:00"))
    doc.text.addElement(P(text="An introduction before any heading, on ice that remembers the climate."))
    doc.text.addElement(H(outlinelevel=1, text="Formation"))
    p = P(text="Snow turns to firn over many winters")
    p.addElement(S(c=3))
    p.addElement(Span(text="and then to dense blue glacier ice."))
    doc.text.addElement(p)
    doc.text.addElement(H(outlinelevel=2, text="Movement"))
    items = List()
    item = ListItem()
    item.addElement(P(text="Glaciers flow downhill under their own weight, a few metres a day."))
    items.addElement(item)
    doc.text.addElement(items)
    table = Table()
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for row in (["Glacier", "Length"], ["Aletsch", "23 km"]):
        tr = TableRow()
        table.addElement(tr)
        for value in row:
            cell = TableCell()
            cell.addElement(P(text=value))
            tr.addElement(cell)
    doc.text.addElement(table)
    doc.save(str(path))


def make_odt_with_wrapped_namespaces(path: Path) -> None:
    """An ODT as pandoc writes it: namespace declarations on lines of their own (odfpy 1.4.1 rewrites such a
    part into invalid XML and returns an empty document; this reader must not)."""
    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"\n'
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"\n'
          'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"\n'
          'xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
          'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"')
    content = (f'<?xml version="1.0" encoding="utf-8"?>\n<office:document-content\n{ns} office:version="1.2">\n'
               '<office:automatic-styles><style:style style:name="P1" style:family="paragraph" style:parent-style-name="Title"/>'
               '</office:automatic-styles>\n<office:body><office:text>'
               '<text:p text:style-name="P1">Moraines</text:p>'
               '<text:h text:outline-level="1">Deposits</text:h>'
               '<text:p text:style-name="Text_20_body">A moraine is the rock and soil a glacier leaves behind<text:note>'
               '<text:note-body><text:p>A footnote that is not body text.</text:p></text:note-body></text:note> when it melts.</text:p>'
               '</office:text></office:body></office:document-content>')
    meta = (f'<?xml version="1.0" encoding="utf-8"?>\n<office:document-meta\n{ns}><office:meta>'
            '<dc:creator>Mo Raine</dc:creator><dc:date>2019-08-09T10:00:00</dc:date></office:meta></office:document-meta>')
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED)
        z.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("meta.xml", meta, compress_type=zipfile.ZIP_DEFLATED)


def make_epub(path: Path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("book-1")
    book.set_title("Two Chapters")
    book.set_language("en")
    book.add_author("Eve Author")
    book.add_metadata("DC", "date", "2019-07-01")
    one = epub.EpubHtml(title="Chapter One", file_name="one.xhtml", lang="en")
    one.content = ("<html><body><h1>Chapter One</h1><p>The first chapter is about <em>deserts</em> and the dunes "
                   "that move across them a few metres every year.</p><h2>Oases</h2><p>An oasis forms where "
                   "ground water reaches the surface.</p></body></html>")
    two = epub.EpubHtml(title="Chapter Two", file_name="two.xhtml", lang="en")
    two.content = ("<html><body><p>This chapter opens without a heading; it is about oceans and their depth.</p>"
                   "<table><tr><th>Ocean</th><th>Deepest point</th></tr><tr><td>Pacific</td><td>10994 m</td></tr></table>"
                   "<script>var hidden = 1;</script></body></html>")
    book.add_item(two)  # the manifest lists chapter two first: the spine, not the manifest, gives the order
    book.add_item(one)
    book.toc = (epub.Link("one.xhtml", "Chapter One", "one"), epub.Link("two.xhtml", "Chapter Two", "two"))
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", one, two]
    epub.write_epub(str(path), book)


RTF = (rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times New Roman;}}"
       rb"{\info{\title Caf\'e9 notes}{\author Ren\'e9 Roe}{\creatim\yr2018\mo1\dy11\hr9\min0}}" b"\n"
       rb"\f0\fs24 Caf\'e9 Culture\par\par" b"\n"
       rb"Coffee houses spread across Europe in the seventeenth century and became places of debate.\par" b"\n"
       rb"They sold news as much as coffee \u8212? the first newspapers were read aloud there.\par" b"\n"
       rb"\trowd\cellx2000\cellx4000 House\cell Founded\cell\row" b"\n"
       rb"\trowd\cellx2000\cellx4000 Lloyd's\cell 1686\cell\row" b"\n}")


def make_eml(path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "Budget for the harbour project"
    message["From"] = "Ann Smith <ann@example.org>"
    message["To"] = "bob@example.org"
    message["Date"] = "Tue, 05 Mar 2024 14:30:00 +0100"
    message.set_content("Hi Bob,\n\nThe budget for the harbour project is approved at 1.2 million euros.\n"
                        "Work starts in April and ends before the winter storms.\n\nBest,\nAnn\n")
    message.add_alternative("<html><body><p>HTML ALTERNATIVE that must not be read.</p></body></html>", subtype="html")
    message.add_attachment(SECRET.encode(), maintype="application", subtype="octet-stream", filename="secret.bin")
    message.add_attachment("The crane rental costs 300 euros a day.\n\nThe barge is booked for May.", filename="notes.txt")
    message.add_attachment(b"Tool,Count\r\nTorque wrench,2\r\nChain tool,9\r\n", maintype="text", subtype="csv", filename="tools.csv")
    message.add_attachment(b"\x89PNG\r\n\x1a\n" + SECRET.encode(), maintype="image", subtype="png", filename="site.png")
    path.write_bytes(bytes(message))


CSV = ("City;Country;Population\r\n" + "".join(f'City {i};"Country; {i % 7}";{10_000 + i * 13}\r\n' for i in range(60))).encode()


# --- one service over all of them --------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Path:
    seeds = tmp_path_factory.mktemp("office") / "seeds"
    seeds.mkdir()
    make_docx(seeds / "rivers.docx")
    make_pptx(seeds / "review.pptx")
    make_xlsx(seeds / "figures.xlsx")
    make_odt(seeds / "glaciers.odt")
    make_odt_with_wrapped_namespaces(seeds / "moraines.odt")
    make_epub(seeds / "book.epub")
    (seeds / "cafes.rtf").write_bytes(RTF)
    make_eml(seeds / "budget.eml")
    (seeds / "cities.csv").write_bytes(CSV)
    return seeds


@pytest.fixture(scope="module")
def service(seeds, encoders) -> Service:
    return Service.open(settings_for(seeds, seeds.parent / "index"), encoders)


@pytest.fixture(scope="module")
def docs(service):
    return service.documents


def passages_of(service, document_id: str):
    return [p for p in service.snapshot.passages if p.document == document_id]


def sections(document) -> list:
    return [s.title for s in document.sections]


def test_every_office_file_is_a_document_and_every_offset_indexes_its_text(service, docs):
    assert set(docs) == {"rivers", "review", "figures", "glaciers", "moraines", "book", "cafes", "budget", "cities"}
    assert service.snapshot.skipped == ()
    for passage in service.snapshot.passages:
        document = docs[passage.document]
        assert document.text[passage.start : passage.end] == passage.text
        for start, end in passage.sentences:
            assert passage.start <= start < end <= passage.end
        for number in passage.paragraphs:
            paragraph = document.paragraphs[number - 1]
            assert paragraph.section == passage.section and passage.start <= paragraph.start < paragraph.end <= passage.end
    for document in docs.values():
        assert passages_of(service, document.id), document.id
        for paragraph in document.paragraphs:
            assert document.text[paragraph.start : paragraph.end].strip() == document.text[paragraph.start : paragraph.end]


def test_docx_headings_are_sections_and_a_table_is_rows_of_text(service, docs):
    rivers = docs["rivers"]
    assert (rivers.title, rivers.author, rivers.published) == ("Rivers of the North", "Ann Writer", "2021-04-05")
    # the Title paragraph is the title, not a section; a heading of level 2 names the level-1 heading it sits under
    assert sections(rivers) == [None, "Sources", "Sources › Tributaries", "Mouths"]
    table = next(p for p in passages_of(service, "rivers") if "Rhine" in p.text)
    assert table.section == "Sources › Tributaries"
    assert "River | Length | Country\nRhine | 1233 | Germany\nDanube | 2850 | Austria" in table.text


def test_pptx_each_slide_is_a_page_and_its_title_the_section(service, docs):
    review = docs["review"]
    assert (review.title, review.author) == ("Quarterly review", "Finance Team")
    assert len(review.pages) == 3
    assert sections(review) == list(SLIDES.values())  # the first slide's title stays its section
    where = {"board meeting": 1, "twelve percent": 2, "Costs fell": 2, "shipping contract": 2, "Lisbon": 3, "Cranes": 3}
    seen = set()
    for passage in passages_of(service, "review"):
        slide = page_of(review, passage.start)
        assert page_of(review, passage.end - 1) == slide  # no passage runs across slides here
        assert passage.section == SLIDES[slide]
        for words, number in where.items():
            if words in passage.text:
                assert slide == number, words
                seen.add(words)
    assert seen == set(where)
    notes = next(p for p in passages_of(service, "review") if "shipping contract" in p.text)
    assert "Notes: Mention the new shipping contract" in notes.text


def test_xlsx_each_sheet_is_a_section_and_every_passage_keeps_the_header_and_its_rows(service, docs):
    figures = docs["figures"]
    assert (figures.title, figures.author) == ("Company figures", "Ledger Bot")
    assert sections(figures) == ["Sales", "Staff"]  # the hidden sheet is not read
    assert SECRET not in figures.text
    sales = [p for p in passages_of(service, "figures") if p.section == "Sales"]
    assert len(sales) >= 3
    rows = []
    for passage in sales:
        lines = passage.text.split("\n")
        assert lines[0] == "row | Region | Quarter | Revenue | Manager"  # the header starts every passage
        for line in lines[1:]:
            if not line or line.startswith("row | "):
                continue  # two groups merged into one passage: the blank line between them, the second's header
            number, region, *_ = line.split(" | ")
            assert region == f"Region {int(number) - 2}"  # the line names its row in the sheet
            rows.append(int(number))
    assert rows == list(range(2, SALES_ROWS + 2))  # every row once, in order
    staff = next(p for p in passages_of(service, "figures") if p.section == "Staff")
    assert staff.text == "row | Name | Joined | Office\n2 | Ann | 2020-03-04 | Porto\n4 | Bob | 2021-01-02 | Tallinn"


def test_csv_rows_keep_the_header_with_the_sniffed_delimiter(service, docs):
    cities = docs["cities"]
    assert cities.title == "cities" and sections(cities) == [None]
    passages = passages_of(service, "cities")
    assert len(passages) >= 2
    numbers = []
    for passage in passages:
        lines = passage.text.split("\n")
        assert lines[0] == "row | City | Country | Population"
        numbers += [int(line.split(" | ")[0]) for line in lines[1:] if line and not line.startswith("row | ")]
    assert numbers == list(range(2, 62))
    assert "2 | City 0 | Country; 0 | 10000" in passages[0].text  # the quoted ; stays inside its cell


def test_odt_headings_are_sections(service, docs):
    glaciers = docs["glaciers"]
    assert (glaciers.title, glaciers.author, glaciers.published) == ("Glaciers", "Gus Ice", "2021-05-06")
    assert sections(glaciers) == [None, "Formation", "Movement"]
    text = " ".join(p.text for p in passages_of(service, "glaciers"))
    assert "Snow turns to firn over many winters and then to dense blue glacier ice." in text  # text:s is a space
    assert "Glacier | Length\nAletsch | 23 km" in text


def test_odt_as_pandoc_writes_it_is_read(docs):
    moraines = docs["moraines"]
    assert (moraines.title, moraines.author, moraines.published) == ("Moraines", "Mo Raine", "2019-08-09")
    assert sections(moraines) == ["Deposits"]
    assert "A moraine is the rock and soil a glacier leaves behind when it melts." in moraines.text
    assert "footnote" not in moraines.text


def test_epub_chapters_in_spine_order_are_sections(service, docs):
    book = docs["book"]
    assert (book.title, book.author, book.published) == ("Two Chapters", "Eve Author", "2019-07-01")
    assert sections(book) == ["Chapter One", "Oases", "Chapter Two"]  # chapter two's heading is its table-of-contents label
    depth = next(p for p in passages_of(service, "book") if "Pacific" in p.text)
    assert depth.section == "Chapter Two" and "Ocean | Deepest point\nPacific | 10994 m" in depth.text
    assert "var hidden" not in book.text


def test_rtf_text_and_its_info_metadata(service, docs):
    cafes = docs["cafes"]
    assert (cafes.title, cafes.author, cafes.published) == ("Café notes", "René Roe", "2018-01-11")
    assert sections(cafes) == ["Café Culture"]  # as in plain text: a short line without closing punctuation
    text = " ".join(p.text for p in passages_of(service, "cafes"))
    assert "coffee — the first newspapers" in text and "House | Founded\nLloyd's | 1686" in text


def test_eml_subject_from_date_and_the_plain_body(service, docs):
    budget = docs["budget"]
    assert (budget.title, budget.author, budget.published) == ("Budget for the harbour project", "Ann Smith", "2024-03-05")
    assert "approved at 1.2 million euros" in budget.text
    assert "HTML ALTERNATIVE" not in budget.text and SECRET not in budget.text  # plain preferred; a picture is not read
    # each attachment of a kind read here follows the body as a section of its own, read by that kind's reader
    assert sections(budget) == [None, "Attachment: notes.txt", "Attachment: tools.csv"]
    assert budget.text.endswith("Attachment: notes.txt\n\nThe crane rental costs 300 euros a day.\n\nThe barge is booked for "
                                "May.\n\nAttachment: tools.csv\n\nrow | Tool | Count\n2 | Torque wrench | 2\n3 | Chain tool | 9\n")


def test_an_attachment_is_cited_in_the_message(service):
    with TestClient(create_app(service=service)) as client:
        top = client.post("/query", json={"question": "How many torque wrenches are there?", "top_k": 1}).json()["passages"][0]
        citation = top["citation"]
        assert (citation["document"], citation["section"]) == ("budget", "Attachment: tools.csv")
        text = client.get("/documents/budget").json()["text"]
        assert text[citation["start"]:citation["end"]] == top["text"] and top["highlight"]["text"] == "2 | Torque wrench | 2"


def test_word_lists_keep_their_numbers_and_bullets_and_library_defaults_are_no_metadata(tmp_path):
    """Word draws a list's numbers; the paragraph text holds none ("What is the second step?" had nothing to find).
    A file a script wrote keeps python-docx's name as author and its template's 2013 date: neither is metadata."""
    import docx

    document = docx.Document()
    document.add_paragraph("Claiming expenses")
    for step in ("Keep the receipt.", "Submit it in the portal.", "Wait for approval."):
        document.add_paragraph(step, style="List Number")
    for way in ("Taxi", "Train"):
        document.add_paragraph(way, style="List Bullet")
    document.save(tmp_path / "expenses.docx")
    expenses = load_document(tmp_path / "expenses.docx")
    assert "1. Keep the receipt.\n\n2. Submit it in the portal.\n\n3. Wait for approval.\n\n• Taxi\n\n• Train" in expenses.text
    assert (expenses.author, expenses.published) == (None, None)
    document.core_properties.author = "Ann Smith"
    document.core_properties.created = dt.datetime(2024, 5, 2, 9, 30)
    document.save(tmp_path / "signed.docx")
    assert (load_document(tmp_path / "signed.docx").author, load_document(tmp_path / "signed.docx").published) == ("Ann Smith", "2024-05-02")


def test_a_sheets_numbers_read_as_their_cells_show_them(tmp_path):
    """A discount formatted 0% is 0.1 in the file and "10%" on screen; the reader, and the question, see the screen."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Pricing"
    sheet.append(["Plan", "Price", "Discount", "Seats", "Total", "Rate"])
    sheet.append(["Team", 12.5, 0.1, 5, 1234.5, 0.075])
    for cell, form in (("B2", '"£"#,##0.00'), ("C2", "0%"), ("E2", "#,##0.00"), ("F2", "0.0%")):
        sheet[cell].number_format = form
    sheet.append(["Pro", 30, 0.15, 10, 20000, 3.5])
    sheet["B3"].number_format, sheet["C3"].number_format = "[$€-407]#,##0.00", "0%"
    workbook.save(tmp_path / "pricing.xlsx")
    text = load_document(tmp_path / "pricing.xlsx").text
    assert "2 | Team | £12.50 | 10% | 5 | 1,234.50 | 7.5%" in text
    assert "3 | Pro | €30.00 | 15% | 10 | 20000 | 3.5" in text  # General stays as stored
    from types import SimpleNamespace

    shown = lambda value, form: office._shown_value(SimpleNamespace(value=value, number_format=form))  # noqa: E731
    assert (shown(12.5, '"£"#,##0'), shown(0.125, "0.00")) == ("£13", "0.13")  # half up, as Excel rounds
    for form in ("0.00E+00", '0" kg"', '0.0,,"M"', '0.0%;-0.0%;"—"', "@"):  # shown otherwise: the stored number
        assert shown(2.5, form) == 2.5


def test_a_presentation_without_a_title_property_is_titled_by_its_first_slide(tmp_path):
    """PowerPoint shows a deck by its first slide's title; a file name ("agm-2025") is what is left without one."""
    from pptx import Presentation

    deck = Presentation()  # python-pptx's template: no title property
    deck.slides.add_slide(deck.slide_layouts[6])  # a blank first slide has no title
    add_slide(deck, 0, "Annual General Meeting 2025", "The club elected a new captain and raised the junior fee.")
    add_slide(deck, 1, "Fees", "The junior fee rises to 90 pounds a year.")
    deck.save(tmp_path / "agm-2025.pptx")
    assert load_document(tmp_path / "agm-2025.pptx").title == "Annual General Meeting 2025"
    deck.core_properties.title = "AGM minutes"
    deck.save(tmp_path / "agm-2025.pptx")
    assert load_document(tmp_path / "agm-2025.pptx").title == "AGM minutes"  # the property, when the file has one


def test_eml_of_attachments_only_is_read_and_one_of_nothing_readable_is_skipped(tmp_path):
    message = EmailMessage()
    message["Subject"], message["From"], message["Date"] = "Rota", "Ann <ann@example.org>", "Mon, 02 Dec 2024 09:00:00 +0000"
    message.add_attachment(b"Day,Who\r\nMonday,Ann\r\nTuesday,Bob\r\n", maintype="text", subtype="csv", filename="rota.csv")
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, "Night shifts are paid at one and a half times the day rate.")
    message.add_attachment(bytes(pdf.output()), maintype="application", subtype="pdf", filename="pay.pdf")
    (tmp_path / "rota.eml").write_bytes(bytes(message))
    rota = load_document(tmp_path / "rota.eml")
    assert sections(rota) == ["Attachment: rota.csv", "Attachment: pay.pdf"] and "3 | Tuesday | Bob" in rota.text
    assert "Night shifts are paid at one and a half times the day rate." in rota.text
    picture = EmailMessage()
    picture["Subject"], picture["From"], picture["Date"] = "Photo", "Ann <ann@example.org>", "Mon, 02 Dec 2024 09:00:00 +0000"
    picture.add_attachment(b"\x89PNG\r\n\x1a\n", maintype="image", subtype="png", filename="site.png")
    (tmp_path / "photo.eml").write_bytes(bytes(picture))
    with pytest.raises(Unreadable, match="no text body and no attachment of a kind read here"):
        load_document(tmp_path / "photo.eml")
    # an attachment that would take the message over its size limit, its heading counted, is left out; the body stays
    kept = []
    for size in range(900, 1000, 5):
        big = EmailMessage()
        big["Subject"], big["From"], big["Date"] = "Big", "Ann <ann@example.org>", "Mon, 02 Dec 2024 09:00:00 +0000"
        big.set_content("The body is short.")
        big.add_attachment("x" * size, filename="big.txt")
        read = office.read_eml(bytes(big), "big.eml", 1000)  # never "over the limit" for the whole message
        assert read.text.startswith("The body is short.") and len(read.text.encode()) <= 1000
        kept.append("Attachment: big.txt" in read.text)
    assert kept[0] and not kept[-1]  # 900 bytes fit beside the body and the heading, 995 do not


def test_eml_reply_keeps_the_reply_not_the_message_it_quotes(tmp_path):
    """The quoted message would be cited as the replier's words ("I cannot send anything", by Peter)."""
    message = EmailMessage()
    message["Subject"] = "Re: Mail server down?"
    message["From"] = "Peter Novak <peter@example.org>"
    message["Date"] = "Sun, 15 Nov 2026 11:00:00 +0100"
    message.set_content("Yes, it was down from nine to ten for the disk swap.\n\nPeter\n\n"
                        "On Sun, 15 Nov 2026, Karin Holm\n<karin@example.org> wrote:\n> Is the mail server down?\n"
                        "> I cannot send anything.\n")
    (tmp_path / "reply.eml").write_bytes(bytes(message))
    outlook = EmailMessage()
    outlook["Subject"] = "RE: Invoice"
    outlook["From"] = "Ann <ann@example.org>"
    outlook.set_content("Paid today.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\n\nPlease pay invoice 42.\n")
    (tmp_path / "outlook.eml").write_bytes(bytes(outlook))
    only = EmailMessage()
    only["Subject"] = "Fwd: notes"
    only.set_content("> every line of this body is quoted\n> and nothing else\n")
    (tmp_path / "only-quote.eml").write_bytes(bytes(only))
    gmail = EmailMessage()
    gmail["Subject"] = "Re: Parking"
    gmail["From"] = "Lena <lena@example.org>"
    gmail.set_content('<div dir="ltr">Staff park on level 3 of the west garage until June.</div><br>'
                      '<div class="gmail_quote"><div class="gmail_attr">On Mon, Nov 2, Tom wrote:</div>'
                      '<blockquote class="gmail_quote">Where do we park during the renovation?</blockquote></div>', subtype="html")
    (tmp_path / "gmail.eml").write_bytes(bytes(gmail))
    outlook_html = EmailMessage()
    outlook_html["Subject"] = "RE: Keys"
    outlook_html["From"] = "Ann <ann@example.org>"
    outlook_html.set_content('<div>The keys are at the front desk.</div><hr><div id="divRplyFwdMsg"><b>From:</b> Bob</div>'
                             '<div>Where are the keys for room 12?</div>', subtype="html")
    (tmp_path / "outlook-html.eml").write_bytes(bytes(outlook_html))
    docs = {d.id: d for d in load_corpus(tmp_path).documents}
    assert "level 3 of the west garage" in docs["gmail"].text and "Where do we park" not in docs["gmail"].text
    assert "Tom wrote" not in docs["gmail"].text
    assert "front desk" in docs["outlook-html"].text and "room 12" not in docs["outlook-html"].text
    reply = docs["reply"].text
    assert "down from nine to ten" in reply and "Peter" in reply
    assert "cannot send" not in reply and "Karin" not in reply and "wrote:" not in reply
    assert "Paid today." in docs["outlook"].text and "invoice 42" not in docs["outlook"].text
    assert "every line of this body is quoted" in docs["only-quote"].text  # nothing but quotation: kept whole


def test_a_query_cites_the_slide_and_the_sheet(service):
    with TestClient(create_app(service=service)) as client:
        top = client.post("/query", json={"question": "What contract was signed with the harbour authority?", "top_k": 1}).json()
        citation = top["passages"][0]["citation"]
        assert (citation["document"], citation["section"], citation["page"], citation["page_end"]) == ("review", "Revenue", 2, 2)
        top = client.post("/query", json={"question": "Who is the manager of Region 57?", "top_k": 3}).json()
        hit = next(p for p in top["passages"] if "Region 57 |" in p["text"])
        assert hit["citation"]["section"] == "Sales" and hit["text"].startswith("row | Region | Quarter | Revenue | Manager")
        text = client.get("/documents/figures").json()["text"]
        assert text[hit["citation"]["start"] : hit["citation"]["end"]] == hit["text"]
        # each row is a sentence, embedded under its header: the highlight is the row that answers, not the whole sheet
        highlight = hit["highlight"]
        assert highlight["text"].split(" | ")[:2] == ["59", "Region 57"] and text[highlight["start"] : highlight["end"]] == highlight["text"]
        top = client.post("/query", json={"question": "Which office does Bob work in?", "top_k": 1}).json()
        assert top["passages"][0]["highlight"]["text"] == "4 | Bob | 2021-01-02 | Tallinn"
        # a row the sheet does not have is not answered by the nearest one (rag.query.verdict.missing_row)
        absent = client.post("/query", json={"question": "Which office does Carla work in?", "top_k": 1}).json()
        assert (absent["verdict"], absent["confidence"]) == ("not_found", MISSING_ROW_CONFIDENCE)


# --- the readers alone: limits, hostile files, a missing library -------------------------------


def test_the_dispatch_table_covers_every_suffix_the_loader_accepts():
    assert set(office.SUFFIXES) == {".docx", ".odt", ".pptx", ".xlsx", ".csv", ".epub", ".rtf", ".eml"}
    assert set(office.SUFFIXES) <= set(formats.SUPPORTED_SUFFIXES)
    assert set(office.SUFFIXES) <= set(formats.EXTRACTED_SUFFIXES)  # read in the worker, within its time budget


def _skipped(seeds: Path, max_bytes: int = 20 * 1024 * 1024) -> dict[str, str]:
    corpus = load_corpus(seeds, max_bytes=max_bytes)
    reasons = {s.path: s.reason for s in corpus.skipped}
    for path, reason in reasons.items():
        assert path in reason and SECRET not in reason
    return reasons


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "good.txt").write_text("A good file that is always read.\n", encoding="utf-8")
    for suffix in (".docx", ".xlsx", ".pptx", ".odt", ".epub"):
        with zipfile.ZipFile(seeds / f"bomb{suffix}", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("[Content_Types].xml", "<Types/>")
            z.writestr("word/document.xml", b"\0" * 10_000_000)  # 10 MB of zeros: 10 KB in the file
        assert (seeds / f"bomb{suffix}").stat().st_size < 50_000
    reasons = _skipped(seeds, max_bytes=200_000)
    assert len(reasons) == 5
    for reason in reasons.values():
        assert "unpack to 10.0 MB, over the 6.2 MB allowed" in reason and "RAG_MAX_DOCUMENT_BYTES" in reason


def test_text_past_the_size_limit_is_refused_as_it_is_read(tmp_path):
    import docx

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    d = docx.Document()
    for i in range(2000):
        d.add_paragraph(f"Paragraph {i} repeats the same sentence about rivers and their mouths, again and again.")
    d.save(seeds / "long.docx")
    (seeds / "long.csv").write_bytes(b"a,b\n" + b"1,2\n" * 10_000)
    assert (seeds / "long.docx").stat().st_size < 50_000 and (seeds / "long.csv").stat().st_size < 50_000
    reasons = _skipped(seeds, max_bytes=50_000)  # each file is under the limit, its text (190 KB, 110 KB) is not
    assert "its text is over" in reasons["long.docx"] and "RAG_MAX_DOCUMENT_BYTES" in reasons["long.docx"]
    assert "RAG_MAX_DOCUMENT_BYTES" in reasons["long.csv"]


def test_broken_and_foreign_files_are_skipped_with_a_reason(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "old.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + SECRET.encode() * 20)  # OLE: .doc, or a password
    (seeds / "notzip.pptx").write_bytes(SECRET.encode() * 20)
    (seeds / "empty.xlsx").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # a zip with nothing in it
    (seeds / "plain.rtf").write_bytes(SECRET.encode())
    (seeds / "latin1.csv").write_bytes(b"caf\xe9," + SECRET.encode())
    (seeds / "headers.eml").write_bytes(f"X-Nothing: 1\n\n{SECRET}\n".encode())
    reasons = _skipped(seeds)
    assert "password-protected file or an old binary Office format" in reasons["old.docx"]
    assert "not a valid zip container" in reasons["notzip.pptx"]
    assert "could not be parsed as an Excel workbook" in reasons["empty.xlsx"]
    assert "not an RTF file" in reasons["plain.rtf"]
    assert "not valid UTF-8" in reasons["latin1.csv"]
    assert "not an e-mail message" in reasons["headers.eml"]


def test_a_missing_library_skips_its_file_with_the_fix(tmp_path, monkeypatch):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "good.txt").write_text("A good file that is always read.\n", encoding="utf-8")
    make_docx(tmp_path / "made.docx")  # with the real library, before it goes missing
    raw = (tmp_path / "made.docx").read_bytes()
    (seeds / "report.docx").write_bytes(raw + b"\0")  # bytes no other test read (the loader remembers refusals)
    fake = tmp_path / "fake" / "docx"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named docx')\n")
    monkeypatch.syspath_prepend(str(fake.parent))  # the worker process is started with this path too
    for module in [m for m in sys.modules if m == "docx" or m.startswith("docx.")]:
        monkeypatch.delitem(sys.modules, module)
    corpus = load_corpus(seeds)
    assert [d.id for d in corpus.documents] == ["good"]
    assert [(s.path, s.reason) for s in corpus.skipped] == [
        ("report.docx", "report.docx: reading .docx files needs python-docx, which is not installed (pip install python-docx)")]
    with pytest.raises(Unreadable, match=re.escape("(pip install python-docx)")):
        office.read_docx(raw, "made.docx", 10**6)  # in this process too: never an ImportError


@pytest.mark.parametrize("module, package, suffix", [("pptx", "python-pptx", ".pptx"), ("openpyxl", "openpyxl", ".xlsx"),
                                                     ("ebooklib", "ebooklib", ".epub"), ("striprtf.striprtf", "striprtf", ".rtf")])
def test_each_reader_names_its_package_when_it_is_missing(monkeypatch, module, package, suffix):
    monkeypatch.setitem(sys.modules, module, None)  # `import` raises ImportError
    raw = RTF if suffix == ".rtf" else b"PK\x05\x06" + b"\0" * 18
    with pytest.raises(Unreadable, match=re.escape(f"(pip install {package})")):
        office.READERS[suffix](raw, f"x{suffix}", 10**6)


def test_row_groups_fit_the_window_by_the_model_count(encoders):
    """The estimate the groups are cut by stays above the model's own count on table-like text, so the chunker
    never has to split a group (which would leave its second half without the header)."""
    count = encoders.builder().count_tokens
    rows = [(i, [f"SKU-{i:07d}x{i * 7919 % 10007}", f"{i * 3.14159:.5f}", "Zürich Straße ÄÖÜ", "2024-02-29", "中文字符", ""])
            for i in range(2, 300)]
    for group in office.row_groups(rows, numbered=True):
        assert count(group) <= 200
