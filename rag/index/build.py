"""Building the index: chunk, embed, write; and deciding whether the index on disk is the one to serve.

`IndexConfig.fingerprint()` is everything that shapes an index: format
version, model (name and weights sha256), chunker parameters, the embedding
text rule, the ANN choice and its parameters (rag.index.ann), the lexical
parameters (rag.index.lexical) and the corpus hash. The manifest records it, and
two things outside it: the library versions that wrote the files and the
verifier shipped for the model (it shapes no file). A difference in the
fingerprint makes the index stale.

`build(settings)` is what `rag index` runs: it builds only when the index is
missing, stale or corrupt (or when forced) and returns a `BuildReport`. It
never opens the serving stack. `load_or_build` is what opening a service runs:
the current index if it matches, else a build if `auto_build` allows it, else
a refusal naming the reason. Builds hold an exclusive lock on `.lock` in the
index directory, so two processes never build at once.

Rebuilding reuses the vectors of passages and sentences whose embedded text is
unchanged (keyed by content hash), so an edit to one paragraph re-embeds one
passage. A service's reload goes further (`update_index`, given the index it
serves): unchanged documents keep their passages and vectors as they are, only
changed documents are chunked, and the new index is served as written.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np

from rag.index.ann import ann_fingerprint, make_faiss_index
from rag.encoding.build_encoder import progress_bar, resolve_build_precision
from rag.corpus.chunking import ChunkerParams, chunk_corpus, chunk_document
from rag.config import Settings
from rag.corpus.documents import Corpus, Document, Skipped, corpus_hash, log_skipped
from rag.corpus.documents import load_corpus as read_seeds
from rag.encoding.encoders import Encoders
from rag.encoding import verifier as verifiers
from rag.errors import IndexProblem, IndexStale
from rag.index.lexical import lexical_fingerprint
from rag.encoding.model import ModelSpec, resolve_model
from rag.corpus.passage_text import EMBEDDING_TEXT_VERSION, embedding_texts, heading_text, sentence_texts
from rag.index import corpus_cache, store
from rag.index.store import FORMAT_VERSION, MANIFEST, LoadedIndex, check_index_dir, in_engine, load_index, manifest_digest, passages_json, read_manifest, remove_strays, stale_reasons, text_key

log = logging.getLogger(__name__)
LIBRARIES = ("faiss-cpu", "bm25s", "onnxruntime", "sentence-transformers", "numpy")


@dataclass(frozen=True)
class IndexConfig:
    """Everything that decides the index contents; a change to any of it makes the index stale."""

    model: ModelSpec
    chunker: ChunkerParams
    corpus_sha256: str
    index_type: str = "auto"  # "auto" | "flat" | "hnsw" | "ivf"
    exact_search_max: int = 50_000
    vector_store: str = "faiss"  # "faiss" | "qdrant" (rag.index.vector_store)
    store_uri: str | None = None  # where the engine is (not in the fingerprint: replicas may reach one cluster by other names)
    collection: str = "rag_passages"
    build_precision: str = "fp32"  # "fp32" | "bf16": what the vectors were embedded in (rag.encoding.build_encoder)

    @classmethod
    def of(cls, settings: Settings, documents: list[Document], model: ModelSpec) -> "IndexConfig":
        chunker = ChunkerParams(max_tokens=settings.max_passage_tokens, min_chars=settings.min_passage_chars)
        uri = settings.vector_store_uri or str(settings.index_dir / "qdrant")
        return cls(model, chunker, corpus_hash(documents), settings.index_type, settings.exact_search_max,
                   settings.vector_store, uri, settings.vector_store_collection,
                   resolve_build_precision(settings.build_precision, settings.device))

    @property
    def engine(self) -> bool:
        return self.vector_store != "faiss"

    def fingerprint(self) -> dict:
        store = {"store": {"kind": self.vector_store, "collection": self.collection}} if self.engine else {}  # faiss: as before the seam
        precision = {"build_precision": self.build_precision} if self.build_precision != "fp32" else {}  # fp32: as before bf16
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model.as_dict(),
            "chunker": self.chunker.as_dict(),
            "embedding_text": EMBEDDING_TEXT_VERSION,
            "ann": ann_fingerprint(self.index_type, self.exact_search_max),
            "lexical": lexical_fingerprint(),
            "corpus_sha256": self.corpus_sha256,
            **store,
            **precision,
        }


@dataclass(frozen=True)
class BuildReport:
    """What `build` did: the manifest of the index now current, and whether it had to be built."""

    manifest: dict
    built: bool
    documents: list[Document] = field(default_factory=list)
    skipped: tuple[Skipped, ...] = ()
    seconds: float = 0.0


def library_versions() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# --- the entry points -------------------------------------------------------------------


def build(settings: Settings, encoders: Encoders | None = None, force: bool = False, progress: bool = False) -> BuildReport:
    """Make the index in `settings.index_dir` current (build it if missing, stale or corrupt, or if `force`)."""
    started = time.perf_counter()
    corpus = read_corpus(settings)
    documents = list(corpus.documents)
    model = resolve_model(settings.model, settings.encoder_dir)
    encoders = encoders or Encoders.from_settings(settings, model)
    config = IndexConfig.of(settings, documents, model)
    loaded, built = load_or_build(settings, documents, config, encoders, may_build=True, force=force, progress=progress)
    return BuildReport(loaded.manifest, built, documents, corpus.skipped, round(time.perf_counter() - started, 3))


def read_corpus(settings: Settings, retry_transient: bool = True) -> Corpus:
    """The documents under seeds/, and every file skipped with its reason (each logged once per process: `log_skipped`).

    When nothing under seeds/ changed since the last read (by stat: rag.index.corpus_cache), the corpus read then
    is used again, without parsing a file; otherwise the folder is read (parsing only the files that changed since,
    `corpus_cache.read_reusing`) and remembered for next time. A file skipped for a reason that may not recur (a
    time budget) is read again, unless `retry_transient` is False: a process that may not build takes the last
    reading as the index was built from it (`corpus_cache.recall`)."""
    listed = corpus_cache.fingerprint(settings.seeds_dir, settings.max_document_bytes)  # before reading: a change meanwhile shows next time
    corpus = corpus_cache.recall(settings.index_dir, listed, retry_transient)
    if corpus is None:
        known = corpus_cache.reusable(settings.index_dir, listed)  # documents whose files did not change: not parsed again
        corpus = load_corpus(settings.seeds_dir, settings.max_document_bytes, settings.max_extract_seconds, known)
        corpus_cache.remember(settings.index_dir, listed, corpus, known.values())
    log_skipped(settings.seeds_dir, corpus.skipped)
    return corpus


def load_corpus(seeds_dir: Path, max_bytes: int, max_extract_seconds: float | None, known: dict | None = None) -> Corpus:
    """Read seeds/ (rag.corpus.documents.load_corpus), taking the documents in `known` (by path under seeds/, files unchanged
    since they were read: rag.index.corpus_cache.reusable) as they are: `corpus_cache.read_reusing`, the same result."""
    if known:
        return corpus_cache.read_reusing(seeds_dir, max_bytes, max_extract_seconds, known)
    return read_seeds(seeds_dir, max_bytes, max_extract_seconds)


def load_or_build(
    settings: Settings,
    documents: list[Document],
    config: IndexConfig,
    encoders: Encoders,
    may_build: bool,
    force: bool = False,
    progress: bool = False,
    previous: "Previous | None" = None,
) -> tuple[LoadedIndex, bool]:
    """The index that matches `config`, built first if missing, stale or corrupt (and allowed); and whether it was built.

    With `previous` (the index a service serves now and the documents it was built from) a build that is not
    forced updates that index (`update_index`: only the documents that changed are chunked and embedded) when it
    can (`can_update`), and returns the new index as written, without reading it back."""
    check_index_dir(settings.index_dir, settings.seeds_dir)
    expected = config.fingerprint()
    if not force:
        try:
            loaded = load_current(settings.index_dir, expected, config)
            remove_strays_if_idle(settings.index_dir)
            return loaded, False
        except IndexProblem as problem:
            if not may_build:
                raise IndexProblem(f"{problem}; refusing to serve it (run `rag index`, or set RAG_AUTO_BUILD=true)") from problem
            log.info("building the index: %s", problem)
    with build_lock(settings.index_dir):
        if not force:  # another process may have built it while we waited for the lock
            try:
                return load_current(settings.index_dir, expected, config), False
            except IndexProblem:
                pass
        try:
            if not force and can_update(previous, config):
                if store.sentences_intact(previous.index):
                    try:
                        return update_index(settings.index_dir, documents, config, encoders.builder(config.build_precision), previous), True
                    except CannotUpdate as exc:
                        log.info("building from nothing: %s", exc)
                else:
                    log.warning("the served index %s changed on disk: building from nothing", previous.index.id)
            build_index(settings.index_dir, documents, config, encoders.builder(config.build_precision), progress=progress)
        except OSError as exc:  # disk full, read-only, permissions: the previous index is untouched
            raise IndexProblem(f"cannot write the index to {settings.index_dir}: {exc.strerror or exc}") from exc
        finally:
            corpus_cache.remember_pending(settings.index_dir)  # the corpus read before the first build, now beside an index
    return load_current(settings.index_dir, expected, config), True


def load_current(index_dir: Path, expected: dict | None, config: IndexConfig) -> LoadedIndex:
    """`load_index`, with the engine's store attached when the index keeps its vectors in one (IndexStale when
    the engine lacks any of its passages)."""
    loaded = load_index(index_dir, expected)
    if not in_engine(loaded.manifest):
        return loaded
    if not config.engine or loaded.manifest["store"].get("collection") != config.collection:
        raise IndexStale(f"index {loaded.id} keeps its vectors in another store ({loaded.manifest['store']})")
    from rag.index import qdrant_store

    engine = qdrant_store.open_store(config.store_uri, config.collection, loaded.manifest, loaded.passages, loaded.embedded_keys)
    return dataclasses.replace(loaded, vectors=engine)


def on_disk(settings: Settings, documents: list[Document], model: ModelSpec) -> tuple[dict, list[str]]:
    """The manifest of the index on disk and what is stale about it for these settings and documents
    (reads only the manifest; IndexProblem when there is none or it cannot be read)."""
    manifest = read_manifest(settings.index_dir)
    return manifest, stale_reasons(manifest, IndexConfig.of(settings, documents, model).fingerprint())


@contextmanager
def build_lock(index_dir: Path):
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_strays_if_idle(index_dir: Path) -> list[str]:
    """Remove leftovers of an interrupted build (temp files, unnamed data files), unless a build is running.

    Takes the build lock without waiting: a build in progress owns its temp files. Needs no free
    space: an intact index is served from a full disk.
    """
    try:
        with open(index_dir / ".lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []
            try:
                removed = remove_strays(index_dir)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError as exc:  # a read-only or full index directory is served as it is
        log.debug("could not clean %s: %s", index_dir, exc)
        return []
    if removed:
        log.warning("removed %d file(s) left by an interrupted build: %s", len(removed), ", ".join(sorted(removed)))
    return removed


# --- the build --------------------------------------------------------------------------


def build_index(index_dir: Path, documents: list[Document], config: IndexConfig, encoder, progress: bool = True) -> dict:
    """Chunk, embed and write a new index; return its manifest. The old one stays current until the end."""
    started = time.perf_counter()
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    remove_strays(index_dir)
    passages = chunk_corpus(progress_bar(documents, desc="chunking files", unit="file", enabled=progress), encoder.count_tokens, config.chunker)
    if not passages:
        raise IndexProblem("the corpus has no body text to index (is seeds/ empty?)")
    by_id = {d.id: d for d in documents}
    texts = embedding_texts(passages, by_id, encoder.count_tokens, encoder.max_seq_length - 2)  # [CLS], [SEP]
    old = _previous_index(index_dir, config)
    vectors = _embed_reusing(texts, encoder, _old_passage_vectors(old), progress, "passages")
    sentence_vectors = _embed_reusing([t for p in passages for t in sentence_texts(p)], encoder, _old_sentence_vectors(old), progress, "sentences", store.SENTENCE_DTYPE)
    build = uuid.uuid4().hex[:12]
    engine_state = _add_to_engine(config, passages, vectors, by_id, texts, old) if config.engine else None
    faiss_index, index_type = make_faiss_index(vectors, config.index_type, config.exact_search_max) if not config.engine else (None, config.vector_store)
    manifest = _write_index(index_dir, build, config, documents, passages, [text_key(t) for t in texts], faiss_index, index_type,
                            sentence_vectors, int(vectors.shape[1]), encoder.max_seq_length, started, engine_state)
    if config.engine:  # the new manifest is current: points no passage of it names can go
        _remove_from_engine(config, passages, texts, engine_state)
    log.info("built index %s: %d passages in %.1fs", manifest["id"], len(passages), manifest["build_seconds"])
    return manifest


@dataclass(frozen=True)
class Previous:
    """The index a service serves and the documents it was built from (id -> Document): what `update_index` reuses."""

    index: LoadedIndex
    documents: Mapping[str, Document]


class CannotUpdate(Exception):
    """`update_index` cannot reuse the served index (its FAISS index cannot give its vectors back): build instead."""


UPDATE_KEYS = ("format_version", "model", "chunker", "embedding_text", "build_precision")  # what must match for passages and vectors to be reused


def can_update(previous: Previous | None, config: IndexConfig) -> bool:
    """Whether `update_index` can make the index for `config` from `previous`: a FAISS index (not an engine's), of the
    same format, model, chunker and embedding-text rule (the corpus, the ANN type and BM25 may differ)."""
    if previous is None or config.engine or in_engine(previous.index.manifest) or previous.index.vectors is None:
        return False
    fingerprint, manifest = config.fingerprint(), previous.index.manifest
    return all(manifest.get(key) == fingerprint.get(key) for key in UPDATE_KEYS)


def update_index(index_dir: Path, documents: list[Document], config: IndexConfig, encoder, previous: Previous) -> LoadedIndex:
    """The index for `documents` made from `previous` (see `can_update`), written like `build_index` writes one (fresh
    files, the manifest last) and returned as written, without reading it back.

    A document equal to the one `previous` was built from (same id, text, metadata, structure, file) keeps its
    passages, embedded-text keys, passage vectors and sentence vectors, copied from `previous`: chunking is a
    function of the document alone (rag.corpus.chunking), and so is each passage's embedded text
    (rag.corpus.passage_text: the previous passage is only read within a document). Only the other documents are
    chunked, and only their texts that no passage or sentence of `previous` had are embedded. The passages come in
    the order a full build gives them (by document id), so the files hold what `build_index` would write over the
    same index (vectors reused by content the same way), and the FAISS index is made again from the stored
    vectors (flat: a copy; HNSW and IVF are built again, without embedding anything)."""
    started = time.perf_counter()
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    remove_strays(index_dir)
    old = previous.index
    spans = _document_spans(old.passages)
    by_id = {d.id: d for d in documents}
    limit = encoder.max_seq_length - 2  # [CLS], [SEP]
    passages, keys, source = [], [], []  # source: per passage, its position in `old`, or -1 (new)
    fresh: dict[int, str] = {}  # position -> embedded text, for the new passages
    changed = 0
    for document in documents:
        span = spans.get(document.id) if previous.documents.get(document.id) == document else None
        if span is not None:
            first, stop = span
            passages += old.passages[first:stop]
            keys += old.embedded_keys[first:stop]
            source += range(first, stop)
            continue
        changed += 1
        new = chunk_document(document, encoder.count_tokens, config.chunker)
        for passage, text in zip(new, embedding_texts(new, by_id, encoder.count_tokens, limit)):
            fresh[len(passages)] = text
            passages.append(passage)
            keys.append(text_key(text))
            source.append(-1)
    if not passages:
        raise IndexProblem("the corpus has no body text to index (is seeds/ empty?)")
    source_rows = np.asarray(source, dtype=np.int64)
    vectors = _updated_passage_vectors(old, keys, fresh, source_rows, encoder)
    sentence_vectors = _updated_sentence_vectors(old, passages, source_rows, encoder)
    faiss_index, index_type = make_faiss_index(vectors, config.index_type, config.exact_search_max)
    build = uuid.uuid4().hex[:12]
    manifest = _write_index(index_dir, build, config, documents, passages, keys, faiss_index, index_type, sentence_vectors,
                            int(vectors.shape[1]), encoder.max_seq_length, started)
    mapped = store.map_written_sentences(index_dir, manifest["files"]["sentences"], manifest["id"])
    log.info("updated index %s: %d passages (%d document(s) chunked again, into %d passage(s)) in %.1fs", manifest["id"], len(passages),
             changed, len(fresh), manifest["build_seconds"])
    return LoadedIndex(manifest, passages, faiss_index, mapped, store.sentence_rows(passages), keys)


def _document_spans(passages) -> dict[str, tuple[int, int]]:
    """Each document's passages as (first, stop) positions: a build writes one document's passages together."""
    spans: dict[str, tuple[int, int]] = {}
    for i, passage in enumerate(passages):
        first, stop = spans.get(passage.document, (i, i))
        if stop != i and passage.document in spans:  # not one run: not an index a build wrote
            raise CannotUpdate(f"the passages of {passage.document!r} are not together in the served index")
        spans[passage.document] = (first, i + 1)
    return spans


def _updated_passage_vectors(old: LoadedIndex, keys: list[str], fresh: dict[int, str], source: np.ndarray, encoder) -> np.ndarray:
    """The passage vectors: copied from `old` for kept passages; for new ones, an old vector of the same embedded text
    if any (as `_embed_reusing` takes one), else embedded. Float16 values, as every FAISS type stores them."""
    total = old.vectors.ntotal
    try:
        stored = old.vectors.reconstruct_n(0, total).astype(np.float16) if total else np.zeros((0, old.vectors.d), dtype=np.float16)
    except RuntimeError as exc:  # an index of another make that cannot give its vectors back
        raise CannotUpdate(f"index {old.id} cannot give its vectors back ({exc})") from None
    vectors = np.empty((len(keys), old.vectors.d), dtype=np.float32)
    kept = source >= 0
    vectors[kept] = stored[source[kept]]
    if fresh:
        known = {key: row for row, key in enumerate(old.embedded_keys)}
        missing = {keys[i]: text for i, text in fresh.items() if keys[i] not in known}  # one each, in order of first use
        embedded = dict(zip(missing, encoder.encode(list(missing.values()), desc="passages"))) if missing else {}  # float32, as a build stores them
        for i in fresh:
            vectors[i] = embedded[keys[i]] if keys[i] in embedded else stored[known[keys[i]]]
        log.info("embedded %d passages, reused %d", len(missing), len(keys) - len(missing))
    return vectors


def _updated_sentence_vectors(old: LoadedIndex, passages, source: np.ndarray, encoder) -> np.ndarray:
    """The sentence vectors, rows following `passages`' sentences: copied from `old` for kept passages (their rows in
    `old`), for new ones an old vector of the same sentence text if any, else embedded."""
    counts = np.fromiter((len(p.sentences) for p in passages), dtype=np.int64, count=len(passages))
    out = np.empty((int(counts.sum()), old.sentence_vectors.shape[1]), dtype=store.SENTENCE_DTYPE)
    starts = np.cumsum(counts) - counts
    new_rows: list[int] = []
    new_texts: list[str] = []
    i, n = 0, len(passages)
    while i < n:  # runs of passages kept in order are one block copy each
        if source[i] < 0:
            p = passages[i]
            new_rows += range(int(starts[i]), int(starts[i] + counts[i]))
            new_texts += sentence_texts(p)
            i += 1
            continue
        j = i + 1
        while j < n and source[j] == source[j - 1] + 1:
            j += 1
        first_old, last_old = old.sentence_rows[source[i]], old.sentence_rows[source[j - 1]]
        rows = slice(int(first_old[0]), int(last_old[0] + last_old[1]))
        out[int(starts[i]) : int(starts[j - 1] + counts[j - 1])] = old.sentence_vectors[rows]
        i = j
    if new_texts:
        known = {text_key(t): row for row, t in enumerate(_old_sentence_texts(old))}  # as _old_sentence_vectors keys them
        new_keys = [text_key(t) for t in new_texts]
        missing = {k: t for k, t in zip(new_keys, new_texts) if k not in known}  # one each, in order of first use
        embedded = dict(zip(missing, encoder.encode(list(missing.values()), desc="sentences"))) if missing else {}
        for row, key in zip(new_rows, new_keys):
            out[row] = embedded[key] if key in embedded else old.sentence_vectors[known[key]]
        log.info("embedded %d sentences, reused %d", len(missing), len(out) - len(missing))
    return out


def _write_index(index_dir: Path, build: str, config: IndexConfig, documents: list[Document], passages, keys: list[str], faiss_index,
                 index_type: str, sentence_vectors: np.ndarray, dimension: int, max_seq_length: int, started: float,
                 engine_state: dict | None = None) -> dict:
    """Write the data files of build `build`, then, last, the manifest naming them; return the manifest. A failure
    removes this build's files (the previous index stays current)."""
    try:
        files = {
            **({} if config.engine else {"vectors": store.write_file(index_dir, f"vectors-{build}.faiss", store.faiss_writer(faiss_index))}),
            "passages": store.write_file(index_dir, f"passages-{build}.json", store.passages_file(passages, keys)),
            "sentences": store.write_file(index_dir, f"sentences-{build}.npy", store.sentence_npy(sentence_vectors)),
        }
    except BaseException:
        store.discard_build(index_dir, build)
        raise
    fingerprint = config.fingerprint()
    content_id = hashlib.sha256(json.dumps([fingerprint, [f["sha256"] for f in files.values()]], sort_keys=True).encode()).hexdigest()[:12]
    manifest = {
        **fingerprint,
        "id": content_id,
        "build": build,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.perf_counter() - started, 3),
        "dimension": dimension,
        "max_seq_length": max_seq_length,
        "index_type": index_type,
        "libraries": library_versions(),
        "documents": [{"id": d.id, "sha256": d.content_hash} for d in documents],
        "counts": {"documents": len(documents), "passages": len(passages), "sentences": len(sentence_vectors)},
        "files": files,
        "verifier": verifiers.manifest_entry(config.model),  # a record, not in the fingerprint: it shapes no file here
        **({"store_state": engine_state} if engine_state else {}),
    }
    manifest["manifest_sha256"] = manifest_digest(manifest)  # a flipped byte anywhere in the manifest is caught
    try:
        store.write_file(index_dir, MANIFEST, json.dumps(manifest, indent=2).encode(), checksum=False)
    except BaseException:
        store.discard_build(index_dir, build)
        raise
    remove_strays(index_dir)
    return manifest


