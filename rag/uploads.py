"""Documents written into seeds/ by a client (HTTP uploads): ids checked, files checked before they land, placed
atomically, and put back as they were when anything after fails.

- **Ids.** A new document's id is a plain slug (`[a-z0-9]` words joined by single hyphens, at most
  `MAX_ID_CHARS`), which is exactly the id the corpus reader gives the file `<id><suffix>` at the top of seeds/
  (rag.corpus.documents), so an id can never name a path outside seeds/, a folder or a hidden file. Without one
  the id comes from the uploaded file's name (its last path part, slugged). An existing document (any id,
  folders included) can be replaced or removed by its id.
- **Checked first.** `stage` writes the upload (and its metadata as a `<id>.meta.json` sidecar) into a private
  temporary folder and reads it there with the corpus reader itself (`load_document`): a file that would be
  skipped is refused with the skip reason and never reaches seeds/.
- **Placed atomically, undone on failure.** `Placement` writes the new files through `rag.files.atomic_path`
  (hidden while written, flushed to disk, then renamed into place), then removes the files they replace,
  keeping the bytes of whatever it removes or overwrites in memory until it either `commit()`s or `undo()`es
  (the new files removed, the old ones written back).

What a file "holds" an id: every file at the top of seeds/ whose name gives that id (`notes.txt` and
`notes.md` both give `notes`), plus, for an existing document, its own file and sidecar wherever they are. A
create never writes over any of them (Conflict); a replace moves all of them aside, so one id never ends up
with two files.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rag.corpus.documents import SIDECAR_SUFFIX, Document, _document_id, load_document
from rag.corpus.formats import SUPPORTED_SUFFIXES
from rag.corpus.metadata import validate
from rag.errors import InvalidInput, Unreadable
from rag.files import atomic_path

MAX_ID_CHARS = 100
_NEW_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Upload:
    """What a client sent: the file's bytes, its suffix (which gives its format), its metadata (becomes the
    sidecar; empty: none), and the id it asked for (None: from `filename`)."""

    data: bytes
    suffix: str
    metadata: dict = field(default_factory=dict)
    id: str | None = None
    filename: str | None = None

    def wanted_id(self) -> str:
        """The id asked for, checked; else the one the file name gives."""
        if self.id is not None:
            return checked_id(self.id)
        if not self.filename:
            raise InvalidInput("a document needs an id: send one, or a file name to take it from")
        return default_id(self.filename)


def checked_id(document_id: str) -> str:
    if len(document_id) > MAX_ID_CHARS or not _NEW_ID.fullmatch(document_id):
        raise InvalidInput(
            f"a document id is lower-case letters and digits in words joined by single hyphens, at most {MAX_ID_CHARS} "
            "characters (e.g. 'meeting-notes-2024'); no dots, slashes or spaces"
        )
    return document_id


def default_id(filename: str) -> str:
    """The id the file name gives: its last part without the extension, slugged (as the corpus reader does)."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    if name.startswith(".") or not re.search(r"[a-z0-9]", PurePosixPath(name).stem.lower()):
        raise InvalidInput("no document id can be made from the file name; send an id")
    return checked_id(_document_id(name)[:MAX_ID_CHARS].rstrip("-"))


def id_from_title(title: str) -> str:
    """The id a title gives when no id is sent: slugged as a file name would be."""
    return default_id(re.sub(r"[/\\.]", " ", title) + ".txt")


def suffix_of(filename: str) -> str:
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "no extension"
        raise InvalidInput(f"the file's type ({shown}) is not one that can be indexed; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    return suffix


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.stem + SIDECAR_SUFFIX)


# --- checking an upload before it lands -------------------------------------------------------------


