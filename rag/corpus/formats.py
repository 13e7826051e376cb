"""Formats: turning the bytes of one file into the text a document serves, plus what the file says about itself.

Each reader returns an `Extracted`: the text that every offset will index into
(and that `GET /documents/{id}` returns), the metadata found in the file, where
the body may start, and, for HTML, PDF and the office formats, where headings and pages are.

- `.txt`: UTF-8 with or without a BOM; the BOM is dropped and CRLF / CR line
  endings become LF, so a Windows file has the same paragraphs and offsets as
  its Unix twin. Offsets index into this normalised text, not the raw bytes.
- `.md`, `.markdown`: the same, plus YAML front matter (PyYAML's safe loader:
  lists, dates, quoted strings; no tags that build objects), bounded: at most
  `MAX_FRONT_MATTER_CHARS` characters, `MAX_YAML_ALIASES` aliases (`*name`; an
  alias inside the value it names is refused), `MAX_YAML_VALUES` values counting
  every alias as the values it stands for (a "billion laughs" of nested aliases
  is refused before it is expanded), `MAX_DEPTH` levels of nesting, integers of
  `MAX_INT_DIGITS` digits. A date that is no real date (`2020-02-30`) stays the
  text it was, for the metadata check to refuse by its field.
- `.html`, `.htm`: rag/corpus/webpage.py: trafilatura for the main content of an article, a
  structural walk for manuals whose headings trafilatura drops; headings in any case as sections,
  `<pre>` kept with its line breaks, navigation out; title, dates and author only from the page's own
  metadata (`<title>`, date meta tags), never from its text.
- `.pdf`: pypdf, text per page; lines are joined into paragraphs (a break at a
  blank line, after a line that pypdf's layout mode shows
  followed by vertical space, or after a line ending a sentence that is shorter
  than 85% of the page's longest line), a line-end hyphen before
  a lower-case letter is removed, pages are separated by a blank line and their
  start offsets kept for `page_of`. pypdf over PyMuPDF: pure Python, no
  binary wheel and a permissive licence (PyMuPDF is AGPL); its text is good
  enough for paragraph retrieval. A page without a text layer (a scan) is read
  with OCR (rag/corpus/ocr.py: Tesseract, when installed) and is then a page
  like any other; without OCR a PDF with no text at all is refused with a
  reason naming the command that installs it, and a PDF with some text pages is
  read from those.
- `.docx`, `.odt`, `.pptx`, `.xlsx`, `.csv`, `.epub`, `.rtf`, `.eml`: rag/corpus/office.py (headings
  as sections, a slide as a page, a sheet's header in every group of rows, an e-mail's headers as metadata).

HTML, PDF and the office formats are read by a worker process (`Extractor`), never in the caller's
process: a file whose reading takes longer than its time budget
(`RAG_MAX_EXTRACT_SECONDS`, counted from when the worker is ready: its own start, up to
`WORKER_START_SECONDS`, is not the file's; a scan's OCR is within it, and stops itself
just before, saying how far it got) has its worker killed and is skipped saying so, a
worker that dies (a crash, or past `EXTRACT_MEMORY_BYTES` of memory) costs only
that file, and the next file gets a fresh worker. The text a file yields is capped
at the document size limit (`RAG_MAX_DOCUMENT_BYTES`, UTF-8 bytes): a small PDF
whose compressed streams unpack to 30 MB of text is refused, not served. Results
come back as JSON (no pickle). Plain text and Markdown are read in-process.

Every refusal is an `Unreadable` whose message is the skip reason; none quotes
the file's content (a parser's own message may, so only its kind is reported).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from rag.errors import Unreadable
from rag.corpus import ocr, office, webpage
from rag.corpus.extracted import Extracted
from rag.corpus.metadata import LONE_SURROGATE, MAX_DEPTH, MAX_INT_DIGITS, validate

TEXT_SUFFIXES = (".txt",)
MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
OFFICE_SUFFIXES = office.SUFFIXES  # .docx .odt .pptx .xlsx .csv .epub .rtf .eml: rag/corpus/office.py
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + MARKDOWN_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES + OFFICE_SUFFIXES
EXTRACTED_SUFFIXES = PDF_SUFFIXES + HTML_SUFFIXES + OFFICE_SUFFIXES  # read by the worker process

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # RAG_MAX_DOCUMENT_BYTES: a file, and the text extracted from it
DEFAULT_EXTRACT_SECONDS = 30.0  # RAG_MAX_EXTRACT_SECONDS: reading one HTML or PDF file
WORKER_START_SECONDS = 120.0  # a fresh worker's imports (pypdf, trafilatura, lxml), before any file's budget starts
EXTRACT_MEMORY_BYTES = 1 << 30  # address space a worker may add to what it holds when it starts
MAX_FRONT_MATTER_CHARS = 64 * 1024
MAX_YAML_ALIASES = 20
MAX_YAML_VALUES = 10_000

_EXTRACTED: dict[tuple, Extracted | str] = {}  # in-process memo of HTML/PDF extraction (or its refusal), oldest out first
_EXTRACTED_MAX = 5000
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?---[ \t]*(?:\n|\Z)", re.S)


def read(path: Path, raw: bytes, name: str, max_bytes: int = DEFAULT_MAX_BYTES, extractor: Extractor | None = None) -> Extracted:
    """The document text and metadata in `raw`, the bytes of `path` (`name` is its path as shown to users).

    HTML, PDF and the office formats go to `extractor` (a worker process with a time budget); without one they are read in this
    process, unbounded in time: what the worker itself does."""
    suffix = path.suffix.lower()
    if suffix in EXTRACTED_SUFFIXES:
        key = (suffix, name, hashlib.sha256(raw).hexdigest(), max_bytes, ocr.tools() if suffix in PDF_SUFFIXES else None)  # OCR installed: read again
        if key not in _EXTRACTED:  # extraction takes ~0.1-0.5 s a page: a reload re-reads only what changed
            try:
                found: Extracted | str = extractor.extract(suffix, raw, name, max_bytes) if extractor else _extract(suffix, raw, name, max_bytes)
            except Stopped:
                raise  # out of time or a dead worker: tried again next time
            except Unreadable as exc:
                found = str(exc)  # the same bytes are refused for the same reason: remembered too
            if len(_EXTRACTED) >= _EXTRACTED_MAX:
                _EXTRACTED.pop(next(iter(_EXTRACTED)))
            _EXTRACTED[key] = found
        found = _EXTRACTED[key]
        if isinstance(found, str):
            raise Unreadable(found)
        return found
    text = _decode(raw, name)
    if suffix in MARKDOWN_SUFFIXES:
        return _read_markdown(text, name)
    return Extracted(text, {})


def _extract(suffix: str, raw: bytes, name: str, max_bytes: int, seconds: float | None = None) -> Extracted:
    """HTML, PDF or an office format read here and now; the text capped at `max_bytes` (UTF-8) and always encodable as UTF-8.

    `seconds`, the file's time budget, bounds a PDF's OCR (the worker passes it; without it OCR is unbounded in time)."""
    if suffix == ".eml":  # its PDF attachments are read by the PDF reader, within the file's budget
        extracted = office.read_eml(raw, name, max_bytes, read_pdf=lambda pdf, label, limit: _read_pdf(pdf, label, limit, seconds))
    elif suffix in office.READERS:
        extracted = office.READERS[suffix](raw, name, max_bytes)
    else:
        extracted = _read_pdf(raw, name, max_bytes, seconds) if suffix in PDF_SUFFIXES else webpage.read_html(raw, name)
    _check_size(extracted.text, name, max_bytes)
    if LONE_SURROGATE.search(extracted.text):  # one character for one: every offset stays where it was
        extracted = Extracted(LONE_SURROGATE.sub("\ufffd", extracted.text), extracted.metadata, extracted.body_floor,
                              extracted.kind, extracted.headings, extracted.pages, extracted.heading_levels)
    return extracted


def _check_size(text: str, name: str, max_bytes: int, where: str = "") -> None:
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise Unreadable(
            f"{name}: its text{where} is over the {max_bytes / 1e6:.1f} MB limit per document (RAG_MAX_DOCUMENT_BYTES)"
        )


def _decode(raw: bytes, name: str) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"{name} is not valid UTF-8 (byte {exc.start}); save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- Markdown front matter -----------------------------------------------------------------


def _read_markdown(text: str, name: str) -> Extracted:
    match = _FRONT_MATTER.match(text)
    if not match:
        return Extracted(text, {}, kind="markdown")
    import yaml

    front = match.group(1) or ""
    if len(front) > MAX_FRONT_MATTER_CHARS:
        raise Unreadable(f"{name}: the front matter is longer than {MAX_FRONT_MATTER_CHARS:,} characters (the limit)")
    try:
        loaded = yaml.load(front, Loader=_bounded_loader()) or {}
    except _FrontMatterLimit as exc:
        raise Unreadable(f"{name}: the front matter {exc.args[0]}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise Unreadable(f"{name}: the front matter is not valid YAML{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # a constructor refusing a value the limits let through
        raise Unreadable(f"{name}: the front matter holds a value that cannot be read ({type(exc).__name__})") from None
    if not isinstance(loaded, dict):
        raise Unreadable(f"{name}: the front matter must be a mapping of `key: value` lines")
    metadata = validate({str(k).lower() if isinstance(k, str) else k: v for k, v in loaded.items()}, f"{name} front matter")
    return Extracted(text, metadata, body_floor=match.end(), kind="markdown")


_LOADER = None


def _bounded_loader():
    """PyYAML's safe loader, with the limits in the module docstring (made once, on first use: yaml loads lazily)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml
    from yaml.constructor import SafeConstructor

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0
            self._aliases = 0
            self._values = 0  # values composed so far, each alias counted as the values it stands for
            self._sizes: dict[str, int] = {}  # anchor -> values under it
            self._open: set[str] = set()  # anchors whose value is being composed

        def _count(self, n: int) -> None:
            self._values += n
            if self._values > MAX_YAML_VALUES:
                raise _FrontMatterLimit(f"expands to more than {MAX_YAML_VALUES:,} values (YAML aliases; the limit)")

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                anchor = self.peek_event().anchor
                self._aliases += 1
                if self._aliases > MAX_YAML_ALIASES:
                    raise _FrontMatterLimit(f"uses more than {MAX_YAML_ALIASES} YAML aliases (*name; the limit)")
                if anchor in self._open:
                    raise _FrontMatterLimit("holds a YAML alias inside the value it names (a loop)")
                self._count(self._sizes.get(anchor, 1))
                return super().compose_node(parent, index)
            if self._depth >= MAX_DEPTH:
                raise _FrontMatterLimit(f"is nested more than {MAX_DEPTH} levels deep (the limit)")
            anchor = self.peek_event().anchor
            before = self._values
            self._count(1)
            self._depth += 1
            if anchor is not None:
                self._open.add(anchor)
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
                self._open.discard(anchor)
            if anchor is not None:
                self._sizes[anchor] = self._values - before
            return node

        def construct_yaml_int(self, node):
            if len(node.value) > MAX_INT_DIGITS + 3:  # sign, 0x/0o/0b
                raise _FrontMatterLimit(f"holds a number of more than {MAX_INT_DIGITS} digits (the limit)")
            return SafeConstructor.construct_yaml_int(self, node)

        def construct_yaml_timestamp(self, node):
            try:
                return SafeConstructor.construct_yaml_timestamp(self, node)
            except ValueError:  # 2020-02-30: kept as written, for the metadata check to refuse by its field
                return self.construct_scalar(node)

    BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
    BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", BoundedLoader.construct_yaml_timestamp)
    _LOADER = BoundedLoader
    return _LOADER