def _add_to_engine(config: IndexConfig, passages, vectors: np.ndarray, by_id: dict, texts: list[str], old: LoadedIndex | None) -> dict:
    """Add the passages the engine lacks (vectors, BM25 text, payload): rag.index.qdrant_store."""
    from rag.index import qdrant_store

    lexical_texts = [heading_text(by_id[p.document], p) for p in passages]  # what BM25 indexes (as rag.service does)
    previous = old.manifest.get("store_state") if old is not None and in_engine(old.manifest) else None
    return qdrant_store.add_passages(config.store_uri, config.collection, passages, vectors, lexical_texts, [text_key(t) for t in texts],
                                     config.model.as_dict(), previous)


def _remove_from_engine(config: IndexConfig, passages, texts: list[str], state: dict) -> None:
    from rag.index import qdrant_store

    keep = {qdrant_store.point_id(p.id, text_key(t), state["tag"]) for p, t in zip(passages, texts)}
    removed = qdrant_store.remove_others(config.store_uri, config.collection, keep)
    log.info("engine: added %d passage(s), removed %d", state["added"], removed)


def _embed_reusing(texts: list[str], encoder, reusable: dict[str, np.ndarray], progress: bool, what: str, dtype=np.float32) -> np.ndarray:
    """Embed `texts`, taking vectors for unchanged texts from the current index of the same model.
    Rows are stored as `dtype` straight away (sentence vectors: float16, no full float32 copy)."""
    if not texts:
        return encoder.encode([]).astype(dtype)
    keys = [text_key(t) for t in texts]
    missing = {k: t for k, t in zip(keys, texts) if k not in reusable}  # one each, in order of first use
    if missing:
        fresh = encoder.encode(list(missing.values()), progress=progress, desc=what)
        reusable.update(zip(missing, fresh))
    log.info("embedded %d %s, reused %d", len(missing), what, len(texts) - len(missing))
    out = np.empty((len(texts), len(reusable[keys[0]])), dtype=dtype)
    for row, k in enumerate(keys):
        out[row] = reusable[k]
    return out


