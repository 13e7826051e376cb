"""Documents: reading seeds/ into text with metadata, sections and paragraphs.

A document is one file anywhere under seeds/ (subfolders too): `.txt`, `.md`,
`.markdown`, `.html`, `.htm` or `.pdf` (rag/corpus/formats.py turns each into text),
or `.docx`, `.odt`, `.pptx`, `.xlsx`, `.csv`, `.epub`, `.rtf` or `.eml` (rag/corpus/office.py).
Every offset the service hands out indexes into `Document.text`, which
`GET /documents/{id}` serves: for text and Markdown the file decoded as UTF-8
with a BOM dropped and CRLF/CR line endings turned into LF (nothing else
changed); for the other formats the extracted text. `document.text[start:end] ==
passage.text` holds for every passage of every format. For a PDF,
`Document.pages` holds each page's start offset and `page_of()` gives the
1-based page of any offset; for a .pptx each slide is a page.

The id is the path under seeds/ without its extension, each folder and the
name slugged and joined by dots (`library/functools.html` -> `library.functools`;
accents dropped, `Über` -> `uber`; a name in another script gets 8 hex digits of its
hash, `заметка` -> `document-a5e6e782`); a second file with the same id is skipped,
never merged or renamed.

Nothing is silently lost: `load_corpus` returns every document and, for every
other file under seeds/, a `Skipped(path, reason)`: unsupported type, hidden
file or folder, a symbolic link leading outside seeds/ or in a loop, a folder
more than `MAX_FOLDER_DEPTH` deep, not a regular file, removed while reading,
over the size limit (the file, or the text it yields), too slow to read (the
time budget per HTML/PDF file, rag/corpus/formats.py), empty, not UTF-8, a parse
error, no text, invalid metadata, a duplicate id. One bad file never stops the
others (whatever it raises, it is skipped naming the kind of error), and no
reason quotes file content. `<name>.meta.json` sidecars are metadata, not
documents.

Paths and reasons are always valid Unicode: a file name whose bytes are not
UTF-8 (Linux allows any bytes) is shown with those bytes escaped (`caf\\xe9.txt`),
and control characters likewise, so a skip reason, a document's `source` and
the title taken from a file name can always be written as UTF-8 JSON or a log line.

Metadata is never guessed from the body text, except one thing: without a
title in the metadata, a first line that reads like a title (short, one line,
no closing punctuation; in Markdown a first `#` heading) is the title. It comes
from the sidecar `<name>.meta.json` beside the file, which wins over what the
file says about itself (Markdown YAML front matter, HTML page metadata, PDF
info); rag/corpus/metadata.py checks every value. The sidecar may list `furniture`:
exact paragraphs that are magazine furniture (category tags, "buy the print
edition" lines). Those, paragraphs that repeat the metadata (title, subtitle,
author), and a closing tag list ("a / b / c") are kept out of the body.

Section headings are Markdown `#` lines, HTML headings, the headings an office
reader found (Word heading styles, ODF `text:h`, EPUB chapters, slide titles,
sheet names), or in plain text and RTF a short single-line paragraph with no
closing punctuation (the way this article sets "A Closer Analysis"; a line ruled
off by `---` or `===`, and Vim help's `*tag*` headings, too), in a PDF a numbered
heading on its own line ("1. Introduction", "2.1 Syntax"). Text before the first heading belongs to section `None`. A slide's
title or a sheet's name is never taken for the document's title (that comes from
the file's properties, else the file name) nor dropped as a repeat of it.
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import json
import logging
import os
import re
import stat
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rag.corpus import formats, office
from rag.errors import RagError, Unreadable
from rag.corpus.formats import DEFAULT_MAX_BYTES, EXTRACTED_SUFFIXES, SUPPORTED_SUFFIXES, Extractor
from rag.corpus.metadata import MAX_SIDECAR_BYTES, load_json, validate

log = logging.getLogger(__name__)
skip_log = logging.getLogger("rag.corpus.skipped")  # one line per skipped file: `log_skipped`; the CLI decides where they go

METADATA_FIELDS = ("title", "subtitle", "author", "publication", "published", "url")
SIDECAR_SUFFIX = ".meta.json"
EXTRACTION_VERSION = 6  # of the HTML, PDF and office readers: in each such document's content hash (2: structure kept; 3: e-mail replies without the quoted message, PDF page labels and two-page running headers out; 4: an HTML title without the site's name, an HTML page's table as groups of rows under its header; 5: an e-mail's attachments of the kinds read here as sections of it, a Word list's numbers and bullets, Word heading levels, a sheet's numbers as formatted, no library defaults as Office metadata; 6: a presentation without a title property is titled by its first slide's title)
MAX_FOLDER_DEPTH = 64  # folders below seeds/; deeper ones are skipped with a reason
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_RULE = re.compile(r"^([-=~*_])\1{2,}$")  # a line drawn under or over a plain-text heading
_MD_UNDERLINE = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")  # a Markdown setext heading's underline
_MD_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")  # opens or closes a fenced code block
_MAX_HEADING_CHARS = 90
_ANCHORS = re.compile(r"(?:[ \t]+(?:\*[^\s*]+\*|~))+[ \t]*$")  # Vim help tags (and its heading mark ~) closing a heading line
_TITLE_SEPARATOR = re.compile(r"\s+[|·•–—-]\s+")  # "Page | Site", "Page – Site"
_TAG_LIST = re.compile(r"^[^.!?\n]{1,60}(\s+/\s+[^.!?\n/]{1,60}){2,}$")


@dataclass(frozen=True)
class Paragraph:
    number: int  # 1-based, counting body paragraphs of the document
    section: str | None
    start: int
    end: int


@dataclass(frozen=True)
class Section:
    title: str | None
    heading_start: int  # offsets of the heading line itself (equal to start for the untitled opening)
    heading_end: int
    end: int  # end of the section's last paragraph


@dataclass(frozen=True)
class Document:
    id: str
    path: Path
    text: str
    title: str
    subtitle: str | None = None
    author: str | None = None
    publication: str | None = None
    published: str | None = None
    url: str | None = None
    body_start: int = 0
    body_end: int = 0
    sections: tuple[Section, ...] = ()
    paragraphs: tuple[Paragraph, ...] = ()
    content_hash: str = ""
    extra: dict = field(default_factory=dict, compare=False)
    source: str = ""  # the path under seeds/, as shown to users
    authors: tuple[str, ...] = ()  # `author` as a list when the metadata gave several
    pages: tuple[int, ...] = ()  # PDF: the start offset of each page in `text`

    def metadata(self) -> dict:
        return {"id": self.id, **{name: getattr(self, name) for name in METADATA_FIELDS}}


def shown(text: str) -> str:
    """`text` (a file name or path) as valid Unicode on one line: bytes that are not UTF-8 (a name's surrogate
    escapes) as `\\xNN`, any other lone surrogate as `\\udcNN`, control characters as `\\xNN`. Valid names are unchanged."""
    return _UNSHOWABLE.sub(_escape, text)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True)
class Skipped:
    path: str  # relative to seeds/
    reason: str  # one sentence, never quoting the file's content

    def __post_init__(self) -> None:  # whoever makes one, it can always be written as UTF-8 (JSON, logs)
        object.__setattr__(self, "path", shown(self.path))
        object.__setattr__(self, "reason", shown(self.reason))

    def as_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Corpus:
    documents: tuple[Document, ...]  # sorted by id
    skipped: tuple[Skipped, ...]  # sorted by path


def page_of(document: Document, offset: int) -> int | None:
    """The 1-based PDF page holding `offset`, or None for a document without pages."""
    if not document.pages:
        return None
    return max(1, bisect.bisect_right(document.pages, offset))


def load_corpus(seeds_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES, max_extract_seconds: float | None = None) -> Corpus:
    """Every document under `seeds_dir` (recursively), and every other file with the reason it was skipped.

    `max_bytes` bounds each file and the text it yields; `max_extract_seconds` the time to read one HTML or PDF
    file (None: `RAG_MAX_EXTRACT_SECONDS` from the environment's settings)."""
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise RagError(f"seeds directory {seeds_dir} does not exist")
    root = seeds_dir.resolve()
    files, skipped, sidecars = _walk(root)
    documents: dict[str, Document] = {}
    with Extractor(_extract_seconds(max_extract_seconds)) as extractor:
        for relative, path in files:
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
    skipped += _orphan_sidecars(files, skipped, sidecars)
    return Corpus(tuple(sorted(documents.values(), key=lambda d: d.id)), tuple(sorted(skipped, key=lambda s: s.path)))


_LOGGED: dict[str, frozenset[Skipped]] = {}  # seeds folder -> the skips logged for it last


def log_skipped(seeds_dir: Path, skipped: tuple[Skipped, ...] | list[Skipped]) -> list[Skipped]:
    """Log (WARNING, `rag.corpus.skipped`) each skipped file not already logged for this seeds folder by this
    process: a reload that finds the same skips logs nothing, a file newly skipped is logged once. Each line's
    message is its own text (no template shared by all), so a filter that drops repeats of one template (the
    server's JSON logs) lets every skip through. Returns what was logged."""
    key = str(Path(seeds_dir).resolve())
    before = _LOGGED.get(key, frozenset())
    new = [s for s in skipped if s not in before]
    _LOGGED[key] = frozenset(skipped)
    for s in new:
        skip_log.warning(f"skipped {s.path}: {s.reason}")  # noqa: G004 - the message is the line (see above)
    return new


def _extract_seconds(seconds: float | None) -> float:
    if seconds is not None:
        return seconds
    from rag.config import get_settings

    return get_settings().max_extract_seconds


def _why(exc: BaseException) -> str:
    return (getattr(exc, "strerror", None) or type(exc).__name__).lower()


def _walk(root: Path) -> tuple[list[tuple[str, Path]], list[Skipped], list[str]]:
    """(relative path, path) of each candidate document under `root`, what was skipped on the way, and the
    relative paths of the sidecars seen. Depth first in name order, without recursion (a folder tree of any
    depth costs no stack; below MAX_FOLDER_DEPTH it is skipped with a reason)."""
    files: list[tuple[str, Path]] = []
    skipped: list[Skipped] = []
    sidecars: list[str] = []
    top = _listing(root, ".", skipped)
    stack = [(iter(top), "", 1, frozenset({root}))] if top is not None else []
    while stack:
        entries, prefix, depth, ancestors = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        relative = prefix + shown(entry.name)
        try:
            folder = _visit(entry, relative, root, ancestors, files, skipped, sidecars)
        except FileNotFoundError:
            skipped.append(Skipped(relative, f"{relative} was removed while reading"))
            continue
        except (OSError, RuntimeError, ValueError) as exc:
            skipped.append(Skipped(relative, f"{relative} cannot be read ({_why(exc)})"))
            continue
        if folder is None:
            continue
        if depth > MAX_FOLDER_DEPTH:
            skipped.append(Skipped(relative, f"{relative} is more than {MAX_FOLDER_DEPTH} folders deep (the limit); it is not read"))
            continue
        listing = _listing(folder, relative, skipped)
        if listing is not None:
            stack.append((iter(listing), relative + "/", depth + 1, ancestors | {folder}))
    return files, skipped, sidecars


def _listing(folder: Path, relative: str, skipped: list[Skipped]) -> list[os.DirEntry] | None:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except FileNotFoundError:
        skipped.append(Skipped(relative, f"{relative} was removed while reading"))
    except OSError as exc:
        skipped.append(Skipped(relative, f"{relative} is a folder that cannot be read ({_why(exc)})"))
    return None


def _visit(entry: os.DirEntry, relative: str, root: Path, ancestors: frozenset, files: list, skipped: list, sidecars: list) -> Path | None:
    """Classify one entry of a folder: a document candidate, a sidecar, a skip; or a folder to read (returned)."""
    path = Path(entry.path)
    link = entry.is_symlink()
    if entry.name.startswith("."):
        kind = "folder" if path.is_dir() else "file"
        skipped.append(Skipped(relative, f"{relative} is a hidden {kind}; hidden files and folders are not read"))
        return None
    if link:
        try:
            real = path.resolve()
        except (RuntimeError, OSError) as exc:  # 3.11 raises RuntimeError for a loop; later versions OSError(ELOOP)
            if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
                skipped.append(Skipped(relative, f"{relative} is a symbolic link in a loop (it leads back to itself); it is not followed"))
                return None
            raise
        if not real.is_relative_to(root):
            skipped.append(Skipped(relative, f"{relative} is a symbolic link leading outside the seeds folder; it is not followed"))
            return None
    else:
        real = path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if link:  # the link is there, what it names is not
            skipped.append(Skipped(relative, f"{relative} is not a regular file (a broken link)"))
            return None
        raise
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        skipped.append(Skipped(relative, f"{relative} is a symbolic link in a loop (it leads back to itself); it is not followed"))
        return None
    if stat.S_ISDIR(st.st_mode):
        if real in ancestors:
            skipped.append(Skipped(relative, f"{relative} links to a folder that is already read"))
            return None
        return real
    if entry.name.lower().endswith(SIDECAR_SUFFIX):
        sidecars.append(relative)  # metadata, read with its document
    elif not stat.S_ISREG(st.st_mode):
        skipped.append(Skipped(relative, f"{relative} is not a regular file (a pipe, a socket or a device)"))
    elif real.suffix.lower() not in SUPPORTED_SUFFIXES or Path(entry.name).suffix.lower() not in SUPPORTED_SUFFIXES:
        kind = shown(Path(entry.name).suffix.lower()) or "without an extension"
        supported = ", ".join(SUPPORTED_SUFFIXES)
        skipped.append(Skipped(relative, f"{relative} is of an unsupported type ({kind}); supported: {supported}"))
    else:
        files.append((relative, path))
    return None


def _orphan_sidecars(files: list[tuple[str, Path]], skipped: list[Skipped], sidecars: list[str]) -> list[Skipped]:
    """Sidecars with no document file beside them: likely a typo in a name, so say so."""
    stems = {str(Path(rel).with_suffix("")) for rel, _ in files} | {str(Path(s.path).with_suffix("")) for s in skipped}
    return [
        Skipped(relative, f"{relative} is a metadata sidecar with no document of the same name beside it")
        for relative in sorted(sidecars)
        if relative[: -len(SIDECAR_SUFFIX)] not in stems
    ]


def corpus_hash(documents: list[Document]) -> str:
    """One hash over every document's text and metadata: changes whenever the corpus does."""
    return corpus_hash_of([(doc.id, doc.content_hash) for doc in documents])


def corpus_hash_of(pairs: list[tuple[str, str]]) -> str:
    """`corpus_hash` from (id, content hash) pairs, as an index manifest lists its documents."""
    digest = hashlib.sha256()
    for doc_id, content_hash in sorted(pairs):
        digest.update(f"{doc_id}\0{content_hash}\0".encode())
    return digest.hexdigest()


def load_document(
    path: Path,
    seeds_dir: Path | None = None,
    relative: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    extractor: Extractor | None = None,
    max_extract_seconds: float | None = None,
) -> Document:
    """One document; raises Unreadable (the skip reason) when the file cannot be one.

    HTML, PDF and the office formats are read by `extractor`'s worker process (without one, by a worker started for this file,
    within `max_extract_seconds`)."""
    path = Path(path)
    root = Path(seeds_dir).resolve() if seeds_dir else path.resolve().parent
    relative = shown(relative or path.name)
    raw = _read_bytes(path, relative, max_bytes)
    if extractor is None and path.suffix.lower() in EXTRACTED_SUFFIXES:
        with Extractor(_extract_seconds(max_extract_seconds)) as own:  # starts a worker only if the file is not memoised
            extracted = formats.read(path, raw, relative, max_bytes, own)
    else:
        extracted = formats.read(path, raw, relative, max_bytes, extractor)
    if not extracted.text.strip():
        raise Unreadable(f"{relative} is empty")
    sidecar = _sidecar(path, root, relative)
    metadata = {k: v for k, v in extracted.metadata.items() if not (k == "authors" and "author" in sidecar)}
    metadata.update(sidecar)
    blocks = _blocks(extracted.text, extracted.body_floor)
    headed = blocks
    if extracted.kind in ("text", "markdown"):
        headed = _heading_blocks(blocks, extracted.kind == "markdown")
    # a file whose headings run straight into their text was read as one block each until 2026-12-07: its hash
    # changes so an index built before rebuilds it; every other text file keeps its hash (and its index) as it was
    reader_marks = b"\0headings set apart" if headed != blocks else b""
    blocks = headed
    if "title" not in metadata and (title := _title_line(blocks, extracted)):
        metadata["title"] = title
    body = _strip_furniture(blocks, metadata, extracted.headings if extracted.kind in office.PLACED_KINDS else frozenset(),
                            _page_title_parts(metadata.get("title"), extracted))
    sections, paragraphs = _structure(extracted.text, body, extracted, metadata)
    if not paragraphs:
        raise Unreadable(f"{relative} has no body text (only headings, metadata or furniture)")
    hashed = {k: v for k, v in metadata.items() if k != "authors"}  # derived from `author`
    meta_bytes = json.dumps(hashed, sort_keys=True, ensure_ascii=False).encode()
    reader = f"\0reader {EXTRACTION_VERSION}".encode() if extracted.kind not in ("text", "markdown") else reader_marks
    content_hash = hashlib.sha256(raw + b"\0" + meta_bytes + reader).hexdigest()  # a better reader rebuilds the index
    known = (*METADATA_FIELDS, "authors")
    return Document(
        id=_document_id(relative),
        path=path,
        text=extracted.text,
        title=metadata.get("title") or Path(relative).stem.replace("-", " ").replace("_", " "),
        subtitle=metadata.get("subtitle"),
        author=metadata.get("author"),
        publication=metadata.get("publication"),
        published=metadata.get("published"),
        url=metadata.get("url"),
        body_start=body[0][0] if body else 0,
        body_end=body[-1][1] if body else 0,
        sections=sections,
        paragraphs=paragraphs,
        content_hash=content_hash,
        extra={k: v for k, v in metadata.items() if k not in known},
        source=relative,
        authors=tuple(metadata.get("authors") or ()),
        pages=extracted.pages,
    )


def _document_id(relative: str) -> str:
    """`library/functools.html` -> `library.functools`: each part slugged, joined by dots."""
    parts = Path(relative).with_suffix("").parts
    return ".".join(_slug(part) for part in parts)


class _NotRegular(OSError):
    pass


def _read_regular(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file at `path`, from one open file: opened without blocking (a
    pipe put there after the folder was listed cannot hang the load) and checked to be a regular file.
    Raises FileNotFoundError, _NotRegular or another OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular(errno.EINVAL, "not a regular file")
        return f.read(limit + 1)


def _read_or_say(path: Path, limit: int, label: str, not_regular: str) -> bytes:
    """`_read_regular`, with each way it can fail as the skip reason for `label` ("notes.txt", "its sidecar ...")."""
    try:
        return _read_regular(path, limit)
    except FileNotFoundError:
        raise Unreadable(f"{label} was removed while reading") from None
    except _NotRegular:
        raise Unreadable(not_regular) from None
    except OSError as exc:
        raise Unreadable(f"{label} cannot be read ({_why(exc)})") from None


def _read_bytes(path: Path, relative: str, max_bytes: int) -> bytes:
    """The bytes of a document file, or Unreadable saying why not."""
    raw = _read_or_say(path, max_bytes, relative, f"{relative} is not a regular file (a pipe, a socket or a device)")
    if len(raw) > max_bytes:
        size = max(len(raw), _size(path))
        raise Unreadable(f"{relative} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit per document (RAG_MAX_DOCUMENT_BYTES)")
    if not raw:
        raise Unreadable(f"{relative} is empty")
    return raw


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _sidecar(path: Path, root: Path, relative: str) -> dict:
    """The validated metadata of `<name>.meta.json` beside `path`, if there is one."""
    sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
    name = str(Path(relative).with_name(Path(relative).stem + SIDECAR_SUFFIX))
    try:
        os.lstat(sidecar)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # no file can have this name: there is no sidecar
            return {}
        raise Unreadable(f"its sidecar {name} cannot be read ({_why(exc)})") from None
    try:
        real = sidecar.resolve()
    except (RuntimeError, OSError):  # a symbolic link in a loop
        raise Unreadable(f"its sidecar {name} is a symbolic link in a loop; it is not read") from None
    outside = f"its sidecar {name} is not a file inside the seeds folder; it is not read"
    try:
        inside = real.is_relative_to(root) and real.is_file()
    except OSError as exc:
        raise Unreadable(f"its sidecar {name} cannot be read ({_why(exc)})") from None
    if not inside:
        raise Unreadable(outside)
    return validate(load_json(_read_or_say(sidecar, MAX_SIDECAR_BYTES, f"its sidecar {name}", outside), name), name)


def _title_line(blocks: list[tuple[int, int, str]], extracted: formats.Extracted) -> str | None:
    """A first block that reads like a title (see the module docstring), or None."""
    if not blocks:
        return None
    start, _, block = blocks[0]
    if extracted.kind == "markdown":
        heading = _markdown_heading(block)
        return heading[1] if heading and heading[0] == 1 else None
    if extracted.kind in office.UNTITLED_KINDS:
        return None
    if extracted.kind == "html" or extracted.kind in office.HEADED_KINDS:
        return block if start in extracted.headings else None
    if extracted.kind != "text":
        return None
    title = _heading_title(block, False)
    if title is None and "\n" in block.strip() and (line := _ruled_line(block)) and len(line) <= _MAX_HEADING_CHARS:
        title = line if line[-1] not in _CLOSING else None  # ruled off: a title even in lower case ("bw - the CLI")
    return title


_LATIN_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "đ": "d",
                                "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D", "ı": "i"})  # no NFKD form


