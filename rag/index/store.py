"""The index on disk: its file format, crash-safe writes, verification and loading.

Layout of the index directory (all plain data; nothing on a load path can execute code):

    manifest.json                 what made the index, and a checksum of every file
    vectors-<build>.faiss         FAISS index of passage embeddings (inner product); absent when
                                  RAG_VECTOR_STORE names an engine, which holds them (rag.index.qdrant_store)
    passages-<build>.json         passages: ids, text, offsets, section, sentences
    sentences-<build>.npy         sentence embeddings (float16), for highlighting; memory-mapped read-only

`<build>` is 12 hex digits, fresh per build. These names, `manifest.json`,
`.lock` and `.tmp-<8 hex>-<name>` temp files are the only files the index ever
writes; everything else in the directory belongs to someone else and is never
touched (a user's `config.json`, or a seeds folder by mistake).

A load first compares the manifest with what the current configuration would
build (a mismatch is `IndexStale`, naming what changed), then checks each
file's size and sha256 *before* FAISS or JSON sees a byte (a mismatch is
`IndexCorrupt`): a truncated or flipped file is refused, never served and
never handed to a C++ reader. The manifest carries a checksum of itself.
Each file is opened once and hashed in 1 MiB chunks from that open file, and
then parsed from the same file: the sentence vectors (the largest file: about
4.3 GB at a million passages) are never read whole into memory but mapped
(`np.memmap`, read-only) over the verified file, so N server processes share
one copy in the page cache. Files are never modified in place (every build
writes fresh names), so what was verified is what stays mapped. The FAISS
index is streamed from the verified file into FAISS (no second copy in bytes).
Sentence vectors are stored as float16: half the size, and on the bundled
questions the same rankings and highlights as float32 (README, Performance).

Nothing on disk is trusted to be what a build wrote until checked: every file is opened
without blocking and must be a regular file (a pipe or a device in its place is refused,
never waited on); JSON nested too deeply for the parser is `IndexCorrupt`, not a
RecursionError; and, since a manifest can be re-signed by whoever can write the
directory, every passage row is checked for its shape (field types, offsets inside
the text, sentences inside the passage, unique ids) and for naming a document of the
manifest's document list, which must itself hash to the manifest's corpus hash (so,
when the corpus hash matches seeds/, to documents that exist). Whatever a forged
index holds, loading it ends in the index or in `IndexCorrupt` (which a build
rebuilds and a refusing service names), never in a crash or a hang.

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
import mmap
import os
import re
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rag.corpus.chunking import Passage
from rag.corpus.documents import corpus_hash_of
from rag.errors import IndexCorrupt, IndexProblem, IndexStale

FORMAT_VERSION = 3  # 3: sentence vectors float16, memory-mapped
SENTENCE_DTYPE = np.float16
PASSAGE_FIELDS = tuple(f.name for f in fields(Passage))
HASH_CHUNK = 1 << 20
MANIFEST = "manifest.json"
DATA_FILE = re.compile(r"^(vectors-[0-9a-f]{12}\.faiss|passages-[0-9a-f]{12}\.json|sentences-[0-9a-f]{12}\.npy)$")
TEMP_FILE = re.compile(r"^\.tmp-[0-9a-f]{8}-(manifest\.json|(vectors|passages|sentences)-[0-9a-f]+\.(faiss|json|npy))$")


@dataclass(frozen=True, eq=False)
class LoadedIndex:
    """One verified index, read-only: safe to share between threads (FAISS search is const, the arrays are read-only)."""

    manifest: dict
    passages: list[Passage]
    vectors: object  # a faiss.Index; or, for an engine's index, its store (rag.index.qdrant_store.QdrantStore)
    sentence_vectors: np.ndarray  # float16 np.memmap (read-only); rows follow passages' sentences, in order
    sentence_rows: np.ndarray  # int64 (passages, 2): per passage (first row, row count) in sentence_vectors
    embedded_keys: list[str]  # per passage: sha256 of the text that was embedded (for reuse on rebuild)

    @property
    def id(self) -> str:
        return self.manifest["id"]



def in_engine(manifest: dict) -> bool:
    """Whether this index's passage vectors live in an engine (RAG_VECTOR_STORE other than faiss) instead of a FAISS file."""
    store = manifest.get("store")
    return isinstance(store, dict) and store.get("kind") not in (None, "faiss")


def text_key(text: str) -> str:
    """The content hash that keys a passage's (or sentence's) vector, for reuse across builds."""
    return hashlib.sha256(text.encode()).hexdigest()


