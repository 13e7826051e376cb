"""Scanned PDFs end to end: real image-only PDFs made in the test (text drawn with Pillow at 200 dpi, the way an office
scanner saves a page; pypdf finds no text in them), read by the real corpus loader through the worker process, with
Debian's Tesseract when it is installed.

With Tesseract: a two-page scan is a document whose paragraphs keep their pages, its words recognised; a mixed PDF
has only its scanned page OCR'd; OCR keeps to the file's time and size budgets, saying which limit; a question is
answered from a scan through the real service, its citation naming the page and indexing the text
`GET /documents/{id}` returns. Without it (PATH without the tools): a scan is skipped with a reason naming the install
command, the other files (a mixed PDF's text pages too) still index, and installing it takes effect on the next load.
Tests that run Tesseract skip, saying so, only when it is not installed.
"""

from __future__ import annotations

import difflib
import io
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from api.app import create_app
from rag.corpus import formats, ocr
from rag.corpus.documents import load_corpus, page_of
from rag.errors import Unreadable
from rag.index import corpus_cache
from rag.service import Service
from tests.reliability_support import settings_for

DPI = 200  # an office scanner's usual resolution (Tesseract is given 300 dpi renderings of it)
TITLE = "Harbour Survey of the Northern Coast"
PAGE_1 = [
    TITLE,
    "",
    "The harbour at Kestrel Bay was dredged in the spring of 1987,",
    "and the new breakwater was finished two years later.",
    "Fishing boats moor on the eastern quay, ferries on the west.",
    "",
    "A survey of the seabed found the channel silting again,",
    "so the port authority dredges it every third summer.",
]
PAGE_2 = [
    "The lighthouse keeper records the tides every morning at six.",
    "In winter the ferry to the islands runs only on Tuesdays,",
    "when the sea is calm enough for the crossing.",
]
TEXT_PAGE = "A text page about the market square, where traders sell fish and bread on Saturday mornings."


def needs_tesseract() -> None:
    if ocr.tools() is None:
        pytest.skip(f"Tesseract is not installed here ({ocr.INSTALL}, or make ocr)")