def _slug(stem: str) -> str:
    """`stem` as `[a-z0-9]` words joined by hyphens. Accents are dropped (`Über` -> `uber`); a name with letters that
    have no such ASCII form (Cyrillic, Japanese...) ends with 8 hex digits of its own hash (`заметка` ->
    `document-1c0e3f5a`), so two such names never share an id and the id stays an ASCII slug everywhere."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", stem.translate(_LATIN_LETTERS)) if not unicodedata.combining(c))
    slug = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
    if any(c.isalnum() and not c.isascii() for c in plain):
        digest = hashlib.sha256(unicodedata.normalize("NFC", stem).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return f"{slug or 'document'}-{digest}"
    return slug or "document"


def _blocks(text: str, floor: int) -> list[tuple[int, int, str]]:
    """(start, end, text) of each blank-line-separated block, trimmed of surrounding whitespace."""
    blocks, cursor = [], floor
    for sep in [*_BLANK_LINE.finditer(text, floor), None]:
        stop = sep.start() if sep else len(text)
        chunk = text[cursor:stop]
        stripped = chunk.strip()
        if stripped:
            start = cursor + (len(chunk) - len(chunk.lstrip()))
            blocks.append((start, start + len(stripped), stripped))
        if sep:
            cursor = sep.end()
    return blocks


def _heading_blocks(blocks: list[tuple[int, int, str]], is_markdown: bool) -> list[tuple[int, int, str]]:
    """`blocks` with each heading set apart from text that runs straight on under it, as Markdown allows and plain
    text often does: in Markdown an ATX line (`## Keepers`) anywhere in a block, outside fenced code, and a setext
    heading (`Title` over `===` or `---`) opening a block; in plain text a line ruled off under it (or over and
    under) opening a block. Offsets stay exact; a block with no such heading is returned as it was."""
    out: list[tuple[int, int, str]] = []
    fence: str | None = None  # the marker of the Markdown code block open here (blocks may cross blank lines inside it)
    for start, end, block in blocks:
        lines = block.split("\n")
        offsets = [0]
        for line in lines[:-1]:
            offsets.append(offsets[-1] + len(line) + 1)
        cuts: set[int] = set()  # line numbers a piece starts at
        if is_markdown:
            for i, line in enumerate(lines):
                marker = _MD_FENCE.match(line)
                if fence is not None:
                    if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                        fence = None
                    continue
                if marker:
                    fence = marker.group(1)
                elif _MD_HEADING.match(line.strip()) and len(line) - len(line.lstrip(" ")) <= 3:
                    cuts.update((i, i + 1))
        head = 2 if len(lines) > 2 and _underlines(lines, is_markdown, 1) else 0
        if not head and len(lines) > 3 and not is_markdown and _RULE.match(lines[0].strip()) and _underlines(lines, False, 2):
            head = 3
        if head and _heading_title("\n".join(lines[:head]), is_markdown) is not None:  # set apart only what reads as a heading
            cuts.add(head)
        cuts = sorted(c for c in cuts if 0 < c < len(lines))
        if not cuts:
            out.append((start, end, block))
            continue
        for first, stop in zip([0, *cuts], [*cuts, len(lines)]):
            piece_start = start + offsets[first]
            piece_end = start + (offsets[stop] - 1 if stop < len(lines) else len(block))
            piece = block[piece_start - start:piece_end - start]
            stripped = piece.strip()
            if stripped:
                lead = len(piece) - len(piece.lstrip())
                out.append((piece_start + lead, piece_start + lead + len(stripped), stripped))
    return out


def _underlines(lines: list[str], is_markdown: bool, at: int) -> bool:
    """Whether line `at` is a rule under a heading line (Markdown: `===` or `---`; plain text: three or more of one
    of `-=~*_`), with a line of text above it."""
    above = lines[at - 1].strip()
    if not above or _RULE.match(above) or (is_markdown and _MD_HEADING.match(above)):
        return False
    return bool(_MD_UNDERLINE.match(lines[at]) if is_markdown else _RULE.match(lines[at].strip()))


def _normal(s: str) -> str:
    return " ".join(s.split()).casefold()


def _known_furniture(metadata: dict) -> set[str]:
    known = [metadata.get(name) for name in ("title", "subtitle", "author", "category")]
    known += list(metadata.get("furniture") or [])  # validated: a list of strings
    return {_normal(str(k)) for k in known if k}


def _is_furniture(block: str, known: set[str]) -> bool:
    plain = _normal(block.lstrip("#").strip())
    return plain in known or bool(_TAG_LIST.match(block.strip()))


def _page_title_parts(title: object, extracted: formats.Extracted) -> set[str]:
    """A web page's title names its site too ("Rivers and Mountains | Example Site"): each part of it, for a
    heading that repeats only the page's own part to count as the title's repeat."""
    if extracted.kind != "html" or not isinstance(title, str):
        return set()
    return {_normal(part) for part in _TITLE_SEPARATOR.split(title) if part.strip()}


def _strip_furniture(blocks: list[tuple[int, int, str]], metadata: dict, kept: frozenset[int] = frozenset(),
                     also: set[str] = frozenset()) -> list[tuple[int, int, str]]:
    """Body blocks: the leading header and trailing furniture removed, and any listed furniture line (or one in
    `also`); a block starting at an offset in `kept` (a slide title, a sheet name) is never furniture."""
    known = _known_furniture(metadata) | set(also)
    furniture = lambda b: b[0] not in kept and _is_furniture(b[2], known)  # noqa: E731
    first = 0
    while first < len(blocks) and furniture(blocks[first]):
        first += 1
    last = len(blocks)
    while last > first and furniture(blocks[last - 1]):
        last -= 1
    return [b for b in blocks[first:last] if not furniture(b)]


def _section_title(start: int, block: str, extracted: formats.Extracted) -> str | None:
    """The section title if the block at `start` is a heading in this document's format, else None."""
    if extracted.kind in ("html", "pdf") or extracted.kind in office.HEADED_KINDS:
        return block if start in extracted.headings else None
    return _heading_title(block, extracted.kind == "markdown")


