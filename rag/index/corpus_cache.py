"""The corpus as last read, remembered beside the index: opening an up-to-date index does not re-read seeds/.

Reading seeds/ parses every file (HTML through trafilatura in a worker process, PDF, office formats): on a few
thousand passages of HTML manuals that is most of a start-up. So `read_corpus` (rag.index.build) asks this
module first. `recall` returns the `Corpus` read last time when nothing under seeds/ has changed since, judged
by a cheap stat fingerprint: every entry under seeds/ (recursively, symbolic links not followed, their targets
recorded) with its size, mtime_ns, ctime_ns and inode. Any difference (a file added, removed, renamed,
replaced, edited, touched, even an edit of the same size with its mtime set back, since ctime cannot be set
back) means the folder is read again as before, and the content hash then decides whether the index is
stale. The fingerprint also covers what reads the files: the source of rag/corpus/, the reader libraries'
versions, the size limit and the OCR tools on PATH, so an upgraded reader (or Tesseract installed) reads again.

Safety first, so a stat is trusted only when it can be:
- a file changed within `RACY_SECONDS` of the listing could change again within the same timestamp tick
  (the "racy git" problem): such a corpus is not remembered, and the next open reads the folder again;
- a corpus with a file skipped for a reason that may not recur (`TRANSIENT_SKIPS`: a time budget, a crash,
  a file removed while reading) is not remembered whole, so the file is tried again by the next process that
  may build from it. A process that may not build (`retry_transient=False`: RAG_AUTO_BUILD=false, replicas)
  takes that reading as it was, skips and all, when nothing changed: a file near its time budget could otherwise
  run past it while `rag index` builds and within it when the service opens, and the service would refuse an
  index built from the folder as it stands;
- the listing is taken before the files are read, so a change during the read shows up next time;
- the cache file is plain JSON checked field by field; anything unexpected (a forged or truncated file,
  another version) is ignored and the folder is read. It lives in a folder of the index directory
  (`cache/corpus.json`, written atomically) and is trusted like the index files beside it.

When something changed, the folder is read again, but file by file (`read_reusing`): a document whose file and
sidecar have the same stat as when it was read (both listed as plain files, or the sidecar absent both times)
and were not changed within `RACY_SECONDS` of that listing is taken from the cache instead of being parsed
again; every other file (new, changed, reached through a symbolic link, skipped last time) is read. So adding
one document over HTTP reads that one file. The cache is written after each read, with whether it may be
recalled whole (`whole`: no stat was racy and no skip was transient) or only file by file.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import operator
import os
import stat
import threading
import time
from collections.abc import Iterable
from importlib import metadata as package_metadata
from pathlib import Path, PurePosixPath

from rag.corpus import documents as corpus_documents
from rag.corpus import ocr
from rag.corpus.documents import SIDECAR_SUFFIX, Corpus, Document, Paragraph, Section, Skipped, load_document
from rag.corpus.formats import Extractor
from rag.corpus.metadata import LONE_SURROGATE
from rag.errors import RagError, Unreadable
from rag.files import write_atomic

log = logging.getLogger(__name__)

CACHE_FILE = "cache/corpus.json"  # under the index directory, beside (not among) the index files
CACHE_VERSION = 2  # 2: the listing time and whether the whole corpus may be recalled
RACY_SECONDS = 2.0
TRANSIENT_SKIPS = ("took longer than", "stopped on this file", "removed while reading", "cannot be read", "could not be read", "needs more than")
READER_LIBRARIES = ("trafilatura", "lxml", "pypdf", "pyyaml", "python-docx", "python-pptx", "openpyxl", "ebooklib", "striprtf")
CORPUS_SOURCE = Path(__file__).resolve().parent.parent / "corpus"
MAX_ENTRIES = 1_000_000  # entries listed under seeds/ before giving up on the fingerprint (the folder is then read)


def fingerprint(seeds_dir: Path, max_bytes: int) -> dict | None:
    """What decides the corpus: every entry under `seeds_dir` by stat, and what reads them; None if it cannot be listed."""
    try:
        entries, newest = _listing(Path(seeds_dir))
    except (OSError, OverflowError):
        return None
    listed_at = time.time_ns()
    racy = newest > listed_at - int(RACY_SECONDS * 1e9)
    return {"version": CACHE_VERSION, "seeds": str(Path(seeds_dir).resolve()), "max_bytes": max_bytes, "reader": _reader(),
            "ocr": _ocr_engine(), "entries": entries, "racy": racy, "listed_at": listed_at}


def recall(index_dir: Path, current: dict | None, retry_transient: bool = True) -> Corpus | None:
    """The corpus remembered for exactly this fingerprint, or None (nothing remembered, or something changed). With
    `retry_transient` False, also one that is not whole only because a skip may not recur (stored as read: no stat was
    racy and every document was kept)."""
    if current is None:
        return None
    found = _stored(index_dir)
    if found is None or found["fingerprint"] != _comparable(current):
        return None
    if found["whole"] is not True and (retry_transient or found.get("as_read") is not True):
        return None
    return Corpus(tuple(found["documents"]), found["skipped"])


_MEMO: dict[str, tuple[tuple, dict]] = {}  # cache file -> (its stat, its contents parsed): what this process wrote or read last
_MEMO_LOCK = threading.Lock()


def _stat_key(path: Path) -> tuple:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _stored(index_dir: Path) -> dict | None:
    """The cache file's contents with its documents and skips parsed and checked, or None (none, unreadable, not ours).
    A file this process wrote or read last, unchanged since by stat, is not parsed again."""
    path = Path(index_dir) / CACHE_FILE
    try:
        key = _stat_key(path)
        with _MEMO_LOCK:
            memo = _MEMO.get(str(path))
        if memo is not None and memo[0] == key:
            return memo[1]
        with open(path, "rb") as f:
            found = json.loads(f.read())
        if not isinstance(found, dict):
            return None
        found = {**found, "documents": [_document(d) for d in found["documents"]], "skipped": tuple(Skipped(*s) for s in found["skipped"]),
                 "whole": found["whole"] is True}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:  # unreadable or not ours: read seeds/
        log.info("ignoring %s: %s", CACHE_FILE, type(exc).__name__)
        return None
    with _MEMO_LOCK:
        _MEMO[str(path)] = (key, found)
    return found


def reusable(index_dir: Path, current: dict | None) -> dict[str, Document]:
    """The remembered documents that can be taken as they are (see the module docstring), by their path under seeds/."""
    if current is None:
        return {}
    found = _stored(index_dir)
    try:
        if found is None:
            return {}
        before = found["fingerprint"]
        if not isinstance(before, dict) or {k: v for k, v in before.items() if k != "entries"} != {
                k: v for k, v in _comparable(current).items() if k != "entries"}:
            return {}
        listed_at = found["listed_at"]
        if not _int(listed_at):
            return {}
        trusted_before = listed_at - int(RACY_SECONDS * 1e9)
        old = {row[0]: row for row in before["entries"] if isinstance(row, list) and len(row) == 7 and isinstance(row[0], str)}
        new = {row[0]: row for row in current["entries"]}
        kept: dict[str, Document] = {}
        for document in found["documents"]:
            relative = document.source
            if _unchanged(relative, old, new, trusted_before) and _plain_folders(relative, new) and \
                    _unchanged(_sidecar_of(relative), old, new, trusted_before, absent_ok=True):
                kept[relative] = document
        return kept
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        log.info("ignoring %s: %s", CACHE_FILE, type(exc).__name__)
        return {}


def _sidecar_of(relative: str) -> str:
    path = PurePosixPath(relative)
    return str(path.with_name(path.stem + SIDECAR_SUFFIX))


def _unchanged(relative: str, old: dict, new: dict, trusted_before: int, absent_ok: bool = False) -> bool:
    """The entry is listed the same in both listings, as a plain file changed well before the old one (or, with
    `absent_ok`, absent from both)."""
    before, now = old.get(relative), new.get(relative)
    if before is None and now is None:
        return absent_ok
    return before == now and now[1] == "file" and now[3] < trusted_before and now[4] < trusted_before


def _plain_folders(relative: str, new: dict) -> bool:
    """Every folder on the way to `relative` is a folder, not a symbolic link."""
    parts = PurePosixPath(relative).parts[:-1]
    return all((row := new.get("/".join(parts[: i + 1]))) is not None and row[1] == "dir" for i in range(len(parts)))


def read_reusing(seeds_dir: Path, max_bytes: int, max_extract_seconds: float | None, known: dict[str, Document]) -> Corpus:
    """`load_corpus(seeds_dir, max_bytes, max_extract_seconds)`, the same result, with the documents in `known` (by path
    under seeds/, from `reusable`) taken as they are instead of being read again: load_corpus's own walk, order,
    duplicate-id and orphan-sidecar rules (rag.corpus.documents), file by file."""
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise RagError(f"seeds directory {seeds_dir} does not exist")
    root = seeds_dir.resolve()
    files, skipped, sidecars = corpus_documents._walk(root)
    documents: dict[str, Document] = {}
    with Extractor(corpus_documents._extract_seconds(max_extract_seconds)) as extractor:  # its worker starts only if a file needs it
        for relative, path in files:
            doc = known.get(relative)
            if doc is None or doc.path != path:
                try:
                    doc = load_document(path, root, relative, max_bytes, extractor=extractor)
                except Unreadable as exc:
                    skipped.append(Skipped(relative, str(exc)))
                    continue
                except Exception as exc:  # noqa: BLE001 - the last net: one file never stops the others
                    log.debug("reading %s failed", relative, exc_info=True)
                    skipped.append(Skipped(relative, f"{relative} could not be read ({type(exc).__name__})"))
                    continue
            if doc.id in documents:
                other = documents[doc.id].source
                skipped.append(Skipped(relative, f"{relative} has the same document id '{doc.id}' as {other}; rename one"))
                continue
            documents[doc.id] = doc
    skipped += corpus_documents._orphan_sidecars(files, skipped, sidecars)
    return Corpus(tuple(sorted(documents.values(), key=lambda d: d.id)), tuple(sorted(skipped, key=lambda s: s.path)))


def remember(index_dir: Path, current: dict | None, corpus: Corpus, reused: Iterable[Document] = ()) -> bool:
    """Write `corpus` under `current` (taken before it was read); True if written. When a stat of it cannot be trusted
    (racy) or a skip may not recur, it is written for `reusable` only, never to be recalled whole. `reused`: documents
    taken from this cache (`reusable`), which need no check that JSON holds them exactly."""
    if current is None:
        return False
    whole = not current["racy"] and not any(part in s.reason for s in corpus.skipped for part in TRANSIENT_SKIPS)
    index, seeds = Path(index_dir).resolve(), Path(current["seeds"])
    if index == seeds or seeds in index.parents:  # never a file among the user's documents (the index refuses this place too)
        return False
    if not (index / "manifest.json").is_file():  # only beside a built index: a process that must not build (a replica,
        with _MEMO_LOCK:  # auto-build off) leaves a missing index folder as it found it; a build then writes it (remember_pending)
            _PENDING[str(index)] = (current, corpus)
        return False
    kept = list(corpus.documents)
    if not whole:  # only what `reusable` may take: documents whose file and sidecar were not changed just now
        entries, trusted_before = {row[0]: row for row in current["entries"]}, current["listed_at"] - int(RACY_SECONDS * 1e9)
        kept = [d for d in kept if _unchanged(d.source, entries, entries, trusted_before)
                and _unchanged(_sidecar_of(d.source), entries, entries, trusted_before, absent_ok=True)]
        if not kept:
            return False
    as_read = current["racy"] is False and len(kept) == len(corpus.documents)  # the reading itself, skips and all
    head = {"fingerprint": _comparable(current), "listed_at": current["listed_at"], "whole": whole, "as_read": as_read}
    skipped = [[s.path, s.reason] for s in corpus.skipped]
    checked = {id(d) for d in reused}  # read back from this very cache: JSON holds them exactly
    try:
        with _MEMO_LOCK:
            known = dict(_ROWS)
        rows = []
        for document in kept:
            written = known.get(id(document))
            if written is None or written[0] is not document:
                row = json.dumps(_row(document), ensure_ascii=False)
                if id(document) not in checked:
                    again = _document(json.loads(row))
                    if again != document or again.extra != document.extra:
                        return False  # something JSON cannot hold exactly (a date in front matter): read seeds/ each time instead
                written = (document, row)
            rows.append(written)
        # the whole file is json.dumps of {**head, "documents": [rows], "skipped": skipped}; each document's row is kept
        # as written, so the next write serializes only the documents it has not written before
        text = json.dumps(head, ensure_ascii=False)[:-1] + ', "documents": [' + ", ".join(r for _, r in rows) + '], "skipped": ' \
            + json.dumps(skipped, ensure_ascii=False) + "}"
        path = Path(index_dir) / CACHE_FILE
        write_atomic(path, _escape_surrogates(text), hidden=True)
        stored = {**head, "documents": kept, "skipped": tuple(corpus.skipped)}
        with _MEMO_LOCK:
            _MEMO[str(path)] = (_stat_key(path), stored)
            _ROWS.clear()
            _ROWS.update((id(d), (d, row)) for d, row in rows)
    except (OSError, TypeError, ValueError) as exc:  # a read-only index, or a value JSON cannot write
        log.debug("corpus cache not written: %s", exc)
        return False
    return True


_ROWS: dict[int, tuple[Document, str]] = {}  # id(document) -> (document, its row as JSON): the rows this process wrote last


_PENDING: dict[str, tuple[dict, Corpus]] = {}  # index folder -> the last read not written for want of an index there


def remember_pending(index_dir: Path) -> bool:
    """After a build: write the corpus last read for `index_dir` that could not be written before there was an index."""
    with _MEMO_LOCK:
        pending = _PENDING.pop(str(Path(index_dir).resolve()), None)
    return pending is not None and remember(index_dir, *pending)


def _escape_surrogates(text: str) -> str:
    """`text` (JSON) with each lone surrogate written as its \\u escape: a file name that is not UTF-8 reaches Python
    as surrogates (os.fsdecode), which UTF-8 cannot encode; escaped, the file stays UTF-8 and json.loads gives them back.
    They occur only inside JSON strings, where an escape means the same character."""
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _comparable(current: dict) -> dict:
    return {key: value for key, value in current.items() if key not in ("racy", "listed_at")}


def _listing(root: Path) -> tuple[list, int]:
    """[relative path, kind, size, mtime_ns, ctime_ns, inode, link target] for every entry, depth first in name order;
    and the newest mtime/ctime seen."""
    rows, newest, stack = [], 0, [("", root)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in reversed(entries):
            st = entry.stat(follow_symlinks=False)
            kind = "link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "file"
            relative = prefix + entry.name
            target = os.readlink(entry.path) if kind == "link" else None
            rows.append([relative, kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, target])
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
            if kind == "dir":
                stack.append((relative + "/", entry.path))
            if len(rows) > MAX_ENTRIES:
                raise OverflowError("too many entries")
    rows.sort(key=lambda r: r[0])
    return [[os.fsencode(r[0]).decode("utf-8", "backslashreplace"), *r[1:6],
             None if r[6] is None else os.fsencode(r[6]).decode("utf-8", "backslashreplace")] for r in rows], newest


@functools.lru_cache(maxsize=1)
def _reader() -> dict:
    """The source of rag/corpus/ and the versions of the libraries it reads files with (once a process: the code it
    runs cannot change under it)."""
    digest = hashlib.sha256()
    for path in sorted(CORPUS_SOURCE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    versions = {}
    for name in READER_LIBRARIES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = None
    return {"source_sha256": digest.hexdigest(), "libraries": versions}


def _ocr_engine() -> str | None:
    """What would OCR scanned PDF pages now ("tesseract 5.3.0, pdftoppm 22.12.0"), or None: asked at every
    fingerprint, not once a process, since Tesseract can be installed while a server runs. A PDF with text pages
    and scanned ones is read from its text pages alone without OCR; installing (or upgrading) Tesseract must read
    it again, so this is part of what decides the corpus."""
    found = ocr.tools()
    return ocr.engine(found) if found else None


_SECTION_VALUES = operator.attrgetter(*(f.name for f in dataclasses.fields(Section)))
_PARAGRAPH_VALUES = operator.attrgetter(*(f.name for f in dataclasses.fields(Paragraph)))
_DOCUMENT_FIELDS = tuple(f.name for f in dataclasses.fields(Document))


def _row(document: Document) -> dict:
    row = {name: getattr(document, name) for name in _DOCUMENT_FIELDS}
    row["path"] = str(document.path)
    row["sections"] = [_SECTION_VALUES(s) for s in document.sections]  # as dataclasses.astuple gives them (flat fields)
    row["paragraphs"] = [_PARAGRAPH_VALUES(p) for p in document.paragraphs]
    row["authors"], row["pages"] = list(document.authors), list(document.pages)
    return row


def _document(row: dict) -> Document:
    """A Document from its row, every field of the type the readers give it (TypeError/ValueError otherwise)."""
    if not isinstance(row, dict) or set(row) != set(_DOCUMENT_FIELDS):
        raise ValueError("not a document row")
    for name in ("id", "path", "text", "title", "content_hash", "source"):
        _check(isinstance(row[name], str), name)
    for name in ("subtitle", "author", "publication", "published", "url"):
        _check(row[name] is None or isinstance(row[name], str), name)
    _check(_int(row["body_start"]) and _int(row["body_end"]) and isinstance(row["extra"], dict), "body")
    _check(isinstance(row["sections"], list) and isinstance(row["paragraphs"], list), "a row")
    sections = tuple(Section(*s) for s in row["sections"] if _section_row(s))
    paragraphs = tuple(Paragraph(*p) for p in row["paragraphs"] if _paragraph_row(p))
    _check(isinstance(row["authors"], list) and isinstance(row["pages"], list), "authors")
    _check(all(isinstance(a, str) for a in row["authors"]) and all(_int(n) for n in row["pages"]), "authors")
    return Document(**{**row, "path": Path(row["path"]), "sections": sections, "paragraphs": paragraphs,
                       "authors": tuple(row["authors"]), "pages": tuple(row["pages"])})


def _section_row(s) -> bool:
    """[title (text or null), heading_start, heading_end, end]; TypeError otherwise."""
    _check(type(s) is list and len(s) == 4 and (s[0] is None or type(s[0]) is str) and type(s[1]) is int and type(s[2]) is int
           and type(s[3]) is int, "a section")
    return True


def _paragraph_row(p) -> bool:
    """[number, section (text or null), start, end]; TypeError otherwise."""
    _check(type(p) is list and len(p) == 4 and type(p[0]) is int and (p[1] is None or type(p[1]) is str) and type(p[2]) is int
           and type(p[3]) is int, "a paragraph")
    return True


def _int(value) -> bool:
    return type(value) is int


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise TypeError(f"{what} has the wrong type")
