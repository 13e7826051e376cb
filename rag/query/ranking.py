"""Ranking: the candidate passages each signal proposes, and their fusion into one order.

Three modes over one index (rag.config.Mode): `dense` (cosine of the question embedding with passage
embeddings, FAISS), `lexical` (BM25, rag.index.lexical) and `hybrid` (default: the two fused).

Signals are put on one scale by z-scores over the candidate pool before they are added: dense = passage
cosine + best-sentence cosine, lexical = BM25, hybrid = dense + 0.75 x lexical. On the dev split this beat
RRF (R@1 0.83 vs 0.67) and either signal alone; see docs and the README's quality section.

Cost per query stays flat as the index grows: only the candidate pool (at most 2 x CANDIDATE_DEPTH
passages) is scored beyond the two first stages. Its passage vectors are read from the FAISS index itself
(`reconstruct_batch`, no second copy of every vector), its sentence vectors from the memory-mapped float16
array, and BM25's top candidates are selected with a partial sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.config import Mode
from rag.query.sentences import Sentences

CANDIDATE_DEPTH = 100  # passages each signal proposes before fusion
EXACT_FILTERED_MAX = 20_000  # a filter allowing at most this many passages is searched exactly
LEXICAL_WEIGHT = 0.75  # BM25's weight against the two dense signals in hybrid (chosen on the dev split)


@dataclass(frozen=True)
class Ranking:
    pool: np.ndarray  # candidate passage positions
    scores: np.ndarray  # fused score of each pooled passage
    order: np.ndarray  # positions into `pool`, best first

    def top(self, k: int) -> list[tuple[int, float]]:
        """(passage position, fused score) of the best `k`."""
        return [(int(self.pool[j]), float(self.scores[j])) for j in self.order[:k]]


class Ranker:
    def __init__(self, loaded_index, lexical, sentences: Sentences):
        self.vectors = loaded_index.vectors  # the FAISS index
        self.lexical = lexical
        self.sentences = sentences
        self.depth = min(len(loaded_index.passages), CANDIDATE_DEPTH)

    def rank(self, question: str, query: np.ndarray, mode: Mode, allowed: np.ndarray | None, lap) -> Ranking:
        """Candidates from each signal the mode uses (within `allowed`), fused; `lap(stage)` times each stage."""
        candidates: dict[str, np.ndarray] = {}
        if mode != Mode.LEXICAL:
            candidates["dense"] = self.dense_candidates(query, allowed)
        lap("dense")
        if mode != Mode.DENSE:
            lexical_scores = self.lexical.scores(question)
            if allowed is not None:
                lexical_scores = np.where(allowed, lexical_scores, 0.0).astype(np.float32)
            top = top_indices(lexical_scores, self.depth)
            candidates["lexical"] = top[lexical_scores[top] > 0]
            lap("lexical")
        pool = np.unique(np.concatenate(list(candidates.values()))).astype(np.int64) if candidates else np.array([], dtype=np.int64)
        passage_cos = self.passage_vectors(pool) @ query
        sentence_cos = self.sentences.best_per_passage(pool, query)
        scores = np.zeros(len(pool), dtype=np.float32)
        if mode != Mode.LEXICAL:
            scores += zscore(passage_cos) + zscore(sentence_cos)
        if mode != Mode.DENSE:
            weight = 1.0 if mode == Mode.LEXICAL else LEXICAL_WEIGHT
            scores += weight * zscore(lexical_scores[pool])
        order = np.argsort(-scores, kind="stable")
        lap("fusion")
        return Ranking(pool, scores, order)

    def dense_candidates(self, query: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        """The `depth` passages nearest the question, among the allowed ones when a filter is given."""
        single_threaded_faiss()
        if allowed is None:
            _, ids = self.vectors.search(query[None, :], self.depth)
            return ids[0][ids[0] >= 0]
        allowed_ids = np.flatnonzero(allowed).astype(np.int64)
        if len(allowed_ids) <= EXACT_FILTERED_MAX:  # few enough to score exactly: no recall lost to the ANN graph
            scores = np.einsum("ij,j->i", self.passage_vectors(allowed_ids), query)
            return allowed_ids[top_indices(scores, self.depth)]
        import faiss

        selector = faiss.IDSelectorBatch(allowed_ids)
        inner = faiss.downcast_index(self.vectors)
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=inner.hnsw.efSearch)
        elif isinstance(inner, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        _, ids = self.vectors.search(query[None, :], self.depth, params=params)
        return ids[0][ids[0] >= 0]

    def passage_vectors(self, pool: np.ndarray) -> np.ndarray:
        """The stored vectors of the pooled passages, read from the FAISS index (flat, HNSW or IVF with its direct map)."""
        if not len(pool):
            return np.zeros((0, self.vectors.d), dtype=np.float32)
        return self.vectors.reconstruct_batch(pool)


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


def zscore(values: np.ndarray) -> np.ndarray:
    """Scores on a common scale (mean 0, unit spread) so signals of different units can be added."""
    if len(values) < 2:
        return np.zeros(len(values), dtype=np.float32)
    spread = float(values.std())
    return ((values - values.mean()) / spread).astype(np.float32) if spread > 0 else np.zeros(len(values), dtype=np.float32)