_CLOSING = ".!?:;,\"”’)]…"  # a line that ends in one of these is a sentence, not a heading


def _heading_title(block: str, is_markdown: bool) -> str | None:
    """The heading's title if this block is a section heading, else None."""
    if is_markdown:
        heading = _markdown_heading(block)
        return heading[1] if heading else None
    block = _ruled_line(block)
    if block is None or len(block) > _MAX_HEADING_CHARS or len(block.split()) > 12:
        return None
    if block[-1] in _CLOSING or not (block[0].isupper() or block[0].isdigit()):
        return None
    return block


def _markdown_heading(block: str) -> tuple[int, str] | None:
    """(level, title) if the block is one Markdown heading: an ATX line (`## Keepers`) or a setext heading (`Title` over
    `===`, level 1, or `---`, level 2); else None."""
    lines = block.split("\n")
    if len(lines) == 2 and _underlines(lines, True, 1):
        title = " ".join(lines[0].split())
        return (1 if lines[1].strip().startswith("=") else 2, title) if len(title) <= _MAX_HEADING_CHARS else None
    match = _MD_HEADING.match(block) if len(lines) == 1 else None
    return (len(match.group(1)), match.group(2).strip()) if match else None


def _ruled_line(block: str) -> str | None:
    """The one line of text in a plain-text heading block, its whitespace collapsed and its help-file anchors
    (`*new-terminal-window*`) dropped: a single line, or a line ruled off by a line of `-`, `=`, `~`, `*` or `_`
    under it, over it, or both (`The terminal window` over `-------`); None for any other block."""
    lines = [line.strip() for line in block.split("\n")]
    if len(lines) > 1 and _RULE.match(lines[-1]):
        lines.pop()
    if len(lines) > 1 and _RULE.match(lines[0]):
        lines.pop(0)
    if len(lines) != 1:
        return None
    line = _ANCHORS.sub("", lines[0])
    return " ".join(line.split()) or None


