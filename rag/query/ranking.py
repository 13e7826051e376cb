"""Ranking: the candidate passages each signal proposes, and their fusion into one order.

Three modes over one index (rag.config.Mode): `dense` (cosine of the question embedding with passage
embeddings, FAISS), `lexical` (BM25, rag.index.lexical) and `hybrid` (default: the two fused).

Signals are put on one scale by z-scores over the candidate pool before they are added: dense = passage
cosine + best-sentence cosine, lexical = BM25, hybrid = dense + 0.75 x lexical. On the dev split this beat
RRF (R@1 0.83 vs 0.67) and either signal alone; see docs and the README's quality section.

Cost per query stays flat as the index grows: only the candidate pool (at most 2 x CANDIDATE_DEPTH
passages) is scored beyond the two first stages. The candidates and the pool's passage vectors and BM25
scores come from the snapshot's store (rag.index.vector_store: FAISS + bm25s in the process by default,
or an engine); its sentence vectors from the memory-mapped float16 array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.config import Mode
from rag.index.vector_store import EXACT_FILTERED_MAX, VectorStore, single_threaded_faiss, top_indices  # noqa: F401 (re-exported)
from rag.query.sentences import Sentences

CANDIDATE_DEPTH = 100  # passages each signal proposes before fusion
LEXICAL_WEIGHT = 0.75  # BM25's weight against the two dense signals in hybrid (chosen on the dev split)


@dataclass(frozen=True)
class Ranking:
    pool: np.ndarray  # candidate passage positions
    scores: np.ndarray  # fused score of each pooled passage
    order: np.ndarray  # positions into `pool`, best first
    passage_cos: np.ndarray  # each pooled passage's cosine with the question (its stored vector: title, heading and text)

    def top(self, k: int) -> list[tuple[int, float]]:
        """(passage position, fused score) of the best `k`."""
        return [(int(self.pool[j]), float(self.scores[j])) for j in self.order[:k]]

    def top_cosines(self, k: int) -> list[float]:
        """The passage cosines of the best `k`, in the order of `top`."""
        return [float(self.passage_cos[j]) for j in self.order[:k]]


class Ranker:
    def __init__(self, store: VectorStore, sentences: Sentences, passages: int):
        self.store = store  # where the passage vectors and BM25 live (rag.index.vector_store)
        self.sentences = sentences
        self.depth = min(passages, CANDIDATE_DEPTH)

    def rank(self, question: str, query: np.ndarray, mode: Mode, allowed: np.ndarray | None, lap) -> Ranking:
        """Candidates from each signal the mode uses (within `allowed`), fused; `lap(stage)` times each stage."""
        candidates: dict[str, np.ndarray] = {}
        dense = lexical = None
        if mode != Mode.LEXICAL:
            dense = self.store.dense_search(query, self.depth, allowed)
            candidates["dense"] = dense.positions
        lap("dense")
        if mode != Mode.DENSE:
            lexical = self.store.lexical_search(question, self.depth, allowed)
            candidates["lexical"] = lexical.positions
            lap("lexical")
        pool = np.unique(np.concatenate(list(candidates.values()))).astype(np.int64) if candidates else np.array([], dtype=np.int64)
        passage_cos = self.store.passage_vectors(pool, dense) @ query
        sentence_cos = self.sentences.best_per_passage(pool, query)
        scores = np.zeros(len(pool), dtype=np.float32)
        if mode != Mode.LEXICAL:
            scores += zscore(passage_cos) + zscore(sentence_cos)
        if mode != Mode.DENSE:
            weight = 1.0 if mode == Mode.LEXICAL else LEXICAL_WEIGHT
            scores += weight * zscore(lexical.scores_of(pool))
        order = np.argsort(-scores, kind="stable")
        lap("fusion")
        return Ranking(pool, scores, order, passage_cos)

    def passage_vectors(self, pool: np.ndarray) -> np.ndarray:
        """The stored vectors of the pooled passages (fetched from the store by position)."""
        return self.store.passage_vectors(pool)


def zscore(values: np.ndarray) -> np.ndarray:
    """Scores on a common scale (mean 0, unit spread) so signals of different units can be added."""
    if len(values) < 2:
        return np.zeros(len(values), dtype=np.float32)
    spread = float(values.std())
    return ((values - values.mean()) / spread).astype(np.float32) if spread > 0 else np.zeros(len(values), dtype=np.float32)
