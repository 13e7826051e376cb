"""Formats: turning the bytes of one file into the text a document serves, plus what the file says about itself.

Each reader returns an `Extracted`: the text that every offset will index into
(and that `GET /documents/{id}` returns), the metadata found in the file, where
the body may start, and, for HTML and PDF, where headings and pages are.

- `.txt`: UTF-8 with or without a BOM; the BOM is dropped and CRLF / CR line
  endings become LF, so a Windows file has the same paragraphs and offsets as
  its Unix twin. Offsets index into this normalised text, not the raw bytes.
- `.md`, `.markdown`: the same, plus YAML front matter (PyYAML `safe_load`:
  lists, dates, quoted strings; no tags that build objects).
- `.html`, `.htm`: trafilatura finds the main content (no navigation, cookie
  banners, scripts, styles, footers) and the page's title, author, date and
  canonical URL. Its XML output is flattened here into paragraphs separated by
  blank lines, headings as their own lines, whitespace inside a paragraph
  collapsed. Chosen over readability-lxml/BeautifulSoup heuristics for its
  extraction quality in published benchmarks and built-in metadata; pure Python over lxml.
- `.pdf`: pypdf, text per page; lines are joined into paragraphs (a break at a
  blank line, after a line that pypdf's layout mode shows
  followed by vertical space, or after a line ending a sentence that is shorter
  than 85% of the page's longest line), a line-end hyphen before
  a lower-case letter is removed, pages are separated by a blank line and their
  start offsets kept for `page_of`. pypdf over PyMuPDF: pure Python, no
  binary wheel and a permissive licence (PyMuPDF is AGPL); its text is good
  enough for paragraph retrieval. A PDF whose pages hold no text (a scan) is
  refused: there is no OCR here.

Every refusal is an `Unreadable` whose message is the skip reason; none quotes
the file's content (a parser's own message may, so only its kind is reported).
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from rag.errors import Unreadable
from rag.corpus.metadata import validate

TEXT_SUFFIXES = (".txt",)
MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + MARKDOWN_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES

_EXTRACTED: dict[tuple[str, str, str], Extracted] = {}  # in-process memo of HTML/PDF extraction, oldest out first
_EXTRACTED_MAX = 5000
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?---[ \t]*(?:\n|\Z)", re.S)


@dataclass(frozen=True)
class Extracted:
    text: str
    metadata: dict
    body_floor: int = 0  # the body starts at or after this offset (after front matter)
    kind: str = "text"  # text | markdown | html | pdf: how headings are recognised
    headings: frozenset[int] = frozenset()  # html: the start offsets of heading blocks
    pages: tuple[int, ...] = ()  # start offset of each page (PDF)


def read(path: Path, raw: bytes, name: str) -> Extracted:
    """The document text and metadata in `raw`, the bytes of `path` (`name` is its path as shown to users)."""
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES + HTML_SUFFIXES:
        key = (suffix, name, hashlib.sha256(raw).hexdigest())
        if key not in _EXTRACTED:  # extraction takes ~0.1-0.5 s a page: a reload re-reads only what changed
            if len(_EXTRACTED) >= _EXTRACTED_MAX:
                _EXTRACTED.pop(next(iter(_EXTRACTED)))
            _EXTRACTED[key] = _read_pdf(raw, name) if suffix in PDF_SUFFIXES else _read_html(raw, name)
        return _EXTRACTED[key]
    text = _decode(raw, name)
    if suffix in MARKDOWN_SUFFIXES:
        return _read_markdown(text, name)
    return Extracted(text, {})


def _decode(raw: bytes, name: str) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"{name} is not valid UTF-8 (byte {exc.start}); save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_markdown(text: str, name: str) -> Extracted:
    match = _FRONT_MATTER.match(text)
    if not match:
        return Extracted(text, {}, kind="markdown")
    import yaml

    try:
        loaded = yaml.safe_load(match.group(1) or "") or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise Unreadable(f"{name}: the front matter is not valid YAML{where}") from None
    if not isinstance(loaded, dict):
        raise Unreadable(f"{name}: the front matter must be a mapping of `key: value` lines")
    metadata = validate({str(k).lower() if isinstance(k, str) else k: v for k, v in loaded.items()}, f"{name} front matter")
    return Extracted(text, metadata, body_floor=match.end(), kind="markdown")


# --- HTML ----------------------------------------------------------------------------------

_BLOCK_TAGS = {"head", "p", "item", "quote", "row", "code", "list", "table", "div", "main", "doc", "cell"}
_CONTAINERS = {"list", "table", "div", "main", "doc"}


def _read_html(raw: bytes, name: str) -> Extracted:
    import trafilatura
    from lxml import etree

    try:
        xml = trafilatura.extract(
            raw, output_format="xml", include_comments=False, include_tables=True, include_links=False,
            include_images=False, include_formatting=False, favor_recall=True, with_metadata=True,
        )
    except Exception:  # noqa: BLE001 - any parser failure is a skip reason, not a crash
        raise Unreadable(f"{name} could not be parsed as HTML") from None
    if not xml:
        raise Unreadable(f"{name} has no main text that could be extracted")
    root = etree.fromstring(xml.encode("utf-8"))
    blocks: list[tuple[str, bool]] = []  # (text, is_heading)
    _flatten(root, blocks)
    text, headings = _join_blocks(blocks)
    if not text.strip():
        raise Unreadable(f"{name} has no main text that could be extracted")
    found = root.attrib  # the page's metadata, as trafilatura's XML carries it (one parse, not two)
    meta = {"title": _clean(found.get("title", "")), "author": found.get("author"), "published": found.get("date"),
            "url": found.get("url"), "publication": found.get("sitename")}
    meta = validate({k: v for k, v in meta.items() if v}, f"{name} page metadata", lenient=True)
    return Extracted(text, meta, kind="html", headings=frozenset(headings))


def _flatten(element, blocks: list[tuple[str, bool]]) -> None:
    """Blocks of text in reading order; inline elements (code, hi, ref) stay inside their block."""
    inline: list[str] = [element.text or ""]
    for child in element:
        if child.tag in _BLOCK_TAGS and not (child.tag == "code" and element.tag not in _CONTAINERS | {"item"}):
            _emit(inline, element.tag == "head", blocks)
            inline = []
            _flatten(child, blocks)
        else:
            inline.append("".join(child.itertext()))
        inline.append(child.tail or "")
    _emit(inline, element.tag == "head", blocks)


def _emit(parts: list[str], heading: bool, blocks: list[tuple[str, bool]]) -> None:
    text = _clean("".join(parts))
    if text:
        blocks.append((text, heading))


def _clean(text: str) -> str:
    """Whitespace collapsed, Sphinx-style permalink marks (¶) dropped."""
    return " ".join(text.replace("¶", " ").split())


def _join_blocks(blocks: list[tuple[str, bool]]) -> tuple[str, list[int]]:
    parts, headings, offset = [], [], 0
    for text, heading in blocks:
        if heading:
            headings.append(offset)
        parts.append(text)
        offset += len(text) + 2
    return "\n\n".join(parts) + "\n", headings


# --- PDF -----------------------------------------------------------------------------------

_SENTENCE_END = ".!?:;\"”’)"


def _read_pdf(raw: bytes, name: str) -> Extracted:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable(f"{name} is an encrypted PDF; save it without a password")
        pages = [(page.extract_text() or "", _gap_lines(page)) for page in reader.pages]
        info = reader.metadata
    except Unreadable:
        raise
    except Exception:  # noqa: BLE001 - pypdf raises many kinds; the file is skipped with one reason
        raise Unreadable(f"{name} could not be parsed as PDF") from None
    if not any(text.strip() for text, _ in pages):
        raise Unreadable(f"{name} has no text layer (a scanned PDF?); only PDFs with text can be indexed")
    parts, starts, offset = [], [], 0
    for page, gap_lines in pages:
        text = _page_paragraphs(page, gap_lines)
        starts.append(offset)
        parts.append(text)
        offset += len(text) + 2
    meta = {}
    if info is not None:
        created = info.creation_date if _safe(lambda: info.creation_date) else None
        meta = {"title": info.title, "author": info.author, "published": created}
        meta = validate({k: v for k, v in meta.items() if v}, f"{name} PDF metadata", lenient=True)
    return Extracted("\n\n".join(parts) + "\n", meta, kind="pdf", pages=tuple(starts))


def _safe(read) -> bool:
    try:
        read()
        return True
    except Exception:  # noqa: BLE001 - a malformed date in the PDF info is simply absent
        return False


def _gap_lines(page) -> set[str]:
    """Lines followed by vertical space: pypdf's layout mode renders such gaps as blank lines. Its text
    is not used itself, since it reads a two-column page across both columns."""
    try:
        lines = [" ".join(line.split()) for line in (page.extract_text(extraction_mode="layout") or "").split("\n")]
    except Exception:  # noqa: BLE001 - layout mode is only a hint
        return set()
    return {line for line, after in zip(lines, lines[1:]) if line and not after}


def _page_paragraphs(page: str, gap_lines: set[str]) -> str:
    """One page's lines joined into paragraphs separated by blank lines."""
    lines = [" ".join(line.split()) for line in page.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    widths = [len(line) for line in lines if line]
    short = 0.85 * max(widths, default=0)  # a line this much shorter than the longest may end its paragraph
    paragraphs, current = [], ""
    for line in lines:
        if not line:
            if current:
                paragraphs.append(current)
            current = ""
            continue
        if current.endswith("-") and line[0].islower():
            current = current[:-1] + line
        else:
            current = f"{current} {line}" if current else line
        if line in gap_lines or (len(line) < short and line[-1] in _SENTENCE_END):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)
