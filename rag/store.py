"""The index on disk: its file format, crash-safe writes, verification and loading.

Layout of the index directory (all plain data; nothing on a load path can execute code):

    manifest.json                 what made the index, and a checksum of every file
    vectors-<build>.faiss         FAISS index of passage embeddings (inner product)
    passages-<build>.json         passages: ids, text, offsets, section, sentences
    sentences-<build>.npy         sentence embeddings, for highlighting (np.load, allow_pickle=False)

`<build>` is 12 hex digits, fresh per build. These names, `manifest.json`,
`.lock` and `.tmp-<8 hex>-<name>` temp files are the only files the index ever
writes; everything else in the directory belongs to someone else and is never
touched (a user's `config.json`, or a seeds folder by mistake).

A load first compares the manifest with what the current configuration would
build (a mismatch is `IndexStale`, naming what changed), then checks each
file's size and sha256 *before* FAISS or JSON sees a byte (a mismatch is
`IndexCorrupt`): a truncated or flipped file is refused, never served and
never handed to a C++ reader. The manifest carries a checksum of itself.

Writes are crash-safe: data files get fresh names per build (written to a
`.tmp-` file, fsynced, renamed), and the build becomes current only when
`manifest.json` is atomically replaced, last. A crash at any moment leaves
either the old manifest with its old files or the new one with its new files;
leftovers of an interrupted build are removed by the next build.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.chunking import Passage
from rag.errors import IndexCorrupt, IndexProblem, IndexStale

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
DATA_FILE = re.compile(r"^(vectors-[0-9a-f]{12}\.faiss|passages-[0-9a-f]{12}\.json|sentences-[0-9a-f]{12}\.npy)$")
TEMP_FILE = re.compile(r"^\.tmp-[0-9a-f]{8}-(manifest\.json|(vectors|passages|sentences)-[0-9a-f]+\.(faiss|json|npy))$")


@dataclass
class LoadedIndex:
    manifest: dict
    passages: list[Passage]
    vectors: object  # a faiss.Index
    sentence_vectors: np.ndarray  # rows follow passages' sentences, in order
    sentence_rows: list[tuple[int, int]]  # per passage: (first row, row count) in sentence_vectors
    embedded_keys: list[str]  # per passage: sha256 of the text that was embedded (for reuse on rebuild)

    @property
    def id(self) -> str:
        return self.manifest["id"]



def text_key(text: str) -> str:
    """The content hash that keys a passage's (or sentence's) vector, for reuse across builds."""
    return hashlib.sha256(text.encode()).hexdigest()


def passages_json(passages: list[Passage], texts: list[str]) -> bytes:
    rows = [{**asdict(p), "embedded_text_sha256": text_key(t)} for p, t in zip(passages, texts)]
    return json.dumps({"format_version": FORMAT_VERSION, "passages": rows}, ensure_ascii=False).encode()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def write_file(index_dir: Path, name: str, data: bytes, checksum: bool = True) -> dict | None:
    """Write `data` to index_dir/name atomically: temp file, fsync, rename, fsync the directory."""
    tmp = index_dir / f".tmp-{uuid.uuid4().hex[:8]}-{name}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, index_dir / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(index_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    if not checksum:
        return None
    return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def discard_build(index_dir: Path, build: str) -> None:
    """After a failed write (disk full, I/O error), remove this build's data files, so the old index is
    left exactly as it was; unless the manifest naming them was already put in place."""
    try:
        if json.loads((index_dir / MANIFEST).read_text()).get("build") == build:
            return
    except (OSError, ValueError, AttributeError):
        pass
    for path in index_dir.glob(f"*-{build}.*"):
        path.unlink(missing_ok=True)


def remove_strays(index_dir: Path) -> list[str]:
    """Delete what an interrupted build left: its temp files, and its data files that the current
    manifest does not name. Only names the index itself writes (DATA_FILE, TEMP_FILE) are candidates;
    symlinks and every other file are left alone."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text())
        keep = {f["name"] for f in manifest["files"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        keep = None  # without a readable manifest only temp files are safe to remove
    removed = []
    for path in index_dir.iterdir():
        ours_tmp = bool(TEMP_FILE.match(path.name))
        ours_unnamed = keep is not None and bool(DATA_FILE.match(path.name)) and path.name not in keep
        if (ours_tmp or ours_unnamed) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def check_index_dir(index_dir: Path, seeds_dir: Path) -> None:
    """Refuse an index directory that is the seeds directory or inside it: the index would index
    itself, and its housekeeping would run among the user's documents."""
    index_dir, seeds_dir = Path(index_dir).resolve(), Path(seeds_dir).resolve()
    if index_dir == seeds_dir or seeds_dir in index_dir.parents:
        raise IndexProblem(f"the index directory {index_dir} is inside the documents directory {seeds_dir}; choose another RAG_INDEX_DIR")


# --- load -------------------------------------------------------------------------------


def read_manifest(index_dir: Path) -> dict:
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        raise IndexProblem(f"no index at {index_dir} (run `rag index`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{path} is not valid JSON: {exc}") from exc
    except OSError as exc:  # a directory, unreadable, ...
        raise IndexCorrupt(f"{path} cannot be read ({exc.strerror or exc}); rebuild with `rag index`") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexStale(f"{path} has format version {found!r}; this service reads version {FORMAT_VERSION}")
    if "manifest_sha256" not in manifest:
        raise IndexStale(f"{path} has no manifest checksum (written by an older build); rebuild with `rag index`")
    if manifest["manifest_sha256"] != manifest_digest(manifest):
        raise IndexCorrupt(f"{path} does not match its own checksum: it was corrupted or edited; rebuild with `rag index`")
    return manifest


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own checksum field."""
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def stale_reasons(manifest: dict, expected: dict) -> list[str]:
    """What differs between an index's manifest and the fingerprint the configuration expects."""
    labels = {
        "model": "the embedding model",
        "chunker": "the chunker parameters",
        "embedding_text": "what is embedded per passage",
        "corpus_sha256": "the documents in seeds/",
        "ann": "the index type or its parameters",
        "lexical": "the lexical (BM25) parameters",
    }
    reasons = [f"{label} changed" for key, label in labels.items() if manifest.get(key) != expected.get(key)]
    unknown = sorted(set(expected) - set(labels) - {"format_version"})
    reasons += [f"{key} changed" for key in unknown if manifest.get(key) != expected.get(key)]
    return reasons


def load_index(index_dir: Path, expected: dict | None) -> LoadedIndex:
    """Load and verify the index; `expected` is `rag.build.IndexConfig.fingerprint()` (None skips the staleness check)."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if expected is not None and (reasons := stale_reasons(manifest, expected)):
        raise IndexStale(f"index {manifest.get('id')} is stale: {', '.join(reasons)}")
    try:
        return _load_verified(index_dir, manifest)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # a well-formed but wrong manifest
        raise IndexCorrupt(f"manifest in {index_dir} is malformed ({type(exc).__name__}: {exc}); rebuild with `rag index`") from exc


def _load_verified(index_dir: Path, manifest: dict) -> LoadedIndex:
    import faiss

    if not isinstance(manifest.get("id"), str):
        raise IndexCorrupt(f"manifest in {index_dir} has no index id")
    try:
        files = {key: _read_verified(index_dir, manifest["files"][key]) for key in ("vectors", "passages", "sentences")}
        counts = manifest["counts"]
        dimension = manifest["dimension"]
    except (KeyError, TypeError) as exc:
        raise IndexCorrupt(f"manifest in {index_dir} lacks {exc}; rebuild with `rag index`") from exc
    # The checksums matched, so these bytes are what the build wrote; a parser error still means a bad index
    # (e.g. a manifest re-signed over foreign files), never a crash. Plain data only: no pickle on this path.
    try:
        vectors = faiss.deserialize_index(np.frombuffer(files["vectors"], dtype=np.uint8))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise IndexCorrupt(f"index {manifest.get('id')}: the vectors file is not a FAISS index: {exc}") from exc
    passages, embedded_keys = _parse_passages(files["passages"])
    try:
        sentence_vectors = np.load(io.BytesIO(files["sentences"]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise IndexCorrupt(f"index {manifest.get('id')}: the sentences file is not a plain float array: {exc}") from exc
    if not isinstance(sentence_vectors, np.ndarray) or sentence_vectors.dtype != np.float32:
        raise IndexCorrupt(f"index {manifest.get('id')}: the sentences file is not a float32 array")
    if vectors.ntotal != counts["passages"] or len(passages) != counts["passages"] or vectors.d != dimension:
        raise IndexCorrupt(f"index {manifest['id']}: file contents do not match the manifest's counts")
    rows, cursor = [], 0
    for p in passages:
        rows.append((cursor, len(p.sentences)))
        cursor += len(p.sentences)
    if sentence_vectors.shape != (cursor, dimension) or cursor != counts["sentences"]:
        raise IndexCorrupt(f"index {manifest['id']}: sentence vectors do not match the passages")
    return LoadedIndex(manifest, passages, vectors, sentence_vectors, rows, embedded_keys)


def _read_verified(index_dir: Path, entry: dict) -> bytes:
    name = entry["name"]
    if "/" in name or name.startswith("."):
        raise IndexCorrupt(f"manifest names an unsafe file {name!r}")
    path = index_dir / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IndexCorrupt(f"index file {name} is missing or unreadable: {exc.strerror}") from exc
    if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise IndexCorrupt(
            f"index file {name} does not match its manifest checksum ({len(data)} bytes, expected {entry['bytes']}): "
            "it is truncated or corrupted"
        )
    return data


def _parse_passages(data: bytes) -> tuple[list[Passage], list[str]]:
    try:
        rows = json.loads(data)["passages"]
        passages = [
            Passage(
                id=r["id"],
                document=r["document"],
                section=r["section"],
                paragraphs=tuple(r["paragraphs"]),
                start=r["start"],
                end=r["end"],
                text=r["text"],
                sentences=tuple(tuple(s) for s in r["sentences"]),
            )
            for r in rows
        ]
        return passages, [r["embedded_text_sha256"] for r in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"passages file is malformed: {exc}") from exc
