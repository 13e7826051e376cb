"""The service: one immutable index snapshot at a time, and everything a caller can ask of it.

`Service.open(settings, encoders=...)` loads the documents, resolves the model
(checking the default model's hash), and loads the index if it matches what the
current configuration would build; if it is missing, stale or corrupt it is
rebuilt (with `auto_build`, the default) or refused with the reason (rag.index.build).
The encoders come from an injectable `rag.encoding.encoders.Encoders` provider.

A `Snapshot` is one index version with everything rendered from it: the
documents it was built from, its passages, its id and model, and the retriever
over it. It never changes. `Service.snapshot` is swapped as one reference on
`reload()`; every answer (`QueryResult.snapshot`) carries the snapshot it was
computed on, and transports render documents, titles and citations from that,
so a reload in the middle of a request can never mix two index versions.

A document removed or replaced is never served again, by any snapshot: every reload retires the document
versions (id, content hash) the old snapshot had and the new one lacks, in a registry all of this service's
snapshots share (`Retired`), *before* the new snapshot is swapped in. A request still running on an older
snapshot searches only live passages, and checks its hits once more when it ends: a hit retired meanwhile
makes it answer again from the current snapshot. `document()`, `passage()` (HTTP, MCP `fetch`) refuse a
retired version like an unknown id.

Writes (`write_document`, `remove_document`: HTTP uploads, rag.uploads) change seeds/ one at a time: the
upload is read by the corpus reader before it lands, placed atomically, re-indexed through `reload()`, and put back
as it was when anything fails. A reload updates the served snapshot's index instead of building from nothing
(rag.index.build.update_index): only changed files are parsed, only changed documents chunked and embedded, BM25
tokenizes only new passages, and the files written are the ones a full build would write.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath

import numpy as np

from rag.index.build import IndexConfig, Previous, load_or_build, on_disk, read_corpus
from rag.config import Settings
from rag.corpus.documents import Document, Skipped
from rag.encoding import verifier as verifiers
from rag.encoding.encoders import Encoders
from rag import uploads
from rag.errors import Conflict, IndexProblem, InvalidInput, NotFound
from rag.query.filters import Filters, passage_mask
from rag.index.lexical import LexicalIndex
from rag.encoding.model import ModelSpec, resolve_model
from rag.corpus.passage_text import heading_text
from rag.query.request import Query
from rag.query.retrieval import QueryResult, Retriever
from rag.index.store import LoadedIndex, in_engine
from rag.query.verdict import ANSWERABLE_THRESHOLD

log = logging.getLogger(__name__)


class Retired:
    """Document versions (id, content hash) that were served once and are no longer: shared by every snapshot of
    one service. Thread-safe; entries no snapshot can still be serving are dropped after `KEEP_SECONDS`."""

    KEEP_SECONDS = 3600.0

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._versions)

    def retire(self, versions: Iterable[tuple[str, str]]) -> None:
        now = time.monotonic()
        with self._lock:
            for version in versions:
                self._versions[version] = now
            self._versions = {v: t for v, t in self._versions.items() if now - t < self.KEEP_SECONDS}

    def revive(self, versions: Iterable[tuple[str, str]]) -> None:
        """Versions served again (the same content added back under its id)."""
        with self._lock:
            for version in versions:
                self._versions.pop(version, None)

    def holds(self, document: Document) -> bool:
        return (document.id, document.content_hash) in self._versions

    def ids_in(self, documents: Mapping[str, Document]) -> set[str]:
        """The ids of `documents` whose version is retired."""
        with self._lock:
            versions = list(self._versions)
        return {doc_id for doc_id, content_hash in versions if (d := documents.get(doc_id)) is not None and d.content_hash == content_hash}


def versions_of(documents: Mapping[str, Document]) -> set[tuple[str, str]]:
    return {(d.id, d.content_hash) for d in documents.values()}


@dataclass(frozen=True)
class Written:
    """What a write did: the document's id, `status` (created, replaced, unchanged, duplicate: the same content
    is already served under `id`, removed), and the snapshot serving the outcome."""

    id: str
    status: str
    snapshot: "Snapshot"
    source: str = ""

    @property
    def document(self) -> Document | None:
        return self.snapshot.documents.get(self.id)

    @property
    def passages(self) -> int:
        return sum(1 for p in self.snapshot.passages if p.document == self.id)


@dataclass(frozen=True, eq=False)
class PassageView:
    passage: object  # rag.corpus.chunking.Passage
    document: Document
    previous_id: str | None
    next_id: str | None
    snapshot: "Snapshot"


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One index version and everything answered from it."""

    index: LoadedIndex
    documents: Mapping[str, Document]  # id -> Document: the version this index was built from
    retriever: Retriever
    encoder_kind: str
    skipped: tuple[Skipped, ...] = ()  # files under seeds/ that are not documents, each with its reason
    retired: Retired = field(default_factory=Retired)  # shared by the service's snapshots: versions no longer served

    @property
    def id(self) -> str:
        return self.index.id

    @property
    def model(self) -> str:
        return self.index.manifest["model"]["name"]

    @property
    def passages(self):
        return self.index.passages

    def document(self, document_id: str) -> Document:
        document = self.documents.get(document_id)
        if document is None or self.retired.holds(document):
            raise NotFound(f"no document with id {document_id!r}")
        return document

    def live_documents(self) -> list[Document]:
        """The documents, without versions removed or replaced since this snapshot was made."""
        return [d for d in self.documents.values() if not self.retired.holds(d)]

    def passage(self, passage_id: str) -> PassageView:
        position = self.retriever.position.get(passage_id)
        passages = self.passages
        if position is None or self.retired.holds(self.documents[passages[position].document]):
            raise NotFound(f"no passage with id {passage_id!r} in index {self.id}")
        passage = passages[position]

        def neighbour(i: int) -> str | None:
            ok = 0 <= i < len(passages) and passages[i].document == passage.document
            return passages[i].id if ok else None

        return PassageView(passage, self.documents[passage.document], neighbour(position - 1), neighbour(position + 1), self)

    def allowed(self, filters: Filters) -> np.ndarray | None:
        """The passages `filters` allows (one bool each), or None for no filter; InvalidInput names a document or
        a section this snapshot does not have."""
        allowed = passage_mask(filters.check(self.documents, self.passages), self.passages, self.documents)
        retired = self.retired.ids_in(self.documents)
        if not retired:
            return allowed
        codes, code_of = self._document_codes
        live = ~np.isin(codes, [code_of[doc_id] for doc_id in retired])
        return live if allowed is None else allowed & live

    def is_stale(self, hit) -> bool:
        """The hit's document version was retired (removed or replaced) after this snapshot was made."""
        return self.retired.holds(self.documents[hit.passage.document])

    @cached_property
    def _document_codes(self) -> tuple[np.ndarray, dict[str, int]]:
        """One small integer per passage naming its document, for masking documents out quickly."""
        code_of = {doc_id: i for i, doc_id in enumerate(self.documents)}
        return np.fromiter((code_of[p.document] for p in self.passages), dtype=np.int32, count=len(self.passages)), code_of

    def info(self) -> dict:
        return {
            "index_id": self.id,
            "model": self.model,
            "index_type": self.index.manifest["index_type"],
            "encoder": self.encoder_kind,
            "documents": len(self.documents),
            "passages": len(self.passages),
            "skipped": [s.as_dict() for s in self.skipped],
            "verifier": self.retriever.verifier_status(),
        }