def passages_json(passages: list[Passage], texts: list[str]) -> Callable[[BinaryIO], None]:
    """A writer of the passages file, one passage at a time (a million passages never become one string)."""
    return passages_file(passages, [text_key(t) for t in texts])


def passages_file(passages: list[Passage], keys: list[str]) -> Callable[[BinaryIO], None]:
    """`passages_json` from each passage's embedded-text key (`text_key` of what was embedded) instead of the text."""

    encode = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps(row, ensure_ascii=False) makes, without one encoder a row

    def write(f: BinaryIO) -> None:
        f.write(b'{"format_version": %d, "passages": [' % FORMAT_VERSION)
        for i, (p, key) in enumerate(zip(passages, keys)):
            row = {**{field: getattr(p, field) for field in PASSAGE_FIELDS}, "embedded_text_sha256": key}
            f.write((b"," if i else b"") + encode(row).encode())
        f.write(b"]}")

    return write


def map_written_sentences(index_dir: Path, entry: dict, index_id: str) -> np.ndarray:
    """The sentence vectors of a file this process has just written (its size and sha256 computed as it was
    written, `entry`), memory-mapped read-only like a verified load maps them; the size and header are checked."""
    with open_regular(Path(index_dir) / entry["name"]) as f:
        if os.fstat(f.fileno()).st_size != entry["bytes"]:
            raise IndexCorrupt(f"index file {entry['name']} changed after it was written")
        return _map_sentences(f, index_id)


def sentences_intact(loaded: "LoadedIndex") -> bool:
    """Whether the sentence vectors `loaded` maps are still the bytes its manifest names (the file is mapped, not read:
    a file changed in place on disk would show through). Hashed from the map, so it holds even when a newer build has
    removed the file since; about 0.1 s per 50 MB."""
    entry = loaded.manifest.get("files", {}).get("sentences", {})
    vectors = loaded.sentence_vectors
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(SENTENCE_DTYPE)), "fortran_order": False,
                                                  "shape": tuple(vectors.shape)})
    digest = hashlib.sha256(header.getvalue())
    if vectors.size:
        digest.update(memoryview(np.ascontiguousarray(vectors)).cast("B"))
    return digest.hexdigest() == entry.get("sha256")


def sentence_rows(passages: list[Passage]) -> np.ndarray:
    """Per passage (first row, row count) in the sentence vectors."""
    return _sentence_rows(passages)


def sentence_npy(array: np.ndarray) -> Callable[[BinaryIO], None]:
    """A writer of the sentence vectors as a float16 .npy, converted in slices (no full-size second copy)."""
    array = np.asarray(array)

    def write(f: BinaryIO) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(SENTENCE_DTYPE)), "fortran_order": False, "shape": array.shape}
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, len(array), 65_536):
            f.write(np.ascontiguousarray(array[start : start + 65_536], dtype=SENTENCE_DTYPE).tobytes())

    return write


def faiss_writer(index) -> Callable[[BinaryIO], None]:
    """A writer of a FAISS index, streamed to the file (no serialized copy in memory)."""

    def write(f: BinaryIO) -> None:
        import faiss

        faiss.write_index(index, faiss.PyCallbackIOWriter(f.write))

    return write


