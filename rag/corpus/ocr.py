"""OCR: the text of a PDF's scanned pages (pages without a text layer), read with Tesseract.

Owns finding the tools, rendering each scanned page to an image, running Tesseract on it within the file's time
budget, and the reasons for what it cannot do. rag/corpus/formats.py's PDF reader asks it only for the pages
pypdf found no text on, and builds the same page-aware document from its text as from a text layer: a page's OCR
text is that page (its start offset in `Extracted.pages`, so `page` in every citation), joined into paragraphs by
the same rules, and what `GET /documents/{id}` returns.

Built this way, and why:
- **Debian's programs, run as subprocesses**: `tesseract` (package tesseract-ocr, English data in
  tesseract-ocr-eng) reads the text; `pdftoppm` (poppler-utils) renders the page. No Python binding and no
  binary wheel: each is one command with a timeout, and a crash or a memory blow-up on a hostile file costs
  only that subprocess (it inherits the worker's memory and CPU limits), never the reader. Without either
  on PATH a PDF that has no text at all is skipped with a reason naming the command that enables OCR
  (`INSTALL`, also `make ocr`); a PDF with some text pages is read from those, as before OCR existed.
- **Rendering the page, not extracting its image**: a page is rendered as it looks, so a scan split into
  strips, a masked or rotated image, JBIG2 or CCITT fax data, or text drawn as outlines all come out as one
  image, which pypdf's image extraction (one image per page, at best) does not promise. pdftoppm comes
  from the same Debian archive as Tesseract; pypdfium2 would render in-process from a binary wheel.
- **300 dpi, grey** (`DPI`): Tesseract's best resolution for body text; a page so large that 300 dpi would pass
  `MAX_PIXELS` is rendered at less, so one poster-sized page cannot exhaust memory. Tesseract is told the
  resolution and runs single-threaded (`OMP_THREAD_LIMIT=1`): faster per page on a small machine that does
  other work (0.9 s against 1.3 s for a letter page here) and no threads to oversubscribe the cores.
- **Within the file's budgets**: each subprocess gets only what is left of the file's time
  (`RAG_MAX_EXTRACT_SECONDS`, given as a monotonic deadline), and running out raises `OutOfTime`, whose reason
  names that limit and how far OCR got; like the worker's own time-out it is not remembered, so the file is
  tried again on the next load. The text counts against `RAG_MAX_DOCUMENT_BYTES` page by page in the PDF
  reader, exactly as a text layer does. A subprocess also dies with the worker (PR_SET_PDEATHSIG), and the
  PDF and the page image are memory files (memfd_create, passed as /dev/fd/N: as fast as a file on disk,
  while Tesseract reading a pipe costs it ~30% more a page), so a worker killed for its time leaves no
  Tesseract and no temporary file behind.
- The engine's name and versions (`engine`) go into the document's metadata (`ocr`), so its content hash,
  and with it the index, changes when OCR starts or stops reading a PDF's pages or its version changes.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from rag.errors import Unreadable

INSTALL = "apt-get install tesseract-ocr poppler-utils"  # what enables OCR on Debian (`make ocr` runs it)
DPI = 300  # Tesseract reads body text best at 300 dpi
MAX_PIXELS = 20_000_000  # a rendered page's pixels at most (A4 at 300 dpi is 8.7 million): larger pages get fewer dpi
_VERSION = re.compile(r"\d+(?:\.\d+)+")
_PR_SET_PDEATHSIG = 1


class OutOfTime(Unreadable):
    """OCR ran out of the file's time budget: a skip, but not remembered (the next load tries again)."""

    not_remembered = True  # an e-mail whose PDF attachment ran out of time is not read without it (rag.corpus.office)


def tools() -> tuple[str, str] | None:
    """The paths of `tesseract` and `pdftoppm` on PATH, or None when either is missing (then there is no OCR)."""
    tesseract, pdftoppm = shutil.which("tesseract"), shutil.which("pdftoppm")
    return (tesseract, pdftoppm) if tesseract and pdftoppm else None


def missing(name: str) -> Unreadable:
    """The skip for a PDF with no text layer on a machine without OCR: it names the command that enables it.

    Its "cannot be read" is one of rag/index/corpus_cache.py's TRANSIENT_SKIPS, so the skip is never remembered
    beside the index: the first start after installing Tesseract reads the scan (tests/corpus/test_ocr.py)."""
    return Unreadable(f"{name} has no text layer (a scanned PDF?) and cannot be read without OCR: install Tesseract ({INSTALL}, or make ocr)")