class Service:
    def __init__(self, settings: Settings, model: ModelSpec, encoders: Encoders, snapshot: Snapshot):
        self.settings = settings
        self.model = model
        self.encoders = encoders
        self.snapshot = snapshot
        self._reload_state = threading.Condition()  # guards the five fields below (see reload)
        self._reloading = False
        self._reloads_started = 0
        self._reloads_finished = 0
        self._force_next = False  # a waiting caller asked for force: the next reload to start is forced
        self._last_reload_error: BaseException | None = None
        self._writes = threading.Lock()  # one change to seeds/ at a time (write_document, remove_document)

    @classmethod
    def open(cls, settings: Settings, encoders: Encoders | None = None) -> "Service":
        """Load the index (building it first if missing or stale and `auto_build` allows) and serve it."""
        model = resolve_model(settings.model, settings.encoder_dir)
        encoders = encoders or Encoders.from_settings(settings, model)
        return cls(settings, model, encoders, _open_snapshot(settings, model, encoders))

    @property
    def documents(self) -> Mapping[str, Document]:
        return self.snapshot.documents

    def reload(self, force: bool = False) -> str:
        """Re-read seeds/ and the index (rebuilding if needed and allowed, or always with `force`) and swap it in;
        returns the index id now served.

        Concurrent calls coalesce here, whoever makes them (HTTP, SIGHUP, a watcher): a caller needs a reload
        that starts after it arrived, so one arriving while a reload runs waits for the next one, and every
        caller waiting then shares that one (forced if any of them asked for force). Only one runs at a time;
        a crowd of N callers costs at most two loads, and no change made before a call is ever missed."""
        with self._reload_state:
            wanted = self._reloads_started + 1
            self._force_next = self._force_next or force
            while self._reloads_finished < wanted:
                if not self._reloading:  # no reload running: this caller runs the one everyone waiting needs
                    self._reloading, self._reloads_started = True, wanted
                    force, self._force_next = self._force_next, False
                    break
                self._reload_state.wait()
            else:  # the reload this caller needed has finished: share its outcome
                if self._last_reload_error is not None:
                    raise self._last_reload_error
                return self.snapshot.id
        error: BaseException | None = None
        try:
            return self._reload_now(force)
        except BaseException as exc:
            error = exc
            raise
        finally:
            with self._reload_state:
                self._reloading = False
                self._reloads_finished = wanted
                self._last_reload_error = error
                self._reload_state.notify_all()

    def _reload_now(self, force: bool) -> str:
        corpus = read_corpus(self.settings, retry_transient=self.settings.auto_build or force)  # read once: to compare, and to load from
        if not force and (current := self._still_current(corpus)) is not None:
            self.snapshot = current  # nothing to load: the files on disk are the ones being served
            return current.id
        snapshot = _open_snapshot(self.settings, self.model, self.encoders, force, corpus, self.snapshot.retired, previous=self.snapshot)
        self._swap(snapshot)
        return snapshot.id

    def _swap(self, snapshot: Snapshot) -> None:
        """Serve `snapshot`: what the old one had and the new one lacks is retired first, so no request, even one
        still running on the old snapshot, can return it once the swap is done."""
        old, new = versions_of(self.snapshot.documents), versions_of(snapshot.documents)
        snapshot.retired.retire(old - new)
        snapshot.retired.revive(new)
        self.snapshot = snapshot  # one reference swap: requests in flight keep the old one

    def _still_current(self, corpus) -> "Snapshot | None":
        """The served snapshot (with this corpus's skipped files) when the index on disk is the very one it
        was loaded from and still matches the settings and documents; None when a load is needed. Reading
        the manifest is cheap; loading an index (files, BM25) is not, and a crowd of no-op reloads would
        otherwise slow every query."""
        try:
            manifest, stale = on_disk(self.settings, list(corpus.documents), self.model)
        except IndexProblem:
            return None
        if stale or manifest.get("id") != self.snapshot.id or manifest.get("build") != self.snapshot.index.manifest.get("build"):
            return None
        return dataclasses.replace(self.snapshot, skipped=tuple(corpus.skipped))

    # --- answering ---------------------------------------------------------------------

    def parse(self, question: object, top_k: object = None, mode: object = None, filters: object = None, verify: object = None) -> Query:
        """`Query.parse` with this service's settings: for callers that hold raw values (CLI, MCP, eval)."""
        return Query.parse(question, top_k, mode, filters, settings=self.settings, verify=verify)

    def parse_batch(self, questions: object, top_k: object = None, mode: object = None, filters: object = None,
                    verify: object = None) -> list[Query]:
        """`Query.parse_batch` with this service's settings."""
        return Query.parse_batch(questions, top_k, mode, filters, settings=self.settings, verify=verify)

    def query(self, query: Query, snapshot: Snapshot | None = None) -> QueryResult:
        """Rank passages for `query` on the current snapshot (or the given one), live documents only: a hit whose
        document was removed or replaced while it ran makes it answer again from the current snapshot."""
        snapshot = snapshot or self.snapshot
        for _ in range(ANSWER_AGAIN):
            result = snapshot.retriever.search(query, snapshot, snapshot.allowed(query.filters))
            if not any(snapshot.is_stale(hit) for hit in result.hits):
                return result
            snapshot = self.snapshot
        return _without_stale(result)

    def batch_query(self, queries: list[Query], stop: threading.Event | None = None) -> list[QueryResult]:
        """Several queries (`Query.parse_batch`: one filter for all), all answered from one snapshot.

        `stop`, once set (the caller has gone), ends the batch after the question in progress: the list is then shorter."""
        for _ in range(ANSWER_AGAIN):
            snapshot = self.snapshot
            allowed = snapshot.allowed(queries[0].filters) if queries else None
            results = []
            for query in queries:
                if stop is not None and stop.is_set():
                    break
                results.append(snapshot.retriever.search(query, snapshot, allowed))
            if not any(snapshot.is_stale(hit) for result in results for hit in result.hits):
                return results
        return [_without_stale(result) for result in results]

    def document(self, document_id: str) -> Document:
        return self.snapshot.document(document_id)

    def passage(self, passage_id: str) -> PassageView:
        return self.snapshot.passage(passage_id)

    def info(self) -> dict:
        return self.snapshot.info()

    # --- writing documents (rag.uploads) -------------------------------------------------------

    def write_document(self, upload: uploads.Upload, document_id: str | None = None, replace: bool = False) -> Written:
        """Add the upload as a new document (`replace=False`: Conflict if its id is taken) or as document
        `document_id`, replacing it if there is one; re-index and return what is served now. The same content
        as a document already served is not added twice (`duplicate`, or Conflict for a replace under another
        id). InvalidInput when it would not be indexed, with the reason; on any failure seeds/ and the served
        index stay as they were."""
        if document_id is not None and upload.id is not None and upload.id != document_id:
            raise InvalidInput(f"the body names id {upload.id!r} but the document written is {document_id!r}")
        with self._writes:
            snapshot = self.snapshot
            current = snapshot.documents.get(document_id) if document_id is not None else None
            if current is not None and snapshot.retired.holds(current):
                current = None
            wanted = self._wanted_id(upload, document_id, current)
            relative = self._relative_for(wanted, current, upload.suffix)
            staged = uploads.stage(upload, relative, self.settings.max_document_bytes, self.settings.max_extract_seconds)
            same = next((d for d in snapshot.live_documents() if d.content_hash == staged.content_hash), None)
            if same is not None and (same.id == wanted or not replace):
                return Written(same.id, "unchanged" if same.id == wanted else "duplicate", snapshot, same.source)
            if same is not None:
                raise Conflict(f"the same content is already served as document {same.id!r}")
            holding = uploads.files_holding(self.settings.seeds_dir, wanted, current)
            if holding and not replace:
                raise Conflict(f"a document with id {wanted!r} exists ({self._shown(holding[0])}); PUT /documents/{wanted} replaces it")
            placement = uploads.place(self.settings.seeds_dir, relative, upload, holding)
            served = self._reindex(placement, wanted, staged.content_hash, relative)
            return Written(wanted, "replaced" if holding else "created", served, relative)

    def remove_document(self, document_id: str) -> Written:
        """Remove the document's file (and sidecar) from seeds/ and re-index; NotFound for an unknown id."""
        with self._writes:
            current = self.snapshot.document(document_id)
            placement = uploads.remove(uploads.files_holding(self.settings.seeds_dir, document_id, current))
            served = self._reindex(placement, document_id, None, current.source)
            return Written(document_id, "removed", served, current.source)

    @staticmethod
    def _wanted_id(upload: uploads.Upload, document_id: str | None, current: Document | None) -> str:
        """An existing document keeps its id (folders and all); a new one needs a plain slug (rag.uploads)."""
        if current is not None:
            return current.id
        return uploads.checked_id(document_id) if document_id is not None else upload.wanted_id()

    def _relative_for(self, document_id: str, current: Document | None, suffix: str) -> str:
        """Where the document goes under seeds/: beside the file it replaces (same folder and name), else at the top."""
        if current is None:
            return document_id + suffix
        old = PurePosixPath(current.source)
        return str(old.with_name(old.stem + suffix))

    def _shown(self, path) -> str:
        try:
            return str(PurePosixPath(path).relative_to(self.settings.seeds_dir.resolve()))
        except ValueError:
            return PurePosixPath(path).name

    def _reindex(self, placement: uploads.Placement, document_id: str, content_hash: str | None, relative: str) -> Snapshot:
        """Reload after a change to seeds/; the change is committed if the served snapshot now has the document
        version wanted (`content_hash`, or None: no document with that id), else undone (the reason raised)."""
        try:
            self.reload()
        except BaseException:
            placement.undo()
            raise
        served = self.snapshot
        document = served.documents.get(document_id)
        if content_hash is None:  # a removal: no file gives the id any more
            done = document is None or document.source != relative
        else:
            done = document is not None and document.content_hash == content_hash
        if done:
            placement.commit()
            return served
        placement.undo()
        try:
            self.reload()  # serve seeds/ as it is again
        except Exception as exc:  # noqa: BLE001 - the caller hears why its write failed; this is logged
            log.error("reload after an undone write failed: %s", exc)
        if content_hash is None:
            raise Conflict(f"another file, {document.source}, gives the id {document_id!r} too; remove or rename it first")
        reason = next((s.reason for s in served.skipped if s.path == relative), "it was not indexed")
        raise InvalidInput(f"not indexed: {reason}")


