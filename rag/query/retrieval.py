"""Retrieval: from a question to ranked, highlighted passages.

Three modes over one index:
- `dense`: cosine similarity of the question embedding with passage embeddings (FAISS);
- `lexical`: BM25 (see rag.index.lexical);
- `hybrid` (default): the two fused (below).

Each returned passage carries the sentence that best answers the question
(`highlight`, and `highlights` when the evidence spans two sentences; see
rag.query.highlight), and the result says whether the corpus seems to hold an answer
(`verdict`, `answerable`, `confidence`; see rag.query.verdict).

Signals are put on one scale by z-scores over the candidate pool before they
are added: dense = passage cosine + best-sentence cosine, lexical = BM25,
hybrid = dense + 0.75 x lexical. On the dev split this beat RRF (R@1 0.83 vs
0.67) and either signal alone; see the README's Retrieval quality section.
Results are small frozen dataclasses carrying the snapshot they were computed on
(rag.service.Snapshot); the HTTP, MCP and CLI layers render them from it.

Cost per query stays flat as the index grows (a million passages: README,
Performance): only the candidate pool (at most 2 x CANDIDATE_DEPTH passages)
is scored beyond the two first stages. Its passage vectors are read from the
FAISS index itself (`reconstruct_batch`, no second copy of every vector), its
sentence vectors from the memory-mapped float16 array, BM25's top candidates
are selected with a partial sort, and term sets are computed for the passages
and sentences a query touches, kept in a bounded cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from rag.query import highlight as highlighting
from rag.query import verdict as verdicts
from rag.corpus.chunking import Passage
from rag.encoding.base import QuestionEmbedding
from rag.query.request import Mode, Query

CANDIDATE_DEPTH = 100  # passages each signal proposes before fusion
EXACT_FILTERED_MAX = 20_000  # a filter allowing at most this many passages is searched exactly
LEXICAL_WEIGHT = 0.75  # BM25's weight against the two dense signals in hybrid (chosen on the dev split)
TERM_CACHE_SIZE = 65_536  # term sets kept per kind (passages, sentences): the pools of recent queries
# float16 -> float32 by table (exact; twice as fast as numpy's cast, which is not vectorised here)
FLOAT16_TO_FLOAT32 = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


@dataclass(frozen=True)
class Highlight:
    text: str
    start: int  # offsets into the document text, like the passage's
    end: int


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    rank: int
    highlight: Highlight  # the sentence that best answers the question (rag.query.highlight)
    highlights: tuple[Highlight, ...] = ()  # every sentence to mark, in text order: the best, and its neighbour when the evidence spans both


@dataclass(frozen=True)
class QueryResult:
    question: str
    mode: Mode
    answerable: bool
    confidence: float  # probability that the documents hold an answer (rag.query.answerable)
    hits: list[Hit]
    index_id: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    snapshot: object = field(default=None, repr=False, compare=False)  # rag.service.Snapshot the hits come from
    verdict: verdicts.Verdict = "not_found"  # found / uncertain / not_found (rag.query.verdict); answerable = not not_found
    features: verdicts.VerdictFeatures | None = None  # what the verdict was decided from, kept for calibration


class Retriever:
    def __init__(self, loaded_index, documents: dict, lexical, encoder, answerable_threshold: float = verdicts.ANSWERABLE_THRESHOLD):
        self.index = loaded_index
        self.documents = documents  # id -> Document: the version this index was built from
        self.passages: list[Passage] = loaded_index.passages
        self.lexical = lexical
        self.encoder = encoder
        self.answerable_threshold = answerable_threshold
        self.verdict_model = verdicts.MODEL
        self.position = {p.id: i for i, p in enumerate(self.passages)}
        self.depth = min(len(self.passages), CANDIDATE_DEPTH)
        self.sentence_terms = LazyTerms(self._sentence_text, lexical.terms)  # by sentence row, like sentence_vectors
        self.passage_terms = LazyTerms(lambda i: self.passages[i].text, lexical.terms)
        # rarity of each term over the passages' own text, for the verdict (counted once, not kept per passage)
        self.idf = verdicts.idf_table((lexical.terms(p.text) for p in self.passages), len(self.passages))
        self.unseen_idf = verdicts.unseen_idf(len(self.passages))

    def search(self, query: Query, snapshot=None, allowed: np.ndarray | None = None) -> QueryResult:
        """Rank passages for a parsed query (rag.query.request); the result carries `snapshot`.

        `allowed` (one bool per passage, rag.query.filters.passage_mask) restricts every stage to those passages."""
        question, top_k, mode = query.question, query.top_k, query.mode
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 3)
            clock = now

        embedded = self.encoder.embed_question(question)
        query = embedded.vector
        lap("embed")
        candidates: dict[str, np.ndarray] = {}
        if mode != "lexical":
            candidates["dense"] = self._dense_candidates(query, allowed)
        lap("dense")
        if mode != "dense":
            lexical_scores = self.lexical.scores(question)
            if allowed is not None:
                lexical_scores = np.where(allowed, lexical_scores, 0.0).astype(np.float32)
            top = top_indices(lexical_scores, self.depth)
            candidates["lexical"] = top[lexical_scores[top] > 0]
            lap("lexical")
        pool = np.unique(np.concatenate(list(candidates.values()))).astype(np.int64) if candidates else np.array([], dtype=np.int64)
        passage_cos = self._passage_vectors(pool) @ query
        sentence_cos = self._sentence_max(pool, query)
        scores = np.zeros(len(pool), dtype=np.float32)
        if mode != "lexical":
            scores += zscore(passage_cos) + zscore(sentence_cos)
        if mode != "dense":
            weight = 1.0 if mode == "lexical" else LEXICAL_WEIGHT
            scores += weight * zscore(lexical_scores[pool])
        order = np.argsort(-scores, kind="stable")
        lap("fusion")
        question_terms = self.lexical.terms(question)
        hits = [
            Hit(self.passages[int(pool[j])], round(float(scores[j]), 6), rank, *self._highlight(int(pool[j]), query, question, question_terms))
            for rank, j in enumerate(order[:top_k], start=1)
        ]
        lap("highlight")
        top_three = [int(pool[j]) for j in order[:3]]
        assessment = self._assess(question, question_terms, embedded, top_three)
        lap("verdict")
        return QueryResult(
            question=question,
            mode=mode,
            answerable=assessment.answerable,
            confidence=assessment.confidence,
            hits=hits,
            index_id=self.index.id,
            timings_ms=timings,
            verdict=assessment.verdict,
            features=assessment.features,
            snapshot=snapshot,
        )

    def _dense_candidates(self, query: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        """The `depth` passages nearest the question, among the allowed ones when a filter is given."""
        vectors = self.index.vectors
        single_threaded_faiss()
        if allowed is None:
            _, ids = vectors.search(query[None, :], self.depth)
            return ids[0][ids[0] >= 0]
        allowed_ids = np.flatnonzero(allowed).astype(np.int64)
        if len(allowed_ids) <= EXACT_FILTERED_MAX:  # few enough to score exactly: no recall lost to the ANN graph
            scores = np.einsum("ij,j->i", self._passage_vectors(allowed_ids), query)
            return allowed_ids[top_indices(scores, self.depth)]
        import faiss

        selector = faiss.IDSelectorBatch(allowed_ids)
        inner = faiss.downcast_index(vectors)
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=inner.hnsw.efSearch)
        elif isinstance(inner, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        _, ids = vectors.search(query[None, :], self.depth, params=params)
        return ids[0][ids[0] >= 0]

    def _assess(self, question: str, question_terms: set[str], embedded: QuestionEmbedding, top: list[int]) -> verdicts.Assessment:
        """The verdict (rag.query.verdict) from the top passages' sentences and the question's word pieces."""
        rows, texts = [], []
        for i in top:
            rows.extend(range(self.index.sentence_rows[i][0], sum(self.index.sentence_rows[i])))
            texts.extend(self._sentence_texts(i))
        vectors = np.asarray(self.index.sentence_vectors[rows], dtype=np.float32)
        cosines = vectors @ embedded.vector
        sentences = [verdicts.Sentence(t, self.sentence_terms[r], float(c)) for t, r, c in zip(texts, rows, cosines)]
        masked_vector = None
        if embedded.tokens is not None:  # the masked question pooled from the question's own word pieces
            model, best = self.verdict_model, verdicts.RELATION_BEST
            if rows:
                kept = verdicts.kept_spans(question, self.sentence_terms[rows[int(np.argmax(cosines))]], self.lexical.terms)
                masked_vector = verdicts.masked_vector(embedded.tokens, embedded.spans, kept) if kept else None
        else:  # an encoder without word pieces: embed the masked text, judged by the model fitted that way
            model, best = verdicts.MODEL_REEMBEDDED, verdicts.RELATION_BEST_REEMBEDDED
            if rows:
                masked = verdicts.masked_question(question, self.sentence_terms[rows[int(np.argmax(cosines))]], self.lexical.terms)
                masked_vector = self.encoder.encode([masked])[0] if masked else None
        relation = verdicts.relation_cos(masked_vector, vectors, best) if masked_vector is not None else float(cosines.max(initial=0.0))
        features = verdicts.features(question, question_terms, sentences, self.idf, self.unseen_idf, relation)
        return verdicts.assess(features, model, self.answerable_threshold, verdicts.FOUND_THRESHOLD)

    def _passage_vectors(self, pool: np.ndarray) -> np.ndarray:
        """The stored vectors of the pooled passages, read from the FAISS index (flat, HNSW or IVF with its direct map)."""
        if not len(pool):
            return np.zeros((0, self.index.vectors.d), dtype=np.float32)
        return self.index.vectors.reconstruct_batch(pool)

    def _sentence_max(self, pool: np.ndarray, query: np.ndarray) -> np.ndarray:
        """For each pooled passage, the best cosine between the question and one of its sentences (-1 if it has none)."""
        firsts, counts = self.index.sentence_rows[pool].T if len(pool) else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        best = np.full(len(pool), -1.0, dtype=np.float32)
        has = counts > 0
        if not has.any():
            return best
        firsts, counts = firsts[has], counts[has]
        starts = np.cumsum(counts) - counts  # where each passage's rows begin in the gathered block
        rows = np.repeat(firsts - starts, counts) + np.arange(int(counts.sum()))
        block = np.asarray(self.index.sentence_vectors[rows])
        block = FLOAT16_TO_FLOAT32.take(block.view(np.uint16)) if block.dtype == np.float16 else block.astype(np.float32, copy=False)
        # einsum, not `@`: a block this size makes OpenBLAS wake its threads, which on a busy 2-core machine
        # cost ~20 ms a call instead of ~0.1 ms
        best[has] = np.maximum.reduceat(np.einsum("ij,j->i", block, query), starts)
        return best

    def _sentence_text(self, row: int) -> str:
        """The text of the sentence stored at `row` of the sentence vectors."""
        passage_index = int(np.searchsorted(self.index.sentence_rows[:, 0], row, side="right")) - 1
        while self.index.sentence_rows[passage_index, 1] == 0:  # passages without sentences share their first row
            passage_index -= 1
        return self._sentence_texts(passage_index)[row - int(self.index.sentence_rows[passage_index, 0])]

    def _sentence_texts(self, passage_index: int) -> list[str]:
        """The texts of the passage's sentences, in order (the rows `sentence_rows[passage_index]` names)."""
        p = self.passages[passage_index]
        return [p.text[s - p.start : e - p.start] for s, e in p.sentences]

    def _highlight(self, passage_index: int, query: np.ndarray, question: str, question_terms: set[str]) -> tuple[Highlight, tuple[Highlight, ...]]:
        """The passage's sentence that answers the question, and the sentences to mark (rag.query.highlight)."""
        first, count = self.index.sentence_rows[passage_index]
        passage = self.passages[passage_index]
        cosines = np.asarray(self.index.sentence_vectors[first : first + count], dtype=np.float32) @ query
        texts = self._sentence_texts(passage_index)
        candidates = [
            highlighting.Candidate(
                texts[k], start, end, float(cosines[k]),
                verdicts.coverage(question_terms, self.sentence_terms[first + k], self.idf, self.unseen_idf),
                highlighting.holds_answer_type(question, texts[k]),
                highlighting.gives_asked_name(question, texts[k]),
            )
            for k, (start, end) in enumerate(passage.sentences)
        ]
        best, marked = highlighting.choose(candidates)
        spans = {k: Highlight(candidates[k].text, candidates[k].start, candidates[k].end) for k in marked}
        return spans[best], tuple(spans[k] for k in marked)


def single_threaded_faiss() -> None:
    """One OpenMP thread for FAISS calls made from this thread (an OpenMP setting is per thread; builds elsewhere
    keep theirs). A single question gains nothing from FAISS's threads, and on a busy 2-core machine waking
    them took 80 ms a search at 10k passages instead of 1 ms (eval/bench_querypath.py)."""
    import faiss

    faiss.omp_set_num_threads(1)


class LazyTerms:
    """Term sets by position, computed on first use and kept in a bounded, thread-safe cache.

    Indexes like the list of every term set it replaces (`terms[i]`), without tokenizing the whole
    index at load: at a million passages that took minutes and gigabytes."""

    def __init__(self, text_of: Callable[[int], str], terms: Callable[[str], set[str]], size: int = TERM_CACHE_SIZE):
        self._terms_at = lru_cache(maxsize=size)(lambda i: frozenset(terms(text_of(i))))

    def __getitem__(self, i: int) -> frozenset[str]:
        return self._terms_at(int(i))


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
