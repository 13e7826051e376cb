"""The corpus as last read, remembered beside the index: opening an up-to-date index does not re-read seeds/.

Reading seeds/ parses every file (HTML through trafilatura in a worker process, PDF, office formats): on a few
thousand passages of HTML manuals that is most of a start-up. So `read_corpus` (rag.index.build) asks this
module first. `recall` returns the `Corpus` read last time when nothing under seeds/ has changed since, judged
by a cheap stat fingerprint: every entry under seeds/ (recursively, symbolic links not followed, their targets
recorded) with its size, mtime_ns, ctime_ns and inode. Any difference (a file added, removed, renamed,
replaced, edited, touched, even an edit of the same size with its mtime set back, since ctime cannot be set
back) means the folder is read again as before, and the content hash then decides whether the index is
stale. The fingerprint also covers what reads the files: the source of rag/corpus/, the reader libraries'
versions and the size limit, so an upgraded reader reads again.

Safety first, so a stat is trusted only when it can be:
- a file changed within `RACY_SECONDS` of the listing could change again within the same timestamp tick
  (the "racy git" problem): such a corpus is not remembered, and the next open reads the folder again;
- a corpus with a file skipped for a reason that may not recur (`TRANSIENT_SKIPS`: a time budget, a crash,
  a file removed while reading) is not remembered, so the file is tried again next time;
- the listing is taken before the files are read, so a change during the read shows up next time;
- the cache file is plain JSON checked field by field; anything unexpected (a forged or truncated file,
  another version) is ignored and the folder is read. It lives in a folder of the index directory
  (`cache/corpus.json`, written atomically) and is trusted like the index files beside it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import stat
import time
from importlib import metadata as package_metadata
from pathlib import Path

from rag.corpus.documents import Corpus, Document, Paragraph, Section, Skipped
from rag.files import write_atomic

log = logging.getLogger(__name__)

CACHE_FILE = "cache/corpus.json"  # under the index directory, beside (not among) the index files
CACHE_VERSION = 1
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
    racy = newest > time.time_ns() - int(RACY_SECONDS * 1e9)
    return {"version": CACHE_VERSION, "seeds": str(Path(seeds_dir).resolve()), "max_bytes": max_bytes, "reader": _reader(),
            "entries": entries, "racy": racy}


def recall(index_dir: Path, current: dict | None) -> Corpus | None:
    """The corpus remembered for exactly this fingerprint, or None (nothing remembered, or something changed)."""
    if current is None:
        return None
    try:
        with open(Path(index_dir) / CACHE_FILE, "rb") as f:
            found = json.loads(f.read())
        if not isinstance(found, dict) or found.get("fingerprint") != _comparable(current):
            return None
        return Corpus(tuple(_document(d) for d in found["documents"]), tuple(Skipped(*s) for s in found["skipped"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:  # unreadable or not ours: read seeds/
        log.info("ignoring %s: %s", CACHE_FILE, type(exc).__name__)
        return None


def remember(index_dir: Path, current: dict | None, corpus: Corpus) -> bool:
    """Write `corpus` under `current` (taken before it was read), unless a stat of it cannot be trusted; True if written."""
    if current is None or current["racy"] or any(part in s.reason for s in corpus.skipped for part in TRANSIENT_SKIPS):
        return False
    index, seeds = Path(index_dir).resolve(), Path(current["seeds"])
    if index == seeds or seeds in index.parents:  # never a file among the user's documents (the index refuses this place too)
        return False
    if not (index / "manifest.json").is_file():  # only beside a built index: a process that must not build (a replica,
        return False  # auto-build off) leaves a missing index folder as it found it; the read after the build is kept
    data = {"fingerprint": _comparable(current), "documents": [_row(d) for d in corpus.documents],
            "skipped": [[s.path, s.reason] for s in corpus.skipped]}
    try:
        text = json.dumps(data, ensure_ascii=False)
        again = [_document(row) for row in json.loads(text)["documents"]]
        if again != list(corpus.documents) or [d.extra for d in again] != [d.extra for d in corpus.documents]:
            return False  # something JSON cannot hold exactly (a date in front matter): read seeds/ each time instead
        write_atomic(Path(index_dir) / CACHE_FILE, text, hidden=True)
    except (OSError, TypeError, ValueError) as exc:  # a read-only index, or a value JSON cannot write
        log.debug("corpus cache not written: %s", exc)
        return False
    return True


def _comparable(current: dict) -> dict:
    return {key: value for key, value in current.items() if key != "racy"}


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


def _row(document: Document) -> dict:
    row = {f.name: getattr(document, f.name) for f in dataclasses.fields(Document)}
    row["path"] = str(document.path)
    row["sections"] = [dataclasses.astuple(s) for s in document.sections]
    row["paragraphs"] = [dataclasses.astuple(p) for p in document.paragraphs]
    row["authors"], row["pages"] = list(document.authors), list(document.pages)
    return row


def _document(row: dict) -> Document:
    """A Document from its row, every field of the type the readers give it (TypeError/ValueError otherwise)."""
    names = {f.name for f in dataclasses.fields(Document)}
    if not isinstance(row, dict) or set(row) != names:
        raise ValueError("not a document row")
    for name in ("id", "path", "text", "title", "content_hash", "source"):
        _check(isinstance(row[name], str), name)
    for name in ("subtitle", "author", "publication", "published", "url"):
        _check(row[name] is None or isinstance(row[name], str), name)
    _check(_int(row["body_start"]) and _int(row["body_end"]) and isinstance(row["extra"], dict), "body")
    sections = tuple(Section(*_fields(s, (str, type(None)), int, int, int)) for s in row["sections"])
    paragraphs = tuple(Paragraph(*_fields(p, int, (str, type(None)), int, int)) for p in row["paragraphs"])
    _check(all(isinstance(a, str) for a in row["authors"]) and all(_int(n) for n in row["pages"]), "authors")
    return Document(**{**row, "path": Path(row["path"]), "sections": sections, "paragraphs": paragraphs,
                       "authors": tuple(row["authors"]), "pages": tuple(row["pages"])})


def _fields(values, *types) -> list:
    _check(isinstance(values, list) and len(values) == len(types), "a row")
    for value, kind in zip(values, types):
        _check(_int(value) if kind is int else isinstance(value, kind), "a field")
    return values


def _int(value) -> bool:
    return type(value) is int


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise TypeError(f"{what} has the wrong type")