KEEP_TOKENS_MAX = 100_000  # passages up to which a snapshot keeps each passage's BM25 tokens and terms (~1 KB each) for the next
ANSWER_AGAIN = 3  # searches before the stale hits are simply dropped (a removal during each of them)


def _without_stale(result: QueryResult) -> QueryResult:
    snapshot = result.snapshot
    hits = [hit for hit in result.hits if not snapshot.is_stale(hit)]
    return dataclasses.replace(result, hits=hits)


def _open_snapshot(
    settings: Settings, model: ModelSpec, encoders: Encoders, force: bool = False, corpus=None, retired: Retired | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """The snapshot of the index for the corpus (loaded, or built if allowed). With `previous` (the snapshot served now), a
    build updates its index instead of building from nothing (rag.index.build.update_index: only changed documents are
    chunked and embedded), and the new snapshot's BM25 tokenizes only the passages `previous` lacks."""
    corpus = corpus if corpus is not None else read_corpus(settings, retry_transient=settings.auto_build or force)
    documents = list(corpus.documents)
    config = IndexConfig.of(settings, documents, model)
    served = Previous(previous.index, previous.documents) if previous is not None else None
    loaded, _ = load_or_build(settings, documents, config, encoders, may_build=settings.auto_build or force, force=force, previous=served)
    query_encoder = encoders.query()
    return make_snapshot(settings, documents, loaded, query_encoder, corpus.skipped, retired, previous)


def make_snapshot(
    settings: Settings, documents: list[Document], loaded: LoadedIndex, encoder, skipped: tuple = (), retired: Retired | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """The snapshot serving `loaded`; with `previous`, its BM25 reuses the tokens of the passages both share."""
    by_id = {d.id: d for d in documents}
    engine = in_engine(loaded.manifest)  # the vectors and BM25 live in an engine: its store is loaded.vectors
    passages = loaded.passages
    kept = len(passages) <= KEEP_TOKENS_MAX  # what BM25 and the passages' terms are made of, kept for the next snapshot
    keys = [(p.id, by_id[p.document].title, p.section) for p in passages] if kept else None  # what a heading text is made of
    before = previous.retriever.lexical if previous is not None and isinstance(previous.retriever.lexical, LexicalIndex) else None
    lexical = LexicalIndex([heading_text(by_id[p.document], p) for p in passages], index=not engine, keys=keys, previous=before,
                           passage_texts=[p.text for p in passages] if kept else None)
    threshold = ANSWERABLE_THRESHOLD if settings.answerable_threshold is None else settings.answerable_threshold
    verifier, verifier_status = verifiers.for_model(encoder.spec, settings.verifier, settings.verify_on_request, settings.verifier_threads)
    retriever = Retriever(loaded, by_id, lexical, encoder, answerable_threshold=threshold, verifier=verifier, verifier_status=verifier_status,
                          store=loaded.vectors if engine else None)
    return Snapshot(loaded, by_id, retriever, encoder.kind, tuple(skipped), retired if retired is not None else Retired())