def engine(found: tuple[str, str]) -> str:
    """"tesseract 5.3.0, pdftoppm 22.12.0": what read the scanned pages (their versions change the text)."""
    tesseract, pdftoppm = found
    return f"tesseract {_version(tesseract, '--version')}, pdftoppm {_version(pdftoppm, '-v')}"


def dpi_for(width_points: float, height_points: float) -> int:
    """The resolution to render a page of this size at: `DPI`, or less so that it stays within `MAX_PIXELS`."""
    square_inches = max(width_points * height_points, 1.0) / 72**2
    return max(1, min(DPI, int(math.sqrt(MAX_PIXELS / square_inches))))


def read_pages(raw: bytes, pages: list[tuple[int, int]], name: str, found: tuple[str, str],
               deadline: float | None = None, seconds: float | None = None) -> Iterator[tuple[int, str]]:
    """(page number, its text) for each of `pages`, (1-based number, dpi) in order, read from the PDF `raw`.

    `deadline` (time.monotonic()) bounds the whole file, `seconds` is the limit it came from (for the reason);
    without one the subprocesses run unbounded in time, as the in-process reader does. Raises OutOfTime past the
    deadline, Unreadable when a tool fails on a page."""
    tesseract, pdftoppm = found
    pdf = os.memfd_create("rag-ocr-pdf")  # files in memory, gone with the last process holding them (see the module's doc)
    try:
        with open(pdf, "wb", closefd=False) as f:
            f.write(raw)
        for done, (number, dpi) in enumerate(pages):
            image = os.memfd_create("rag-ocr-page")
            try:
                _run([pdftoppm, "-q", "-r", str(dpi), "-gray", "-f", str(number), "-l", str(number), "-singlefile", f"/dev/fd/{pdf}"],
                     (pdf,), name, number, deadline, stdout=image)
                text = _run([tesseract, f"/dev/fd/{image}", "stdout", "--dpi", str(dpi)], (image,), name, number, deadline)
            except subprocess.TimeoutExpired:
                raise OutOfTime(
                    f"{name}: reading it took longer than {seconds:g} s, the limit per file (RAG_MAX_EXTRACT_SECONDS), "
                    f"with OCR done on {done} of its {len(pages)} scanned pages; it was stopped"
                ) from None
            finally:
                os.close(image)
            yield number, text.decode("utf-8", "replace").replace("\f", "")
    finally:
        os.close(pdf)


def _run(command: list[str], fds: tuple[int, ...], name: str, number: int, deadline: float | None, stdout=subprocess.PIPE) -> bytes:
    """The standard output of `command` (which reads the files `fds`), within what is left until `deadline`
    (TimeoutExpired past it)."""
    timeout = None if deadline is None else deadline - time.monotonic()
    if timeout is not None and timeout <= 0:
        raise subprocess.TimeoutExpired(command, 0)
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL, pass_fds=fds,
                                timeout=timeout, env=_env(), preexec_fn=_die_with_parent, check=False)
    except OSError as exc:  # removed since `tools()` found it, say
        raise Unreadable(f"{name}: OCR could not run {Path(command[0]).name} ({type(exc).__name__})") from None
    if result.returncode != 0:  # a page it cannot render or read, or one past the memory limit
        raise Unreadable(f"{name}: OCR failed on page {number} ({Path(command[0]).name} exited with status {result.returncode})")
    return result.stdout


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one thread: faster per page here, and no oversubscribed cores


@functools.lru_cache(maxsize=8)
def _version_of(path: str, flag: str, mtime_ns: int) -> str:  # mtime_ns: only part of the cache key
    try:
        result = subprocess.run([path, flag], stdin=subprocess.DEVNULL, capture_output=True, timeout=10, env=_env(), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = _VERSION.search(result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace"))
    return found.group() if found else "unknown"


def _version(path: str, flag: str) -> str:
    try:
        mtime_ns = os.stat(path).st_mtime_ns  # an upgraded binary is asked again
    except OSError:
        return "unknown"
    return _version_of(path, flag, mtime_ns)


try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the timeouts alone bound a subprocess
    _prctl = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the worker that started it dies (killed for its time, say)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