class _FrontMatterLimit(Exception):  # noqa: N818 - its message completes "the front matter ..."
    """Front matter past one of the limits (raised from inside the YAML loader)."""


# --- the worker process ----------------------------------------------------------------------


class Stopped(Unreadable):
    """Reading a file was stopped (out of time, its OCR too, or its worker died): not remembered, tried again on the next load."""


class Extractor:
    """Reads HTML, PDF and office files in a worker process, one at a time, each within `seconds`.

    The worker (a fresh interpreter, started on the first file) is killed when a file takes longer, or replaced
    when it dies; either way that file is skipped with a reason and the next one gets a new worker. Requests
    and replies are length-prefixed JSON over pipes. Not for use by two threads at once: a `load_corpus` makes
    its own. Use as a context manager (or `close()`), so the worker ends with the load."""

    def __init__(self, seconds: float = DEFAULT_EXTRACT_SECONDS):
        if not seconds > 0:
            raise ValueError("the extraction time budget must be positive")
        self.seconds = float(seconds)
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # the worker's read ends: it exits
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass

    def _worker(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._kill()
        code = "import json, sys; sys.path[:] = json.loads(sys.argv[1]); from rag.corpus.formats import serve_worker; serve_worker()"
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code, json.dumps(sys.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True,
        )
        try:  # its imports done: from here on the time is the file's (a loaded machine's slow start is not)
            _receive(self._proc.stdout.fileno(), time.monotonic() + WORKER_START_SECONDS)
        except (TimeoutError, OSError, EOFError):
            self._kill()
            raise Stopped(f"the worker that reads HTML, PDF and office files did not start within {WORKER_START_SECONDS:g} s") from None
        return self._proc

    def extract(self, suffix: str, raw: bytes, name: str, max_bytes: int) -> Extracted:
        """What `read` gives for these bytes, read by the worker; raises Unreadable (Stopped when out of time)."""
        kind = "PDF" if suffix in PDF_SUFFIXES else "HTML" if suffix in HTML_SUFFIXES else suffix
        proc = self._worker()
        started = time.monotonic()
        header = json.dumps({"suffix": suffix, "name": name, "max_bytes": max_bytes, "size": len(raw), "seconds": self.seconds}).encode()
        try:
            proc.stdin.write(len(header).to_bytes(4, "big") + header)
            proc.stdin.write(raw)
            proc.stdin.flush()
            reply = json.loads(_receive(proc.stdout.fileno(), started + self.seconds))
        except TimeoutError:
            self._kill()
            raise Stopped(
                f"{name}: reading it took longer than {self.seconds:g} s, the limit per file (RAG_MAX_EXTRACT_SECONDS); it was stopped"
            ) from None
        except (OSError, EOFError, ValueError):  # the worker died: a crash, or out of memory
            self._kill()
            raise Stopped(f"{name}: the {kind} reader stopped on this file (it crashed or ran out of memory)") from None
        if "unreadable" in reply:
            raise (Stopped if reply.get("stopped") else Unreadable)(reply["unreadable"])
        found = reply["extracted"]
        metadata = {k: tuple(v) if k == "authors" else v for k, v in found["metadata"].items()}
        return Extracted(found["text"], metadata, found["body_floor"], found["kind"], frozenset(found["headings"]), tuple(found["pages"]),
                         tuple((offset, level) for offset, level in found.get("heading_levels", ())))


def _receive(fd: int, deadline: float) -> bytes:
    """One length-prefixed message from `fd`, or TimeoutError once `deadline` (monotonic) passes."""
    data = bytearray()
    size = None
    while size is None or len(data) < 4 + size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise EOFError
        data += chunk
        if size is None and len(data) >= 4:
            size = int.from_bytes(data[:4], "big")
    return bytes(data[4:])


def serve_worker() -> None:
    """The worker's loop: read a request from stdin, extract, write the reply to stdout; until stdin closes."""
    import resource

    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # nothing a library prints can corrupt a reply
    source = os.fdopen(os.dup(0), "rb")
    os.dup2(devnull, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with open("/proc/self/statm") as statm:  # pages: total program size
        start = int(statm.read().split()[0]) * resource.getpagesize()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = start + EXTRACT_MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    import pypdf  # noqa: F401 - loaded before the first file, so the budget is spent on reading it
    import trafilatura  # noqa: F401

    out.write((2).to_bytes(4, "big") + b"{}")  # ready: the parent starts a file's clock after this
    out.flush()

    while True:
        head = source.read(4)
        if len(head) < 4:
            return
        request = json.loads(source.read(int.from_bytes(head, "big")))
        raw = source.read(request["size"])
        name = request["name"]
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime + 2 * request["seconds"] + 5)
        _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu_hard))  # an orphaned worker still stops (SIGXCPU)
        try:
            found = _extract(request["suffix"], raw, name, request["max_bytes"], request["seconds"])
            reply = {"extracted": {"text": found.text, "metadata": found.metadata, "body_floor": found.body_floor, "kind": found.kind,
                                   "headings": sorted(found.headings), "pages": list(found.pages),
                                   "heading_levels": [list(pair) for pair in found.heading_levels]}}
        except ocr.OutOfTime as exc:
            reply = {"unreadable": str(exc), "stopped": True}
        except Unreadable as exc:
            reply = {"unreadable": str(exc)}
        except MemoryError:
            reply = {"unreadable": f"{name}: reading it needs more than {EXTRACT_MEMORY_BYTES >> 30} GB of memory (the limit per file)"}
        except Exception as exc:  # noqa: BLE001 - the readers catch their parsers' errors; this is the last net
            reply = {"unreadable": f"{name} could not be read ({type(exc).__name__})"}
        try:
            data = json.dumps(reply, ensure_ascii=False).encode("utf-8")
        except MemoryError:
            data = json.dumps({"unreadable": f"{name}: reading it needs more than {EXTRACT_MEMORY_BYTES >> 30} GB of memory (the limit per file)"}).encode()
        out.write(len(data).to_bytes(4, "big") + data)
        out.flush()