class _HashingWriter:
    """A binary file's `write` that also feeds every byte to a sha256 (what `write_file`'s writers call)."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.digest = hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self._f.write(data)


def write_file(index_dir: Path, name: str, data: bytes | Callable[[BinaryIO], None], checksum: bool = True) -> dict | None:
    """Write `data` (bytes, or a function writing to a binary file) to index_dir/name atomically:
    temp file, fsync, rename, fsync the directory. Returns the manifest entry (size, sha256)."""
    tmp = index_dir / f".tmp-{uuid.uuid4().hex[:8]}-{name}"
    try:
        with open(tmp, "wb") as f:
            hashing = _HashingWriter(f)  # hashed as written: no second read of a file that can be gigabytes
            hashing.write(data) if isinstance(data, bytes) else data(hashing)
            f.flush()
            os.fsync(f.fileno())
            size, digest = os.fstat(f.fileno()).st_size, hashing.digest.hexdigest()
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
    return {"name": name, "bytes": size, "sha256": digest}


def file_sha256(f: BinaryIO) -> str:
    """sha256 of an open file from its start, read in HASH_CHUNK pieces (never whole into memory)."""
    f.seek(0)
    digest = hashlib.sha256()
    while chunk := f.read(HASH_CHUNK):
        digest.update(chunk)
    f.seek(0)
    return digest.hexdigest()


def _manifest_or_none(index_dir: Path) -> dict | None:
    """The manifest as JSON if it can be read at all (no checks): for housekeeping, which must never fail or hang."""
    try:
        with open_regular(Path(index_dir) / MANIFEST) as f:
            found = json.loads(f.read())
    except (OSError, ValueError, RecursionError, IndexProblem):
        return None
    return found if isinstance(found, dict) else None


def discard_build(index_dir: Path, build: str) -> None:
    """After a failed write (disk full, I/O error), remove this build's data files, so the old index is
    left exactly as it was; unless the manifest naming them was already put in place."""
    manifest = _manifest_or_none(index_dir)
    if manifest is not None and manifest.get("build") == build:
        return
    for path in index_dir.glob(f"*-{build}.*"):
        path.unlink(missing_ok=True)


def remove_strays(index_dir: Path) -> list[str]:
    """Delete what an interrupted build left: its temp files, and its data files that the current
    manifest does not name. Only names the index itself writes (DATA_FILE, TEMP_FILE) are candidates;
    symlinks and every other file are left alone."""
    try:
        keep = {f["name"] for f in _manifest_or_none(index_dir)["files"].values()}
    except (KeyError, TypeError, AttributeError):
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


def open_regular(path: Path) -> BinaryIO:
    """`path` open for reading, if it is a regular file: opened without blocking, so a FIFO or a device put in its
    place is refused (IndexCorrupt) instead of waited on. Raises FileNotFoundError or another OSError otherwise."""
    f = open(path, "rb", opener=_nonblocking)  # keeps `name` (np.memmap records it)
    try:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a pipe, a socket or a device"
            raise IndexCorrupt(f"index file {Path(path).name} is not a regular file ({kind}); rebuild with `rag index`")
        os.set_blocking(f.fileno(), True)
        return f
    except BaseException:
        f.close()
        raise


def _nonblocking(path, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


def _json(data: bytes | str, what: str):
    try:
        return json.loads(data)
    except RecursionError:
        raise IndexCorrupt(f"{what} is nested too deeply to be an index file; rebuild with `rag index`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{what} is not valid JSON: {exc}") from None


def read_manifest(index_dir: Path) -> dict:
    path = Path(index_dir) / MANIFEST
    if not path.exists() and not path.is_symlink():
        raise IndexProblem(f"no index at {index_dir} (run `rag index`)")
    try:
        with open_regular(path) as f:
            manifest = _json(f.read(), str(path))
    except OSError as exc:  # a directory, unreadable, a broken link, ...
        raise IndexCorrupt(f"{path} cannot be read ({exc.strerror or exc}); rebuild with `rag index`") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexStale(f"{path} has format version {found!r}; this service reads version {FORMAT_VERSION}")
    if "manifest_sha256" not in manifest:
        raise IndexStale(f"{path} has no manifest checksum (written by an older build); rebuild with `rag index`")
    try:
        signed = manifest["manifest_sha256"] == manifest_digest(manifest)
    except (RecursionError, ValueError, TypeError) as exc:  # nested too deeply, or keys JSON cannot sort
        raise IndexCorrupt(f"{path} cannot be checked ({type(exc).__name__}); rebuild with `rag index`") from None
    if not signed:
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
        "store": "the vector store (RAG_VECTOR_STORE or its collection)",
        "build_precision": "the precision passages are embedded in (RAG_BUILD_PRECISION)",
    }
    reasons = [f"{label} changed" for key, label in labels.items() if manifest.get(key) != expected.get(key)]
    unknown = sorted(set(expected) - set(labels) - {"format_version"})
    reasons += [f"{key} changed" for key in unknown if manifest.get(key) != expected.get(key)]
    return reasons


def load_index(index_dir: Path, expected: dict | None) -> LoadedIndex:
    """Load and verify the index; `expected` is `rag.index.build.IndexConfig.fingerprint()` (None skips the staleness check)."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if expected is not None and (reasons := stale_reasons(manifest, expected)):
        raise IndexStale(f"index {manifest.get('id')} is stale: {', '.join(reasons)}")
    try:
        return _load_verified(index_dir, manifest)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError, OverflowError) as exc:  # a well-formed but wrong manifest
        raise IndexCorrupt(f"manifest in {index_dir} is malformed ({type(exc).__name__}: {exc}); rebuild with `rag index`") from exc