SECTION_PATH = " › "  # between the titles of a Markdown section and the headings it sits under: "[2.2.1] - 2024-12-05 › Fixed"


def _qualified_titles(body: list[tuple[int, int, str]], extracted: formats.Extracted) -> dict[int, str]:
    """Each heading block's section title, by its start. A Markdown or Word section's title is its path: the titles
    of the headings it sits under, then its own (`SECTION_PATH`), so that "### Fixed" under every release of a
    changelog names its release, in the citation and in what is embedded. A web page's heading levels are often
    chosen for their look (a Sphinx page's "Contents" above its chapters), so there only a title the page repeats
    takes the heading above it ("Version 3.7.1 › Fixed"). Other formats' headings carry no level here, so their
    titles stay as written."""
    titles = {start: t for start, _, block in body if (t := _section_title(start, block, extracted)) is not None}
    given = dict(extracted.heading_levels)  # Word's and HTML's heading levels
    if extracted.kind != "markdown" and not given:
        return titles
    paths: dict[int, list[str]] = {}
    above: list[tuple[int, str]] = []  # (level, title) of the headings the current one sits under
    for start, _, block in body:
        if start in titles:
            level = (_markdown_heading(block) or (1, ""))[0] if extracted.kind == "markdown" else given.get(start, 1)
            while above and above[-1][0] >= level:
                above.pop()
            paths[start] = [t for _, t in above] + [titles[start]]
            above.append((level, titles[start]))
    if extracted.kind != "html":
        return {start: SECTION_PATH.join(path) for start, path in paths.items()}
    counts = Counter(t.casefold() for t in titles.values())
    repeated = {t for t, n in counts.items() if n > 1}
    return {start: SECTION_PATH.join(path[-2:]) if path[-1].casefold() in repeated else path[-1] for start, path in paths.items()}


def _structure(
    text: str, body: list[tuple[int, int, str]], extracted: formats.Extracted, metadata: dict
) -> tuple[tuple[Section, ...], tuple[Paragraph, ...]]:
    sections: list[Section] = []
    paragraphs: list[Paragraph] = []
    current: str | None = None  # text before the first heading has no section title
    heading = (body[0][0], body[0][0]) if body else (0, 0)
    section_end, opened_at = heading[1], 0
    titles = _qualified_titles(body, extracted)
    for start, end, block in body:
        title = titles.get(start)
        if title is None:
            paragraphs.append(Paragraph(len(paragraphs) + 1, current, start, end))
            section_end = end
            continue
        if current is not None or len(paragraphs) > opened_at:
            sections.append(Section(current, heading[0], heading[1], section_end))
        current, heading, section_end, opened_at = title, (start, end), end, len(paragraphs)
    if body:
        sections.append(Section(current, heading[0], heading[1], section_end))
    return tuple(sections), tuple(paragraphs)
