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
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rag.index.build import IndexConfig, load_or_build, on_disk, read_corpus
from rag.config import Settings
from rag.corpus.documents import Document, Skipped
from rag.encoding.encoders import Encoders
from rag.errors import IndexProblem, InvalidInput, NotFound
from rag.query.filters import Filters, passage_mask
from rag.index.lexical import LexicalIndex
from rag.encoding.model import ModelSpec, resolve_model
from rag.corpus.passage_text import heading_text
from rag.query.request import Query
from rag.query.retrieval import QueryResult, Retriever
from rag.index.store import LoadedIndex, in_engine
from rag.query.verdict import ANSWERABLE_THRESHOLD

log = logging.getLogger(__name__)


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
        try:
            return self.documents[document_id]
        except KeyError:
            raise NotFound(f"no document with id {document_id!r}") from None

    def passage(self, passage_id: str) -> PassageView:
        position = self.retriever.position.get(passage_id)
        if position is None:
            raise NotFound(f"no passage with id {passage_id!r} in index {self.id}")
        passages = self.passages
        passage = passages[position]

        def neighbour(i: int) -> str | None:
            ok = 0 <= i < len(passages) and passages[i].document == passage.document
            return passages[i].id if ok else None

        return PassageView(passage, self.documents[passage.document], neighbour(position - 1), neighbour(position + 1), self)

    def allowed(self, filters: Filters) -> np.ndarray | None:
        """The passages `filters` allows (one bool each), or None for no filter; InvalidInput names a document
        this snapshot does not have."""
        return passage_mask(filters.check(self.documents), self.passages, self.documents)

    def info(self) -> dict:
        return {
            "index_id": self.id,
            "model": self.model,
            "index_type": self.index.manifest["index_type"],
            "encoder": self.encoder_kind,
            "documents": len(self.documents),
            "passages": len(self.passages),
            "skipped": [s.as_dict() for s in self.skipped],
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

    @classmethod
    def open(cls, settings: Settings, encoders: Encoders | None = None) -> "Service":
        """Load the index (building it first if missing or stale and `auto_build` allows) and serve it."""
        model = resolve_model(settings.model)
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
        corpus = read_corpus(self.settings)  # read once: to compare, and to load from if it changed
        if not force and (current := self._still_current(corpus)) is not None:
            self.snapshot = current  # nothing to load: the files on disk are the ones being served
            return current.id
        snapshot = _open_snapshot(self.settings, self.model, self.encoders, force, corpus)
        self.snapshot = snapshot  # one reference swap: requests in flight keep the old one
        return snapshot.id

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

    def parse(self, question: object, top_k: object = None, mode: object = None, filters: object = None) -> Query:
        """`Query.parse` with this service's settings: for callers that hold raw values (CLI, MCP, eval)."""
        return Query.parse(question, top_k, mode, filters, settings=self.settings)

    def parse_batch(self, questions: object, top_k: object = None, mode: object = None, filters: object = None) -> list[Query]:
        """`Query.parse_batch` with this service's settings."""
        return Query.parse_batch(questions, top_k, mode, filters, settings=self.settings)

    def query(self, query: Query, snapshot: Snapshot | None = None) -> QueryResult:
        """Rank passages for `query` on the current snapshot (or the given one)."""
        snapshot = snapshot or self.snapshot
        allowed = snapshot.allowed(query.filters)
        return snapshot.retriever.search(query, snapshot, allowed)

    def batch_query(self, queries: list[Query], stop: threading.Event | None = None) -> list[QueryResult]:
        """Several queries (`Query.parse_batch`: one filter for all), all answered from one snapshot.

        `stop`, once set (the caller has gone), ends the batch after the question in progress: the list is then shorter."""
        snapshot = self.snapshot
        allowed = snapshot.allowed(queries[0].filters) if queries else None
        results = []
        for query in queries:
            if stop is not None and stop.is_set():
                break
            results.append(snapshot.retriever.search(query, snapshot, allowed))
        return results

    def document(self, document_id: str) -> Document:
        return self.snapshot.document(document_id)

    def passage(self, passage_id: str) -> PassageView:
        return self.snapshot.passage(passage_id)

    def info(self) -> dict:
        return self.snapshot.info()


def _open_snapshot(settings: Settings, model: ModelSpec, encoders: Encoders, force: bool = False, corpus=None) -> Snapshot:
    corpus = corpus if corpus is not None else read_corpus(settings)
    documents = list(corpus.documents)
    config = IndexConfig.of(settings, documents, model)
    loaded, _ = load_or_build(settings, documents, config, encoders, may_build=settings.auto_build or force, force=force)
    query_encoder = encoders.query()
    return make_snapshot(settings, documents, loaded, query_encoder, corpus.skipped)


def make_snapshot(settings: Settings, documents: list[Document], loaded: LoadedIndex, encoder, skipped: tuple = ()) -> Snapshot:
    by_id = {d.id: d for d in documents}
    engine = in_engine(loaded.manifest)  # the vectors and BM25 live in an engine: its store is loaded.vectors
    lexical = LexicalIndex([heading_text(by_id[p.document], p) for p in loaded.passages], index=not engine)
    threshold = ANSWERABLE_THRESHOLD if settings.answerable_threshold is None else settings.answerable_threshold
    retriever = Retriever(loaded, by_id, lexical, encoder, answerable_threshold=threshold, store=loaded.vectors if engine else None)
    return Snapshot(loaded, by_id, retriever, encoder.kind, tuple(skipped))