def _load_verified(index_dir: Path, manifest: dict) -> LoadedIndex:
    if not isinstance(manifest.get("id"), str):
        raise IndexCorrupt(f"manifest in {index_dir} has no index id")
    engine = in_engine(manifest)  # the passage vectors live in an engine (rag.index.qdrant_store): no FAISS file
    try:
        entries = {key: manifest["files"][key] for key in ("passages", "sentences") + (() if engine else ("vectors",))}
        counts = manifest["counts"]
        dimension = manifest["dimension"]
    except (KeyError, TypeError) as exc:
        raise IndexCorrupt(f"manifest in {index_dir} lacks {exc}; rebuild with `rag index`") from exc
    # Each file is verified from the open file and then parsed from that same file. The checksums matched,
    # so these bytes are what the build wrote; a parser error still means a bad index (e.g. a manifest
    # re-signed over foreign files), never a crash. Plain data only: no pickle on this path.
    vectors = None  # an engine's index gets its store attached by the build (rag.index.build.load_current)
    if not engine:
        with _open_verified(index_dir, entries["vectors"]) as f:
            vectors = _read_faiss(f, manifest["id"])
    documents = _manifest_documents(manifest, index_dir)
    with _open_verified(index_dir, entries["passages"]) as f:
        passages, embedded_keys = _parse_passages(f.read(), documents)
    with _open_verified(index_dir, entries["sentences"]) as f:
        sentence_vectors = _map_sentences(f, manifest["id"])
    faiss_mismatch = vectors is not None and (vectors.ntotal != counts["passages"] or vectors.d != dimension)
    if faiss_mismatch or len(passages) != counts["passages"]:
        raise IndexCorrupt(f"index {manifest['id']}: file contents do not match the manifest's counts")
    sentence_rows = _sentence_rows(passages)
    total = int(sentence_rows[:, 1].sum())
    if sentence_vectors.shape != (total, dimension) or total != counts["sentences"]:
        raise IndexCorrupt(f"index {manifest['id']}: sentence vectors do not match the passages")
    return LoadedIndex(manifest, passages, vectors, sentence_vectors, sentence_rows, embedded_keys)


def _sentence_rows(passages: list[Passage]) -> np.ndarray:
    counts = np.fromiter((len(p.sentences) for p in passages), dtype=np.int64, count=len(passages))
    rows = np.stack([np.cumsum(counts) - counts, counts], axis=1) if len(passages) else np.zeros((0, 2), dtype=np.int64)
    rows.setflags(write=False)
    return rows


def _read_faiss(f: BinaryIO, index_id: str):
    import faiss

    try:
        return faiss.read_index(faiss.PyCallbackIOReader(f.read))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise IndexCorrupt(f"index {index_id}: the vectors file is not a FAISS index: {exc}") from exc


def _map_sentences(f: BinaryIO, index_id: str) -> np.ndarray:
    """The sentence vectors as a read-only memory map over the (verified) open file."""
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise IndexCorrupt(f"index {index_id}: the sentences file is not a plain float array: {exc}") from exc
    if dtype != np.dtype(SENTENCE_DTYPE) or fortran_order or len(shape) != 2:
        raise IndexCorrupt(f"index {index_id}: the sentences file is not a 2-d float16 array")
    offset = f.tell()
    if os.fstat(f.fileno()).st_size != offset + shape[0] * shape[1] * dtype.itemsize:
        raise IndexCorrupt(f"index {index_id}: the sentences file's size does not match its header")
    if shape[0] * shape[1] == 0:
        return np.zeros(shape, dtype=dtype)
    vectors = np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape)
    _read_randomly(vectors)
    return vectors


def _read_randomly(vectors: np.memmap) -> None:
    """Tell the kernel the map is read at random (MADV_RANDOM): a query reads ~200 short runs of rows scattered over
    the file, so read-ahead from disk around each would read pages nobody asked for (at a million passages the file
    is 4.3 GB; after a restart with a cold page cache that is most of the I/O). Pages already cached are still
    mapped in around each fault, and count in the process's resident set as file pages (shared between workers,
    reclaimable): README, Performance. A platform without madvise keeps the default."""
    advise = getattr(getattr(vectors, "_mmap", None), "madvise", None)
    if advise is not None and hasattr(mmap, "MADV_RANDOM"):
        try:
            advise(mmap.MADV_RANDOM)
        except OSError:
            pass


