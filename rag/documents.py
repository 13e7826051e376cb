"""Documents: reading seeds/ into text with metadata, sections and paragraphs.

A document is one file in seeds/ (`.txt`, `.md`, `.markdown`), decoded as
UTF-8 and kept *exactly* as on disk: every offset the service hands out indexes
into `Document.text`, so `text[start:end]` can be checked by anyone holding the
file. Nothing is rewritten or normalised.

Metadata is never guessed from the text. It comes from a sidecar
`<name>.meta.json` beside the file (or, for Markdown, `key: value` front matter
between `---` lines); without either, the title falls back to the file name.
The sidecar may list `furniture`: exact paragraphs that are magazine furniture
(category tags, "buy the print edition" lines). Those, paragraphs that repeat
the metadata (title, subtitle, author), and a closing tag list ("a / b / c")
are kept out of the body.

Section headings are Markdown `#` lines, or in plain text a short single-line
paragraph with no closing punctuation (the way this article sets "A Closer
Analysis"). Text before the first heading belongs to section `None`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown")
METADATA_FIELDS = ("title", "subtitle", "author", "publication", "published", "url")

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_TAG_LIST = re.compile(r"^[^.!?\n]{1,60}(\s+/\s+[^.!?\n/]{1,60}){2,}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.S)


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

    def metadata(self) -> dict:
        return {"id": self.id, **{name: getattr(self, name) for name in METADATA_FIELDS}}


def load_corpus(seeds_dir: Path) -> list[Document]:
    """Every supported document in `seeds_dir`, sorted by id."""
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise RagError(f"seeds directory {seeds_dir} does not exist")
    paths = sorted(p for p in seeds_dir.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    documents = [load_document(p) for p in paths]
    ids = [d.id for d in documents]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise RagError(f"two files in {seeds_dir} share the document id(s) {sorted(duplicated)}; rename one")
    return documents


def corpus_hash(documents: list[Document]) -> str:
    """One hash over every document's text and metadata: changes whenever the corpus does."""
    digest = hashlib.sha256()
    for doc in sorted(documents, key=lambda d: d.id):
        digest.update(f"{doc.id}\0{doc.content_hash}\0".encode())
    return digest.hexdigest()


def load_document(path: Path) -> Document:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RagError(f"{path.name} is not valid UTF-8 (byte {exc.start}); save it as UTF-8") from exc
    is_markdown = path.suffix.lower() in (".md", ".markdown")
    metadata, body_floor = _read_metadata(path, text, is_markdown)
    doc_id = _slug(path.stem)
    blocks = _blocks(text, body_floor)
    body = _strip_furniture(blocks, metadata)
    sections, paragraphs = _structure(text, body, is_markdown, metadata)
    meta_bytes = json.dumps(metadata, sort_keys=True, ensure_ascii=False).encode()
    content_hash = hashlib.sha256(raw + b"\0" + meta_bytes).hexdigest()
    return Document(
        id=doc_id,
        path=path,
        text=text,
        title=metadata.get("title") or path.stem.replace("-", " ").replace("_", " "),
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
        extra={k: v for k, v in metadata.items() if k not in METADATA_FIELDS},
    )


def _slug(stem: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return slug or "document"


def _read_metadata(path: Path, text: str, is_markdown: bool) -> tuple[dict, int]:
    """Metadata from the sidecar and/or Markdown front matter; and where the body may start."""
    metadata: dict = {}
    body_floor = 0
    if is_markdown and (match := _FRONT_MATTER.match(text)):
        for line in match.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip():
                metadata[key.strip().lower()] = value.strip().strip("\"'")
        body_floor = match.end()
    sidecar = path.with_name(path.stem + ".meta.json")
    if sidecar.exists():
        try:
            loaded = json.loads(sidecar.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RagError(f"{sidecar.name} is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise RagError(f"{sidecar.name} must hold a JSON object")
        metadata.update(loaded)
    return metadata, body_floor


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


def _normal(s: str) -> str:
    return " ".join(s.split()).casefold()


def _known_furniture(metadata: dict) -> set[str]:
    known = [metadata.get(name) for name in ("title", "subtitle", "author", "category")]
    known += list(metadata.get("furniture") or [])
    return {_normal(str(k)) for k in known if k}


def _is_furniture(block: str, known: set[str]) -> bool:
    plain = _normal(block.lstrip("#").strip())
    return plain in known or bool(_TAG_LIST.match(block.strip()))


def _strip_furniture(blocks: list[tuple[int, int, str]], metadata: dict) -> list[tuple[int, int, str]]:
    """Body blocks: the leading header and trailing furniture removed, and any listed furniture line."""
    known = _known_furniture(metadata)
    first = 0
    while first < len(blocks) and _is_furniture(blocks[first][2], known):
        first += 1
    last = len(blocks)
    while last > first and _is_furniture(blocks[last - 1][2], known):
        last -= 1
    return [b for b in blocks[first:last] if not _is_furniture(b[2], known)]


def _heading_title(block: str, is_markdown: bool) -> str | None:
    """The heading's title if this block is a section heading, else None."""
    if is_markdown:
        match = _MD_HEADING.match(block) if "\n" not in block else None
        return match.group(2).strip() if match else None
    if "\n" in block or len(block) > 90 or len(block.split()) > 12:
        return None
    if block[-1] in ".!?:;,\"”’)]…" or not (block[0].isupper() or block[0].isdigit()):
        return None
    return block


def _structure(
    text: str, body: list[tuple[int, int, str]], is_markdown: bool, metadata: dict
) -> tuple[tuple[Section, ...], tuple[Paragraph, ...]]:
    sections: list[Section] = []
    paragraphs: list[Paragraph] = []
    current: str | None = None  # text before the first heading has no section title
    heading = (body[0][0], body[0][0]) if body else (0, 0)
    section_end, opened_at = heading[1], 0
    for start, end, block in body:
        title = _heading_title(block, is_markdown)
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