# --- PDF -----------------------------------------------------------------------------------

_SENTENCE_END = ".!?:;\"”’)"
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(r"^(?:\d{1,5}|[ivxlcdm]{1,7}|[IVXLCDM]{1,7})$")
# a first or last line that only numbers its page: "Page 3", "Page 3 of 12", "p. 3", "- 3 -", "3 / 12", "Seite 3 von 12"
_PAGE_LABEL = re.compile(r"^(?:(?:page|pg\.?|p\.|seite|página|pagina|pagină|sida|side|strona)\s*)?[-–—]?\s*\d{1,5}\s*[-–—]?"
                         r"(?:\s*(?:of|/|von|de|di|av|af|z)\s*\d{1,5})?$", re.I)
_CONTENTS_LINE = re.compile(r"(?:\.\s*){4,}\s*(?:\d{1,5}|[ivxlcdm]{1,7})$")  # dot leaders, then a page number
_PAINTS = {b"Do", b"INLINE IMAGE", b"sh", b"S", b"s", b"f", b"F", b"f*", b"B", b"B*", b"b", b"b*", b"Tj", b"TJ", b"'", b'"'}
_NUMBERED = re.compile(r"^(?:(?:\d{1,2}(?:\.\d{1,3}){0,4}\.?)|(?:[A-Z](?:\.\d{1,3}){1,4}\.?)|(?:Appendix|Chapter|Part)\s+[A-Z0-9]{1,3}\.?)\s+[A-Z]")


