"""The service: one object that holds the corpus, the model and the index, and answers.

`Service.open(settings)` loads the documents, resolves the model (checking the
default model's hash), and loads the index if it matches what the current
configuration would build; if it is missing, stale or corrupt it is rebuilt
(with `auto_build`, the default) or refused with the reason. Builds hold an
exclusive lock on `index/.lock`, so two processes never build at once.

Everything a caller can ask (query, documents, passages, readiness) is a
method here, so the HTTP app, the MCP tools and the CLI are thin. The current
retriever is swapped as one reference on `reload()`: a query in flight keeps
the index it started with, and its result names that index.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rag.chunking import ChunkerParams, Passage
from rag.config import Settings
from rag.documents import Document, load_corpus
from rag.batching import BatchingEncoder
from rag.build_encoder import build_encoder as choose_build_encoder
from rag.embedding import ModelSpec, SentenceTransformerEncoder, query_encoder, resolve_model
from rag.errors import IndexProblem, NotFound
from rag.index import IndexConfig, LoadedIndex, build_index, expected_config, heading_text, load_index, remove_strays
from rag.lexical import LexicalIndex
from rag.retrieval import QueryResult, Retriever, check_params, clean_question

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassageView:
    passage: Passage
    document: Document
    previous_id: str | None
    next_id: str | None
    index_id: str  # the index version the passage was read from
    model: str


class Service:
    def __init__(self, settings: Settings, model: ModelSpec, retriever: Retriever, build_encoder=None):
        self.settings = settings
        self.model = model
        self.retriever = retriever
        self._reload_lock = threading.Lock()
        self._build_box = {"encoder": build_encoder} if build_encoder else {}

    def build_encoder(self):
        """The encoder that builds indexes (rag.build_encoder: fp32 ONNX or sentence-transformers), loaded on first use."""
        if "encoder" not in self._build_box:
            self._build_box["encoder"] = choose_build_encoder(self.settings, self.model)
        return self._build_box["encoder"]

    # --- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, progress: bool = False, force: bool = False) -> "Service":
        """Load (or build) the index and serve it; `force` rebuilds it first even if it is current."""
        documents = load_corpus(settings.seeds_dir)
        model = resolve_model(settings.model)
        config = index_config(settings, documents, model)
        encoder_box: dict = {}
        loaded = ensure_index(settings, documents, config, encoder_box, progress=progress, force=force)
        built_with = encoder_box.get("encoder")  # loaded only if the index had to be built
        reference = built_with if getattr(built_with, "kind", "torch") == "torch" else None  # the ONNX check needs torch
        encoder = BatchingEncoder(query_encoder(settings.encoder, model, settings.encoder_dir, reference, settings.device,
                                              settings.query_precision))
        return cls(settings, model, make_retriever(settings, documents, loaded, encoder), built_with)

    @property
    def documents(self) -> dict[str, Document]:
        return self.retriever.documents

    def reload(self, force: bool = False, progress: bool = False) -> str:
        """Rebuild if needed (or if forced) and swap in the new index; returns the index id now served."""
        with self._reload_lock:
            documents = load_corpus(self.settings.seeds_dir)
            config = index_config(self.settings, documents, self.model)
            loaded = ensure_index(self.settings, documents, config, self._build_box, progress=progress, force=force)
            retriever = make_retriever(self.settings, documents, loaded, self.retriever.encoder)
            self.retriever = retriever  # one reference swap: queries in flight keep the old one
            return loaded.id

    # --- answering ---------------------------------------------------------------------

    def query(self, question: object, top_k: object = 5, mode: object = "hybrid", retriever: Retriever | None = None) -> QueryResult:
        """Answer from the current index, or from `retriever` (a caller that took `self.retriever` first,
        to render the result with that same version's documents even if a reload happens meanwhile)."""
        question = clean_question(question, self.settings.max_question_chars)
        check_params(top_k, mode, self.settings.max_top_k)
        return (retriever or self.retriever).search(question, top_k, mode)  # type: ignore[arg-type]

    def document(self, document_id: str) -> Document:
        try:
            return self.documents[document_id]
        except KeyError:
            raise NotFound(f"no document with id {document_id!r}") from None

    def passage(self, passage_id: str) -> PassageView:
        retriever = self.retriever
        position = retriever.position.get(passage_id)
        if position is None:
            raise NotFound(f"no passage with id {passage_id!r} in index {retriever.index.id}")
        passages = retriever.passages
        passage = passages[position]

        def neighbour(i: int) -> str | None:
            ok = 0 <= i < len(passages) and passages[i].document == passage.document
            return passages[i].id if ok else None

        document = retriever.documents[passage.document]
        model = retriever.index.manifest["model"]["name"]
        return PassageView(passage, document, neighbour(position - 1), neighbour(position + 1), retriever.index.id, model)

    def info(self) -> dict:
        index = self.retriever.index
        return {
            "index_id": index.id,
            "model": index.manifest["model"]["name"],
            "index_type": index.manifest["index_type"],
            "encoder": getattr(self.retriever.encoder, "kind", "torch"),
            "documents": len(self.documents),
            "passages": len(index.passages),
        }


def index_config(settings: Settings, documents: list[Document], model: ModelSpec) -> IndexConfig:
    chunker = ChunkerParams(max_tokens=settings.max_passage_tokens, min_chars=settings.min_passage_chars)
    return expected_config(documents, model, chunker, settings.index_type, settings.exact_search_max)


@contextmanager
def build_lock(index_dir: Path):
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_index(
    settings: Settings, documents: list[Document], config: IndexConfig, encoder_box: dict, progress: bool = False, force: bool = False
) -> LoadedIndex:
    """Load the index that matches `config`; build it first if missing, stale or corrupt (and allowed)."""
    expected = config.fingerprint()
    if not force:
        try:
            loaded = load_index(settings.index_dir, expected)
            remove_strays_if_idle(settings.index_dir)
            return loaded
        except IndexProblem as problem:
            if not settings.auto_build:
                raise IndexProblem(f"{problem}; refusing to serve it (run `rag index`, or set RAG_AUTO_BUILD=true)") from problem
            log.warning("%s; rebuilding", problem)
    with build_lock(settings.index_dir):
        if not force:  # another process may have built it while we waited for the lock
            try:
                return load_index(settings.index_dir, expected)
            except IndexProblem:
                pass
        encoder = encoder_box.get("encoder") or choose_build_encoder(settings, config.model)
        encoder_box["encoder"] = encoder
        try:
            build_index(settings.index_dir, documents, config, encoder, progress=progress)
        except OSError as exc:  # disk full, read-only, permissions: the previous index is untouched
            raise IndexProblem(f"cannot write the index to {settings.index_dir}: {exc.strerror or exc}") from exc
    return load_index(settings.index_dir, expected)


def remove_strays_if_idle(index_dir: Path) -> list[str]:
    """Remove leftovers of an interrupted build (`.tmp-` files, unnamed data files), unless a build is running.

    Takes the build lock without waiting: a build in progress owns its temp files.
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
    except OSError as exc:  # a read-only index directory is served as it is
        log.debug("could not clean %s: %s", index_dir, exc)
        return []
    if removed:
        log.warning("removed %d file(s) left by an interrupted build: %s", len(removed), ", ".join(sorted(removed)))
    return removed


def make_retriever(settings: Settings, documents: list[Document], loaded: LoadedIndex, encoder) -> Retriever:
    by_id = {d.id: d for d in documents}
    lexical = LexicalIndex([heading_text(by_id[p.document], p) for p in loaded.passages])
    threshold = settings.answerable_threshold if settings.answerable_threshold is not None else 0.5
    return Retriever(loaded, by_id, lexical, encoder, answerable_threshold=threshold)