def stage(upload: Upload, relative: str, max_bytes: int, max_extract_seconds: float) -> Document:
    """The document `upload` becomes as seeds/`relative`, read by the corpus reader in a private folder;
    InvalidInput with the skip reason when it would not be one."""
    if len(upload.data) > max_bytes:
        raise InvalidInput(f"the file is {len(upload.data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit per document (RAG_MAX_DOCUMENT_BYTES)")
    try:
        validate(upload.metadata, "the document's metadata")
    except Unreadable as exc:
        raise InvalidInput(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="rag-upload-") as folder:
        path = Path(folder) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.data)
        if upload.metadata:
            sidecar_of(path).write_bytes(sidecar_bytes(upload.metadata))
        try:
            return load_document(path, Path(folder), relative, max_bytes, max_extract_seconds=max_extract_seconds)
        except Unreadable as exc:
            raise InvalidInput(f"not indexed: {exc}") from None


def sidecar_bytes(metadata: dict) -> bytes:
    return json.dumps(metadata, ensure_ascii=False, indent=2).encode("utf-8")


# --- which files hold an id --------------------------------------------------------------------------


def files_holding(seeds_dir: Path, document_id: str, current: Document | None) -> list[Path]:
    """Every file that gives `document_id` (see the module docstring), with the sidecars beside them."""
    found: list[Path] = []
    if current is not None:
        found.append(Path(current.path))
    try:
        entries = list(os.scandir(Path(seeds_dir).resolve()))
    except OSError:
        entries = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name.lower().endswith(SIDECAR_SUFFIX) or entry.is_dir(follow_symlinks=False):
            continue
        if _document_id(name) == document_id and Path(entry.path) not in found:
            found.append(Path(entry.path))
    with_sidecars = []
    for path in found:
        with_sidecars.append(path)
        sidecar = sidecar_of(path)
        if os.path.lexists(sidecar) and sidecar not in with_sidecars:
            with_sidecars.append(sidecar)
    return with_sidecars


# --- placing files, and putting them back -------------------------------------------------------------


class Placement:
    """Files written and files removed, as one change to seeds/ that is committed or undone. What it removes or
    overwrites is kept in memory (a document is at most RAG_MAX_DOCUMENT_BYTES) until then, so nothing is left
    in seeds/ for the corpus reader to list."""

    def __init__(self) -> None:
        self._kept: dict[Path, bytes] = {}  # path -> its bytes before this change (removed or overwritten)
        self._written: list[Path] = []

    def _keep(self, path: Path) -> None:
        if path not in self._kept and os.path.lexists(path):
            self._kept[path] = path.read_bytes()

    def write(self, target: Path, data: bytes) -> None:
        self._keep(target)
        with atomic_path(target, hidden=True, durable=True) as tmp:
            tmp.write_bytes(data)
        self._written.append(target)

    def remove(self, paths: list[Path]) -> None:
        for path in paths:
            if path in self._written:
                continue  # replaced in place by a file just written
            self._keep(path)
            path.unlink(missing_ok=True)

    def commit(self) -> None:
        self._kept, self._written = {}, []

    def undo(self) -> None:
        """seeds/ as it was: what was written removed, what was removed or overwritten written back."""
        for path in reversed(self._written):
            if path not in self._kept:
                path.unlink(missing_ok=True)
        for path, data in self._kept.items():
            with atomic_path(path, hidden=True, durable=True) as tmp:
                tmp.write_bytes(data)
        self._kept, self._written = {}, []


def place(seeds_dir: Path, relative: str, upload: Upload, replacing: list[Path]) -> Placement:
    """Write the upload (and its sidecar) as seeds/`relative`, then remove the files it replaces (written first:
    a crash in between leaves both, never neither); on an error, undone."""
    placement = Placement()
    target = Path(seeds_dir) / relative
    try:
        if upload.metadata:
            placement.write(sidecar_of(target), sidecar_bytes(upload.metadata))
        placement.write(target, upload.data)
        placement.remove(replacing)
    except BaseException:
        placement.undo()
        raise
    return placement


def remove(paths: list[Path]) -> Placement:
    """Remove `paths` (written back on undo)."""
    placement = Placement()
    try:
        placement.remove(paths)
    except BaseException:
        placement.undo()
        raise
    return placement