def _read_pdf(raw: bytes, name: str, max_bytes: int = DEFAULT_MAX_BYTES, seconds: float | None = None) -> Extracted:
    """A PDF's text, page by page: its text layer, and OCR (rag/corpus/ocr.py) for each page without one, when
    Tesseract is installed. `seconds` bounds the OCR (the file's budget, counted from now)."""
    import logging

    from pypdf import PdfReader

    # OCR stops a little before the worker's parent gives up on the file (its clock started first), so the reply says how far it got
    deadline = None if seconds is None else time.monotonic() + 0.95 * seconds
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable(f"{name} is an encrypted PDF; save it without a password")
        pages, scanned, size = [], [], 0
        for number, page in enumerate(reader.pages, 1):
            text = page.extract_text() or ""
            size += len(text.encode("utf-8", "surrogatepass")) + 2
            if size > max_bytes:  # stop here, before the layout pass and the pages after
                raise Unreadable(
                    f"{name}: its text is over the {max_bytes / 1e6:.1f} MB limit per document by page {number} (RAG_MAX_DOCUMENT_BYTES)"
                )
            pages.append((text, _gap_lines(page)))
            if not text.strip() and _draws_something(page):  # no text layer, but not blank: a scan (or text drawn as outlines)
                box = page.mediabox
                unit = float(page.user_unit or 1)
                scanned.append((number, ocr.dpi_for(float(box.width) * unit, float(box.height) * unit)))
    except Unreadable:
        raise
    except Exception:  # noqa: BLE001 - pypdf raises many kinds; the file is skipped with one reason
        raise Unreadable(f"{name} could not be parsed as PDF") from None
    has_text = any(text.strip() for text, _ in pages)
    found = ocr.tools() if scanned else None
    if scanned and found is None and not has_text:
        raise ocr.missing(name)  # without OCR a PDF with some text pages is read from those
    if found:
        for number, text in ocr.read_pages(raw, scanned, name, found, deadline, seconds):
            size += len(text.encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                raise Unreadable(
                    f"{name}: its text is over the {max_bytes / 1e6:.1f} MB limit per document by page {number} (RAG_MAX_DOCUMENT_BYTES)"
                )
            pages[number - 1] = (text, set())  # Tesseract separates its paragraphs by blank lines
        if not any(text.strip() for text, _ in pages):
            raise Unreadable(f"{name} has no text layer (a scanned PDF?) and OCR found no text in it")
    if not any(text.strip() for text, _ in pages):
        raise Unreadable(f"{name} has no text layer (a scanned PDF?); only PDFs with text can be indexed")
    metadata = _pdf_metadata(reader, name)
    if found:  # in the content hash: the index is rebuilt when OCR starts (or stops) reading these pages, or changes
        metadata["ocr"] = f"{ocr.engine(found)}; pages {_ranges([number for number, _ in scanned])}"
    lines = _without_furniture([_lines(text) for text, _ in pages])
    title_line = None
    if "title" not in metadata:  # the first line of the first page, when it reads like a title
        first = next((line for line in lines[0] if line), "") if lines else ""
        if _title_like(first):
            metadata["title"] = title_line = first
    is_heading = _heading_rule([line for page in lines for line in page])
    out, starts, headings = "", [], []
    for number, (page_lines, (_, gap_lines)) in enumerate(zip(lines, pages)):
        text, page_headings = _page_paragraphs(page_lines, gap_lines, is_heading, title_line if number == 0 else None)
        if out:  # a paragraph that runs on over the page break stays one paragraph: it really spans both pages
            out += "\n" if _runs_on(out, text, page_headings) else "\n\n"
        starts.append(len(out))
        headings += [len(out) + at for at in page_headings]
        out += text
    return Extracted(out + "\n", metadata, kind="pdf", headings=frozenset(headings), pages=tuple(starts))


def _draws_something(page) -> bool:
    """Whether a page paints anything (an image, a path, a shading, glyphs): a blank page (an empty content stream, or
    one that only sets line widths) is not worth OCR."""
    from pypdf.generic import ContentStream

    try:
        contents = page.get_contents()
        if contents is None:
            return False
        return any(operator in _PAINTS for _, operator in ContentStream(contents, page.pdf).operations)
    except Exception:  # noqa: BLE001 - pypdf raises many kinds: then try OCR, which renders whatever is there
        return True


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _runs_on(before: str, page: str, page_headings: list[int]) -> bool:
    """Whether the text so far ends mid-sentence and `page` goes on with it (a lower-case start, no heading)."""
    return bool(before.strip() and page[:1].islower() and 0 not in page_headings and before.rstrip()[-1] not in _SENTENCE_END)


def _pdf_metadata(reader, name: str) -> dict:
    """Title, author and date from the PDF's /Info, each read on its own: one that cannot be read (an /Info or a
    value that refers to itself, a malformed date) is simply absent, and never costs the document its text."""
    try:
        info = reader.metadata
    except Exception:  # noqa: BLE001 - pypdf raises many kinds
        return {}
    if info is None:
        return {}
    meta = {}
    for key in ("title", "author", "creation_date"):
        try:
            value = getattr(info, key)
        except Exception:  # noqa: BLE001
            continue
        if value:
            meta["published" if key == "creation_date" else key] = value
    return validate(meta, f"{name} PDF metadata", lenient=True)


def _gap_lines(page) -> set[str]:
    """Lines followed by vertical space: pypdf's layout mode renders such gaps as blank lines. Its text
    is not used itself, since it reads a two-column page across both columns."""
    try:
        lines = [" ".join(line.split()) for line in (page.extract_text(extraction_mode="layout") or "").split("\n")]
    except Exception:  # noqa: BLE001 - layout mode is only a hint
        return set()
    return {line for line, after in zip(lines, lines[1:]) if line and not after}


def _lines(page: str) -> list[str]:
    return [" ".join(line.split()) for line in page.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def _furniture_key(line: str) -> str:
    return _DIGITS.sub("#", line.casefold())


def _without_furniture(pages: list[list[str]]) -> list[list[str]]:
    """Each page's lines without its running header and footer (a first or last line that recurs, numbers aside, at
    the top or bottom of three pages or more, or of both pages of a two-page file; page 1 keeps its first line, the
    title), a first or last line that only numbers its page ("7", "Page 7 of 12", "- 7 -"), and table-of-contents
    lines ("2.1 Syntax . . . . 5")."""
    ends = [[i for i, line in enumerate(page) if line][:1] + [i for i, line in enumerate(page) if line][-1:] for page in pages]
    counts: dict[str, int] = {}
    for page, where in zip(pages, ends):
        for key in {_furniture_key(page[i]) for i in where}:
            counts[key] = counts.get(key, 0) + 1
    recurring = {key for key, n in counts.items() if n >= min(3, max(2, len(pages)))}  # a two-page file: on both
    kept = []
    for number, (page, where) in enumerate(zip(pages, ends)):
        drop = {i for i in where if _PAGE_NUMBER.match(page[i]) or _PAGE_LABEL.match(page[i])
                or (_furniture_key(page[i]) in recurring and not (number == 0 and i == where[0]))}
        kept.append([line for i, line in enumerate(page) if i not in drop and not _CONTENTS_LINE.search(line)])
    return kept


def _title_like(line: str) -> bool:
    return 0 < len(line) <= 120 and len(line.split()) <= 15 and line[-1] not in ".,;:!?" and line[0].isalnum() and not _PAGE_NUMBER.match(line)


def _numbered_heading(line: str) -> bool:
    """"1. Introduction", "2.1 ASN.1 syntax", "Appendix A Copying Information": a numbered heading on its own line."""
    if not _NUMBERED.match(line) or len(line) > 90 or len(line.split()) > 12 or _CONTENTS_LINE.search(line):
        return False
    return line[-1] not in ".,;:!" and not line[-1].isdigit() and "_" not in line  # not a sentence, nor a table row ("4 CARD32 N_ENTRIES")


def _numbering_style(line: str) -> str | None:
    """"dotted" for "1." and "2.1." headings, "plain" for "1" and "2.1"; None for "A.1" or "Appendix A" (either)."""
    number = line.split()[0]
    if not number[0].isdigit():
        return None
    return "dotted" if number.endswith(".") else "plain"


def _heading_rule(lines: list[str]):
    """Which lines of this PDF are its numbered headings: those of `_numbered_heading` numbered the way most of
    them are (a document numbers its headings one way; a table row "4 CARD32 PRIORITY" among "2.9." headings is
    no heading)."""
    styles = [_numbering_style(line) for line in lines if _numbered_heading(line)]
    dotted, plain = styles.count("dotted"), styles.count("plain")
    kept = {None, "dotted" if dotted >= plain else "plain"}
    return lambda line: _numbered_heading(line) and _numbering_style(line) in kept


def _page_paragraphs(lines: list[str], gap_lines: set[str], is_heading=_numbered_heading,
                     title_line: str | None = None) -> tuple[str, list[int]]:
    """One page's lines joined into paragraphs separated by blank lines, and the offsets of its numbered headings
    (each its own paragraph; so is `title_line`, the title, when the page begins with it)."""
    widths = [len(line) for line in lines if line]
    short = 0.85 * max(widths, default=0)  # a line this much shorter than the longest may end its paragraph
    paragraphs, headings, current = [], [], ""
    for index, line in enumerate(lines):
        if not line:
            if current:
                paragraphs.append(current)
            current = ""
            continue
        if is_heading(line) or (title_line is not None and line == title_line and not paragraphs and not current):
            if current:
                paragraphs.append(current)
            if line != title_line or paragraphs:
                headings.append(len(paragraphs))
            paragraphs.append(line)
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
    starts, offset = [], 0
    for paragraph in paragraphs:
        starts.append(offset)
        offset += len(paragraph) + 2
    return "\n\n".join(paragraphs), [starts[i] for i in headings]