def scan_page(lines: list[str]) -> Image.Image:
    """A letter-size page at `DPI` with `lines` in 12 pt type, grey on off-white, as a scanner saves it."""
    page = Image.new("L", (int(8.5 * DPI), int(11 * DPI)), 248)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=DPI * 12 // 72)  # Pillow's own scalable font: the same on every machine
    for number, line in enumerate(lines):
        draw.text((DPI, DPI + number * DPI // 4), line, fill=30, font=font)
    return page


def scan_pdf(*pages: list[str]) -> bytes:
    """An image-only PDF (no text layer) of `pages`, each a list of lines."""
    images = [scan_page(lines) for lines in pages]
    out = io.BytesIO()
    images[0].save(out, "PDF", resolution=DPI, save_all=True, append_images=images[1:], title=TITLE)
    return out.getvalue()


def mixed_pdf() -> bytes:
    """Page 1 text, page 2 a scan (PAGE_2), page 3 text, page 4 blank."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for _ in range(2):
        pdf.add_page()
        pdf.multi_cell(0, 5, TEXT_PAGE)
    text = PdfReader(io.BytesIO(bytes(pdf.output())))
    writer = PdfWriter()
    writer.add_page(text.pages[0])
    writer.add_page(PdfReader(io.BytesIO(scan_pdf(PAGE_2))).pages[0])
    writer.add_page(text.pages[1])
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def recognised(expected: list[str], text: str) -> float:
    """The share of the expected words that OCR gave back, in order."""
    want = words(" ".join(expected))
    matcher = difflib.SequenceMatcher(None, want, words(text), autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(want)


@pytest.fixture
def seeds(tmp_path) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "survey.pdf").write_bytes(scan_pdf(PAGE_1, PAGE_2))
    (seeds / "market.pdf").write_bytes(mixed_pdf())
    (seeds / "note.txt").write_text("A note about the harbour master's office hours, open every weekday.\n", encoding="utf-8")
    return seeds


@pytest.fixture
def no_ocr(monkeypatch, tmp_path):
    """A PATH without tesseract and pdftoppm (the worker process inherits it)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert ocr.tools() is None


def test_the_scans_have_no_text_layer():
    for raw in (scan_pdf(PAGE_1, PAGE_2), mixed_pdf()):
        reader = PdfReader(io.BytesIO(raw))
        found = [(page.extract_text() or "").strip() for page in reader.pages]
        assert found[1] == ""  # the scanned page: an image, no text
    assert [(page.extract_text() or "").strip() for page in PdfReader(io.BytesIO(scan_pdf(PAGE_1, PAGE_2))).pages] == ["", ""]


def test_a_two_page_scan_is_read_with_ocr_and_its_paragraphs_keep_their_pages(seeds):
    needs_tesseract()
    corpus = load_corpus(seeds)
    assert corpus.skipped == ()
    survey = next(d for d in corpus.documents if d.id == "survey")
    assert survey.title == TITLE
    assert recognised(PAGE_1[2:] + PAGE_2, survey.text) >= 0.95
    assert len(survey.pages) == 2 and survey.pages[0] == 0
    assert survey.extra["ocr"].startswith("tesseract ") and survey.extra["ocr"].endswith("; pages 1-2")
    for paragraph in survey.paragraphs:
        text = survey.text[paragraph.start : paragraph.end]
        expected = 2 if any(word in text for word in ("lighthouse", "Tuesdays", "crossing")) else 1  # where it was drawn
        assert page_of(survey, paragraph.start) == page_of(survey, paragraph.end - 1) == expected, text
    assert {page_of(survey, p.start) for p in survey.paragraphs} == {1, 2}
    tides = survey.text.index("lighthouse keeper")
    assert page_of(survey, tides) == 2 and page_of(survey, survey.text.index("Kestrel Bay")) == 1


def test_a_mixed_pdf_has_only_its_scanned_page_ocrd(seeds, monkeypatch):
    needs_tesseract()
    asked = []
    read_pages = ocr.read_pages

    def spy(raw, pages, *args, **kwargs):
        asked.append([number for number, _ in pages])
        return read_pages(raw, pages, *args, **kwargs)

    monkeypatch.setattr(ocr, "read_pages", spy)
    found = formats._read_pdf(mixed_pdf(), "market.pdf")
    assert asked == [[2]]  # not the text pages, nor the blank one
    assert found.metadata["ocr"].endswith("; pages 2")
    assert len(found.pages) == 4
    pages = [found.text[start:end] for start, end in zip(found.pages, [*found.pages[1:], len(found.text)])]
    assert pages[0].strip() == pages[2].strip() == TEXT_PAGE  # the text layer, as it was
    assert recognised(PAGE_2, pages[1]) >= 0.95 and pages[3].strip() == ""


def test_without_tesseract_a_scan_is_skipped_naming_the_install_and_the_rest_still_index(seeds, no_ocr):
    corpus = load_corpus(seeds)
    assert {d.id for d in corpus.documents} == {"market", "note"}
    reason = {s.path: s.reason for s in corpus.skipped}["survey.pdf"]
    assert reason.startswith("survey.pdf has no text layer") and "apt-get install tesseract-ocr" in reason and "make ocr" in reason
    market = next(d for d in corpus.documents if d.id == "market")
    assert "ocr" not in market.extra and "lighthouse" not in market.text  # its text pages only, as before OCR
    assert market.text.count("market square") == 2 and page_of(market, market.text.rindex("market square")) == 3


def test_installing_tesseract_takes_effect_on_the_next_load(seeds, monkeypatch, tmp_path):
    needs_tesseract()
    path = str(Path(ocr.tools()[0]).parent)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    without = load_corpus(seeds)
    assert [s.path for s in without.skipped] == ["survey.pdf"]
    monkeypatch.setenv("PATH", path)  # "installed": the same process loads again (a reload), nothing cached holds the skip
    with_ocr = load_corpus(seeds)
    assert with_ocr.skipped == () and {d.id for d in with_ocr.documents} == {"market", "note", "survey"}
    before = next(d for d in without.documents if d.id == "market")
    after = next(d for d in with_ocr.documents if d.id == "market")
    assert "lighthouse" in after.text and after.content_hash != before.content_hash  # the index is rebuilt for it


def test_the_corpus_cache_never_remembers_a_skip_for_want_of_ocr(seeds, no_ocr, tmp_path):
    """A start after installing Tesseract reads the scan again, though no file under seeds/ changed."""
    index = tmp_path / "index"
    index.mkdir()
    (index / "manifest.json").write_text("{}")
    corpus = load_corpus(seeds)
    current = {**corpus_cache.fingerprint(seeds, formats.DEFAULT_MAX_BYTES), "racy": False}
    assert not corpus_cache.remember(index, current, corpus)
    without_scan = type(corpus)(corpus.documents, tuple(s for s in corpus.skipped if s.path != "survey.pdf"))
    assert corpus_cache.remember(index, current, without_scan)  # the skip alone is why


def test_a_mixed_pdf_remembered_without_ocr_is_read_again_once_tesseract_is_installed(seeds, monkeypatch, tmp_path):
    """The mixed PDF reads from its text page alone without OCR (no skip, so it is remembered); the fingerprint
    names the OCR tools, so after installing them the remembered corpus is not recalled."""
    needs_tesseract()
    path = str(Path(ocr.tools()[0]).parent)
    (seeds / "survey.pdf").unlink()
    index = tmp_path / "index"
    index.mkdir()
    (index / "manifest.json").write_text("{}")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    without = load_corpus(seeds)
    current = {**corpus_cache.fingerprint(seeds, formats.DEFAULT_MAX_BYTES), "racy": False}
    assert current["ocr"] is None and without.skipped == ()
    assert corpus_cache.remember(index, current, without)
    assert corpus_cache.recall(index, {**corpus_cache.fingerprint(seeds, formats.DEFAULT_MAX_BYTES), "racy": False}) is not None
    monkeypatch.setenv("PATH", path)  # installed
    installed = {**corpus_cache.fingerprint(seeds, formats.DEFAULT_MAX_BYTES), "racy": False}
    assert installed["ocr"].startswith("tesseract ")
    assert corpus_cache.recall(index, installed) is None  # not the corpus read without OCR
    assert corpus_cache.reusable(index, installed) == {}  # nor any of its documents file by file


def test_ocr_past_the_time_budget_is_skipped_naming_the_limit_and_tried_again(seeds):
    needs_tesseract()
    (seeds / "market.pdf").unlink()
    corpus = load_corpus(seeds, max_extract_seconds=0.5)
    reason = {s.path: s.reason for s in corpus.skipped}["survey.pdf"]
    assert "took longer than 0.5 s" in reason and "RAG_MAX_EXTRACT_SECONDS" in reason
    assert [d.id for d in corpus.documents] == ["note"]
    assert any(part in reason for part in corpus_cache.TRANSIENT_SKIPS)  # not remembered by the corpus cache either
    assert [d.id for d in load_corpus(seeds).documents] == ["note", "survey"]  # nor in this process: read again


def test_ocr_text_counts_against_the_size_limit(seeds):
    needs_tesseract()
    with pytest.raises(Unreadable, match=r"survey.pdf: its text is over the 0.0 MB limit per document by page 1 \(RAG_MAX_DOCUMENT_BYTES\)"):
        formats._read_pdf(scan_pdf(PAGE_1, PAGE_2), "survey.pdf", max_bytes=100)


def test_a_drawing_without_text_is_skipped_as_having_none(tmp_path):
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 80, 80, style="F")
    raw = bytes(pdf.output())
    with pytest.raises(Unreadable, match="has no text layer"):
        formats._read_pdf(raw, "drawing.pdf")


def test_a_blank_page_is_not_sent_to_ocr(monkeypatch):
    monkeypatch.setattr(ocr, "read_pages", lambda *a, **k: pytest.fail("a blank page was sent to OCR"))
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 5, TEXT_PAGE)
    pdf.add_page()
    found = formats._read_pdf(bytes(pdf.output()), "blank.pdf")
    assert "ocr" not in found.metadata and len(found.pages) == 2


def test_a_huge_page_is_rendered_at_fewer_dpi():
    assert ocr.dpi_for(612, 792) == ocr.DPI  # letter
    poster = ocr.dpi_for(2384, 3370)  # A0
    assert poster < ocr.DPI and (2384 / 72 * poster) * (3370 / 72 * poster) <= ocr.MAX_PIXELS


def test_a_question_is_answered_from_a_scan_citing_its_page(seeds, encoders, tmp_path):
    needs_tesseract()
    service = Service.open(settings_for(seeds, tmp_path / "index"), encoders)
    with TestClient(create_app(service=service)) as client:
        top = client.post("/query", json={"question": "When does the ferry to the islands run in winter?", "top_k": 1}).json()
        hit = top["passages"][0]
        citation = hit["citation"]
        assert (citation["document"], citation["page"], citation["page_end"]) == ("survey", 2, 2)
        assert "Tuesdays" in hit["text"]
        text = client.get("/documents/survey").json()["text"]
        assert text[citation["start"] : citation["end"]] == hit["text"]
