"""The store seam: what the retriever needs of the place its passage vectors and lexical index live.

A snapshot's retriever (rag.query.ranking) asks a store four things, every one in passage positions (the
order of the snapshot's passages file), so nothing above the store knows where the vectors are:
- `dense_search(query, k, allowed)`: the `k` passages nearest the question vector, within `allowed`;
- `lexical_search(question, k, allowed)`: BM25's best `k` passages within `allowed`, and BM25 of any others;
- `passage_vectors(positions, known)`: the stored vectors of those passages (fetch by id);
- `kind`: which store it is (`faiss`, `qdrant`; an engine's index also says `index_type: qdrant` in /ready).
`allowed` is one bool per passage (rag.query.filters.passage_mask) or None for no filter.

The write side (add and remove passages with their vectors and lexical text) is the build's: the default
store writes one FAISS file per build (rag.index.ann, rag.index.store), an engine store upserts the
passages it lacks and removes the ones no build names (rag.index.qdrant_store). `RAG_VECTOR_STORE`
chooses (`faiss` by default; `qdrant`), `RAG_VECTOR_STORE_URI` says where the engine is.

`FaissBm25Store` is the default: FAISS inner product in the process (exact search over a filter's passages
when at most EXACT_FILTERED_MAX are allowed, else an id selector on the ANN index) and bm25s's scores over
every passage. It is the code the ranker ran before the seam, moved here unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

EXACT_FILTERED_MAX = 20_000  # a filter allowing at most this many passages is searched exactly


@dataclass(frozen=True)
class DenseHits:
    positions: np.ndarray  # passage positions, nearest first
    vectors: dict[int, np.ndarray] | None = None  # position -> stored vector, when the search returned them


class LexicalHits:
    """BM25's candidates (score > 0, best first) and a way to score any pooled passage."""

    def __init__(self, positions: np.ndarray, all_scores: np.ndarray | None = None, scorer=None):
        self.positions = positions
        self._all = all_scores  # one score per passage (the default store computes them all anyway)
        self._scorer = scorer  # else: positions -> scores, asked of the store

    def scores_of(self, pool: np.ndarray) -> np.ndarray:
        if self._all is not None:
            return self._all[pool]
        return self._scorer(pool)


class VectorStore(Protocol):
    kind: str

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> DenseHits: ...

    def lexical_search(self, question: str, k: int, allowed: np.ndarray | None) -> LexicalHits: ...

    def passage_vectors(self, positions: np.ndarray, known: DenseHits | None = None) -> np.ndarray: ...


class FaissBm25Store:
    """The default store: a FAISS index and bm25s, both in this process (built from the index files)."""

    kind = "faiss"

    def __init__(self, vectors, lexical):
        self.vectors = vectors  # a faiss.Index
        self.lexical = lexical  # rag.index.lexical.LexicalIndex

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> DenseHits:
        """The `k` passages nearest the question, among the allowed ones when a filter is given."""
        single_threaded_faiss()
        if allowed is None:
            _, ids = self.vectors.search(query[None, :], k)
            return DenseHits(ids[0][ids[0] >= 0])
        allowed_ids = np.flatnonzero(allowed).astype(np.int64)
        if len(allowed_ids) <= EXACT_FILTERED_MAX:  # few enough to score exactly: no recall lost to the ANN graph
            scores = np.einsum("ij,j->i", self.passage_vectors(allowed_ids), query)
            return DenseHits(allowed_ids[top_indices(scores, k)])
        import faiss

        selector = faiss.IDSelectorBatch(allowed_ids)
        inner = faiss.downcast_index(self.vectors)
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=inner.hnsw.efSearch)
        elif isinstance(inner, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        _, ids = self.vectors.search(query[None, :], k, params=params)
        return DenseHits(ids[0][ids[0] >= 0])

    def lexical_search(self, question: str, k: int, allowed: np.ndarray | None) -> LexicalHits:
        scores = self.lexical.scores(question)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0).astype(np.float32)
        top = top_indices(scores, k)
        return LexicalHits(top[scores[top] > 0], all_scores=scores)

    def passage_vectors(self, positions: np.ndarray, known: DenseHits | None = None) -> np.ndarray:
        """The stored vectors of these passages, read from the FAISS index (flat, HNSW or IVF with its direct map)."""
        if not len(positions):
            return np.zeros((0, self.vectors.d), dtype=np.float32)
        return self.vectors.reconstruct_batch(positions)


def single_threaded_faiss() -> None:
    """One OpenMP thread for FAISS calls made from this thread (an OpenMP setting is per thread; builds elsewhere
    keep theirs). A single question gains nothing from FAISS's threads, and on a busy 2-core machine waking
    them took 80 ms a search at 10k passages instead of 1 ms (eval/bench_querypath.py)."""
    import faiss

    faiss.omp_set_num_threads(1)


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` highest scores, ties broken by position (as a stable full sort would), in O(n)."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")[:k]
    if k <= 0:
        return np.array([], dtype=np.int64)
    kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
    above = np.flatnonzero(scores > kth)
    chosen = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    return chosen[np.argsort(-scores[chosen], kind="stable")]