def _open_verified(index_dir: Path, entry: dict) -> BinaryIO:
    """The index file named by `entry`, open for reading, after its size and sha256 matched the manifest."""
    name = entry["name"]
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        raise IndexCorrupt(f"manifest names an unsafe file {name!r}")
    try:
        f = open_regular(index_dir / name)
    except OSError as exc:
        raise IndexCorrupt(f"index file {name} is missing or unreadable: {exc.strerror}") from exc
    try:
        size = os.fstat(f.fileno()).st_size
        matches = size == entry["bytes"] and file_sha256(f) == entry["sha256"]
    except OSError as exc:  # e.g. a directory by that name, or an I/O error
        f.close()
        raise IndexCorrupt(f"index file {name} cannot be read: {exc.strerror or exc}") from exc
    except BaseException:
        f.close()
        raise
    if not matches:
        f.close()
        raise IndexCorrupt(
            f"index file {name} does not match its manifest checksum ({size} bytes, expected {entry['bytes']}): "
            "it is truncated or corrupted"
        )
    return f


def _manifest_documents(manifest: dict, index_dir: Path) -> frozenset[str]:
    """The ids of the manifest's document list, after checking that the list hashes to the manifest's corpus hash."""
    listed = manifest.get("documents")
    if not isinstance(listed, list) or not all(
        isinstance(d, dict) and isinstance(d.get("id"), str) and isinstance(d.get("sha256"), str) for d in listed
    ):
        raise IndexCorrupt(f"manifest in {index_dir} has no valid document list; rebuild with `rag index`")
    pairs = [(d["id"], d["sha256"]) for d in listed]
    if corpus_hash_of(pairs) != manifest.get("corpus_sha256"):
        raise IndexCorrupt(f"manifest in {index_dir}: its document list does not match its corpus hash; rebuild with `rag index`")
    return frozenset(doc_id for doc_id, _ in pairs)


def _is_int(value) -> bool:
    return type(value) is int  # not bool


def _parse_passages(data: bytes, documents: frozenset[str] | None = None) -> tuple[list[Passage], list[str]]:
    """The passages file's rows as Passages, each checked for its shape (a forged file is IndexCorrupt, not a
    TypeError at query time); `documents`: the ids a passage may name (None: any)."""
    found = _json(data, "passages file")
    rows = found.get("passages") if isinstance(found, dict) else None
    if not isinstance(rows, list):
        raise IndexCorrupt("passages file is malformed: no list of passages")
    passages, keys, ids = [], [], set()
    for number, r in enumerate(rows):
        problem = _passage_problem(r, documents)
        if problem is None and r["id"] in ids:
            problem = "repeats the id of an earlier passage"
        if problem:
            raise IndexCorrupt(f"passages file is malformed: passage {number} {problem}")
        ids.add(r["id"])
        passages.append(
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
        )
        keys.append(r["embedded_text_sha256"])
    return passages, keys


def _passage_problem(r, documents: frozenset[str] | None) -> str | None:
    """What is wrong with one passage row, or None."""
    if not isinstance(r, dict):
        return "is not an object"
    try:
        pid, doc, section, paragraphs, start, end, text, sentences, key = (
            r["id"], r["document"], r["section"], r["paragraphs"], r["start"], r["end"], r["text"], r["sentences"], r["embedded_text_sha256"],
        )
    except KeyError as exc:
        return f"lacks the field {exc}"
    if not (isinstance(pid, str) and isinstance(doc, str) and isinstance(text, str) and isinstance(key, str)):
        return "has a field of the wrong type (id, document, text and embedded_text_sha256 are text)"
    if documents is not None and doc not in documents:
        return "names a document that is not in the manifest's document list"
    if section is not None and not isinstance(section, str):
        return "has a section that is not text"
    if not isinstance(paragraphs, list) or not all(_is_int(n) for n in paragraphs):
        return "has paragraphs that are not a list of numbers"
    if not (_is_int(start) and _is_int(end) and 0 <= start <= end and end - start == len(text)):
        return "has offsets that do not frame its text"
    if not isinstance(sentences, list):
        return "has sentences that are not a list"
    for sentence in sentences:
        if not (isinstance(sentence, list) and len(sentence) == 2 and _is_int(sentence[0]) and _is_int(sentence[1])
                and start <= sentence[0] < sentence[1] <= end):
            return "has a sentence that is not a pair of offsets inside the passage"
    return None
