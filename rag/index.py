"""The on-disk index: build, save atomically, verify, load.

Layout of `index/` (all plain data; nothing on a load path can execute code):

    manifest.json               what made the index, and a checksum of every file
    vectors-<build>.faiss       FAISS index of passage embeddings (inner product)
    passages-<build>.json       passages: ids, text, offsets, section, sentences
    sentences-<build>.npy       sentence embeddings, for highlighting (np.load, allow_pickle=False)

The manifest records the format version, the model (name, weights sha256,
dimension), the chunker parameters, the corpus hash and the counts. A load
first compares these with what the current configuration would build (a
mismatch is `IndexStale`), then checks each file's size and sha256 *before*
FAISS or JSON sees a byte (a mismatch is `IndexCorrupt`): a truncated or
flipped file is refused, never served and never handed to a C++ reader.

Writes are crash-safe: data files get fresh names per build (written to a
`.tmp-` file, fsynced, renamed), and the build becomes current only when
`manifest.json` is atomically replaced, last. A crash at any moment leaves
either the old manifest with its old files or the new one with its new files;
stray `.tmp-` files and files no manifest names are removed on the next build.
Rebuilding reuses the vectors of passages whose embedded text is unchanged
(keyed by content hash), so an edit to one paragraph re-embeds one passage.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.chunking import ChunkerParams, Passage, chunk_corpus
from rag.documents import Document, corpus_hash
from rag.embedding import ModelSpec
from rag.errors import IndexCorrupt, IndexProblem, IndexStale

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HNSW_M = 32
HNSW_EF_SEARCH = 256  # recall@10 0.995 at 100k (128: 0.981), eval/bench_scale.py
IVF_ABOVE = 250_000  # index_type=auto: IVF above this (HNSW builds 100k in ~80 s on 2 cores; 1M would take far longer)
IVF_PROBE_SHARE = 4  # search 1/4 of the lists: recall@10 0.985 at 1M (1/8: 0.961), eval/bench_scale.py


@dataclass(frozen=True)
class IndexConfig:
    """Everything that decides the index contents; a change to any of it makes the index stale."""

    model: ModelSpec
    chunker: ChunkerParams
    corpus_sha256: str
    index_type: str = "auto"  # "auto" | "flat" | "hnsw" | "ivf"
    exact_search_max: int = 50_000

    def fingerprint(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model.as_dict(),
            "chunker": self.chunker.as_dict(),
            "embedding_text": EMBEDDING_TEXT_VERSION,
            "corpus_sha256": self.corpus_sha256,
        }


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


# --- what is embedded -------------------------------------------------------------------

EMBEDDING_TEXT_VERSION = "title+section+text+previous-opening/2"


def heading_text(document: Document, passage: Passage) -> str:
    """A passage under its document title and section: what BM25 indexes, and what must fit the window."""
    heading = f"{document.title}. {passage.section}." if passage.section else f"{document.title}."
    return f"{heading}\n{passage.text}"


def embedding_text(document: Document, passage: Passage, previous: Passage | None = None) -> str:
    """What the model sees for a passage: title and section, its text, then the opening sentence
    of the passage before it in the same section.

    A paragraph often continues its neighbour's argument without naming its subject ("The
    bourgeoisie had strong ties..." under a paragraph that opens "Trotsky asserted..."); the
    neighbour's opening sentence names it. It comes last, so if the whole does not fit the model
    window, truncation cuts only this context, never the passage. Only the embedding sees it;
    the returned passage is the source slice.
    """
    text = heading_text(document, passage)
    if previous is not None and previous.document == passage.document and previous.section == passage.section:
        start, end = previous.sentences[0]
        text += "\n" + document.text[start:end]
    return text


def embedding_texts(passages: list[Passage], documents: dict[str, Document]) -> list[str]:
    return [embedding_text(documents[p.document], p, passages[i - 1] if i else None) for i, p in enumerate(passages)]


# --- build ------------------------------------------------------------------------------


def build_index(index_dir: Path, documents: list[Document], config: IndexConfig, encoder, progress: bool = True) -> dict:
    """Chunk, embed and write a new index; return its manifest. The old one stays current until the end."""
    started = time.perf_counter()
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    remove_strays(index_dir)
    from rag.build_encoder import progress_bar

    passages = chunk_corpus(progress_bar(documents, desc="chunking files", unit="file", enabled=progress), encoder.count_tokens, config.chunker)
    if not passages:
        raise IndexProblem("the corpus has no body text to index (is seeds/ empty?)")
    by_id = {d.id: d for d in documents}
    _check_window([heading_text(by_id[p.document], p) for p in passages], encoder)
    texts = embedding_texts(passages, by_id)
    old = _previous_index(index_dir, config)
    vectors = _embed_reusing(texts, encoder, _old_passage_vectors(old), progress, "passages")
    sentence_texts = [by_id[p.document].text[s:e] for p in passages for s, e in p.sentences]
    sentence_vectors = _embed_reusing(sentence_texts, encoder, _old_sentence_vectors(old), progress, "sentences")
    faiss_index, index_type = make_faiss_index(vectors, config.index_type, config.exact_search_max)

    import faiss

    build = uuid.uuid4().hex[:12]
    try:
        files = {
            "vectors": _write_file(index_dir, f"vectors-{build}.faiss", faiss.serialize_index(faiss_index).tobytes()),
            "passages": _write_file(index_dir, f"passages-{build}.json", _passages_json(passages, texts)),
            "sentences": _write_file(index_dir, f"sentences-{build}.npy", _npy_bytes(sentence_vectors)),
        }
    except BaseException:
        _discard_build(index_dir, build)
        raise
    fingerprint = config.fingerprint()
    content_id = hashlib.sha256(json.dumps([fingerprint, [f["sha256"] for f in files.values()]], sort_keys=True).encode()).hexdigest()[:12]
    manifest = {
        **fingerprint,
        "id": content_id,
        "build": build,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.perf_counter() - started, 3),
        "dimension": int(vectors.shape[1]),
        "max_seq_length": encoder.max_seq_length,
        "index_type": index_type,
        "documents": [{"id": d.id, "sha256": d.content_hash} for d in documents],
        "counts": {"documents": len(documents), "passages": len(passages), "sentences": len(sentence_texts)},
        "files": files,
    }
    manifest["manifest_sha256"] = _manifest_digest(manifest)  # a flipped byte anywhere in the manifest is caught
    try:
        _write_file(index_dir, MANIFEST, json.dumps(manifest, indent=2).encode(), checksum=False)
    except BaseException:
        _discard_build(index_dir, build)
        raise
    remove_strays(index_dir)
    log.info("built index %s: %d passages in %.1fs", content_id, len(passages), manifest["build_seconds"])
    return manifest


def make_faiss_index(vectors: np.ndarray, index_type: str = "auto", exact_search_max: int = 50_000):
    """Exact inner product up to `exact_search_max` vectors, HNSW above, IVF above IVF_ABOVE (unless told
    otherwise). Recall@10 against exact search is >= 0.98 at 100k and 1M (eval/bench_scale.py, on synthetic
    vectors that are harder for both index kinds than real all-MiniLM-L6-v2 embeddings)."""
    import faiss

    n = len(vectors)
    chosen = index_type if index_type != "auto" else ("flat" if n <= exact_search_max else "hnsw" if n <= IVF_ABOVE else "ivf")
    dim = vectors.shape[1]
    if chosen == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif chosen == "ivf":
        # ~sqrt(n) lists, k-means on a sample of 64 per list; the direct map keeps reconstruct() working.
        nlist = int(min(4096, n, max(16, 2 ** round(np.log2(max(np.sqrt(n), 1))))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        index.nprobe = max(1, nlist // IVF_PROBE_SHARE)
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        index.make_direct_map()
        return index, chosen
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, chosen


def _check_window(texts: list[str], encoder) -> None:
    limit = encoder.max_seq_length - 2  # [CLS] and [SEP]
    for text in texts:
        if encoder.count_tokens(text) > limit:
            raise IndexProblem(
                f"a passage needs more than the model's {limit} word pieces and would be truncated; "
                f"lower RAG_MAX_PASSAGE_TOKENS (passage begins {text[:60]!r})"
            )


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _embed_reusing(texts: list[str], encoder, reusable: dict[str, np.ndarray], progress: bool, what: str) -> np.ndarray:
    """Embed `texts`, taking vectors for unchanged texts from the current index of the same model."""
    if not texts:
        return encoder.encode([])
    missing = [t for t in dict.fromkeys(texts) if _text_key(t) not in reusable]
    if missing:
        fresh = encoder.encode(missing, progress=progress, desc=what)
        reusable.update({_text_key(t): v for t, v in zip(missing, fresh)})
    log.info("embedded %d %s, reused %d", len(missing), what, len(texts) - len(missing))
    return np.stack([reusable[_text_key(t)] for t in texts]).astype(np.float32)


def _previous_index(index_dir: Path, config: IndexConfig) -> LoadedIndex | None:
    """The current index if it is intact and made by the same model (its vectors can be reused)."""
    try:
        old = load_index(index_dir, expected=None)
    except IndexProblem:
        return None
    return old if old.manifest.get("model") == config.model.as_dict() else None


def _old_passage_vectors(old: LoadedIndex | None) -> dict[str, np.ndarray]:
    if old is None or old.manifest.get("index_type") != "flat":
        return {}
    vectors = old.vectors.reconstruct_n(0, old.vectors.ntotal)
    return dict(zip(old.embedded_keys, vectors))


def _old_sentence_vectors(old: LoadedIndex | None) -> dict[str, np.ndarray]:
    if old is None:
        return {}
    texts = [p.text[s - p.start : e - p.start] for p in old.passages for s, e in p.sentences]
    return {_text_key(t): v for t, v in zip(texts, old.sentence_vectors)}


def _passages_json(passages: list[Passage], texts: list[str]) -> bytes:
    rows = [{**asdict(p), "embedded_text_sha256": _text_key(t)} for p, t in zip(passages, texts)]
    return json.dumps({"format_version": FORMAT_VERSION, "passages": rows}, ensure_ascii=False).encode()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def _write_file(index_dir: Path, name: str, data: bytes, checksum: bool = True) -> dict | None:
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


def _discard_build(index_dir: Path, build: str) -> None:
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
    """Delete temp files and data files that the current manifest does not name."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text())
        keep = {f["name"] for f in manifest["files"].values()}
    except (OSError, ValueError, KeyError, TypeError):
        keep = None  # without a readable manifest only temp files are safe to remove
    removed = []
    for path in index_dir.iterdir():
        stray_tmp = path.name.startswith(".tmp-")
        unnamed = keep is not None and path.suffix in (".faiss", ".json", ".npy") and path.name != MANIFEST and path.name not in keep
        if path.is_file() and (stray_tmp or unnamed):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


# --- load -------------------------------------------------------------------------------


def read_manifest(index_dir: Path) -> dict:
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        raise IndexProblem(f"no index at {index_dir} (run `rag index`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexStale(f"{path} has format version {found!r}; this service reads version {FORMAT_VERSION}")
    if "manifest_sha256" not in manifest:
        raise IndexStale(f"{path} has no manifest checksum (written by an older build); rebuild with `rag index`")
    if manifest["manifest_sha256"] != _manifest_digest(manifest):
        raise IndexCorrupt(f"{path} does not match its own checksum: it was corrupted or edited; rebuild with `rag index`")
    return manifest


def _manifest_digest(manifest: dict) -> str:
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
    }
    return [f"{label} changed" for key, label in labels.items() if manifest.get(key) != expected.get(key)]


def load_index(index_dir: Path, expected: dict | None) -> LoadedIndex:
    """Load and verify the index; `expected` is `IndexConfig.fingerprint()` (None skips the staleness check)."""
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


def expected_config(documents: list[Document], model: ModelSpec, chunker: ChunkerParams, index_type: str, exact_max: int) -> IndexConfig:
    return IndexConfig(model=model, chunker=chunker, corpus_sha256=corpus_hash(documents), index_type=index_type, exact_search_max=exact_max)