def _previous_index(index_dir: Path, config: IndexConfig) -> LoadedIndex | None:
    """The current index if it is intact and made by the same model in the same precision (its vectors can be reused)."""
    try:
        old = load_current(index_dir, None, config)
    except IndexProblem:
        return None
    same_make = old.manifest.get("model") == config.model.as_dict() and old.manifest.get("build_precision") == config.fingerprint().get("build_precision")
    return old if same_make and old.vectors is not None else None


def _old_passage_vectors(old: LoadedIndex | None, chunk: int = 100_000) -> dict[str, np.ndarray]:
    """The old index's passage vectors by embedded text, read back in chunks and kept as float16: what every
    FAISS type of this version stores (rag.index.ann), so a rebuild that reuses them stores the same vectors again,
    and half the memory of a float32 copy (1M passages: 0.77 GB instead of 1.5 GB). An older index of another
    make that cannot give its vectors back is embedded again."""
    if old is None:
        return {}
    total = old.vectors.ntotal
    try:
        blocks = [old.vectors.reconstruct_n(start, min(chunk, total - start)).astype(np.float16) for start in range(0, total, chunk)]
    except RuntimeError:
        return {}
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, old.vectors.d), dtype=np.float16)
    return dict(zip(old.embedded_keys, vectors))


def _old_sentence_vectors(old: LoadedIndex | None) -> dict[str, np.ndarray]:
    if old is None:
        return {}
    return {text_key(t): v for t, v in zip(_old_sentence_texts(old), old.sentence_vectors)}


def _old_sentence_texts(old: LoadedIndex) -> Iterator[str]:
    """What each of the old index's sentence vectors was embedded from, by the old index's own rule: an index made
    before sentences had a rule of their own (its manifest's embedding_text another version) embedded every sentence
    as it stands, so only those vectors can be reused for a sentence now embedded as it stands (not a table row,
    which is now read under its header)."""
    if old.manifest.get("embedding_text") == EMBEDDING_TEXT_VERSION:
        return (t for p in old.passages for t in sentence_texts(p))
    return (t for p in old.passages for t in p.written_sentences())
