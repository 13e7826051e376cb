"""Retrieval: from a question to ranked, highlighted passages.

Three modes over one index:
- `dense`: cosine similarity of the question embedding with passage embeddings (FAISS);
- `lexical`: BM25 (see rag.lexical);
- `hybrid` (default): reciprocal rank fusion (RRF, k=60) of the dense and lexical
  rankings, which needs no score calibration between the two.

Each returned passage carries the sentence that best answers the question
(`highlight`: highest cosine between the question and the sentence embeddings
computed at index time), and the result says whether the corpus seems to hold
an answer at all (`answerable`: the best dense cosine against a threshold).
Results are small frozen dataclasses; the HTTP and MCP layers serialise them.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from rag.chunking import Passage
from rag.errors import InvalidInput

MODES = ("hybrid", "dense", "lexical")
RRF_K = 60
DEFAULT_ANSWERABLE_THRESHOLD = 0.35


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
    highlight: Highlight


@dataclass(frozen=True)
class QueryResult:
    question: str
    mode: str
    answerable: bool
    confidence: float  # best cosine between the question and any passage or sentence
    hits: list[Hit]
    index_id: str
    timings_ms: dict[str, float] = field(default_factory=dict)


def clean_question(question: object, max_chars: int) -> str:
    """The question with surrounding whitespace removed, or InvalidInput saying what is wrong."""
    if not isinstance(question, str):
        raise InvalidInput("question must be a string")
    question = question.strip()
    if not question:
        raise InvalidInput("question is empty")
    if len(question) > max_chars:
        raise InvalidInput(f"question is {len(question)} characters long; the limit is {max_chars}")
    for ch in question:
        category = unicodedata.category(ch)
        if category == "Cs":
            raise InvalidInput("question contains an unpaired surrogate (invalid Unicode)")
        if category == "Cc" and ch not in "\t\n\r":
            raise InvalidInput(f"question contains the control character U+{ord(ch):04X}")
    return question


def check_params(top_k: object, mode: object, max_top_k: int) -> None:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= max_top_k:
        raise InvalidInput(f"top_k must be an integer from 1 to {max_top_k}")
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}; got {mode!r}")


def rrf(rankings: list[list[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) to every item it ranks (rank from 1)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


class Retriever:
    def __init__(self, loaded_index, documents: dict, lexical, encoder, answerable_threshold: float = DEFAULT_ANSWERABLE_THRESHOLD):
        self.index = loaded_index
        self.documents = documents  # id -> Document: the version this index was built from
        self.passages: list[Passage] = loaded_index.passages
        self.lexical = lexical
        self.encoder = encoder
        self.answerable_threshold = answerable_threshold
        self.position = {p.id: i for i, p in enumerate(self.passages)}
        self.depth = min(len(self.passages), 100)

    def search(self, question: str, top_k: int = 5, mode: str = "hybrid") -> QueryResult:
        """Rank passages for an already-cleaned question (see `clean_question`)."""
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 3)
            clock = now

        query = self.encoder.encode([question])[0]
        lap("embed")
        dense_scores, dense_ids = self.index.vectors.search(query[None, :], self.depth)
        dense_ranking = [int(i) for i in dense_ids[0] if i >= 0]
        lap("dense")
        scored: list[tuple[int, float]]
        if mode == "dense":
            scored = list(zip(dense_ranking, map(float, dense_scores[0])))
        else:
            lexical_scores = self.lexical.scores(question)
            lexical_ranking = [int(i) for i in np.argsort(-lexical_scores, kind="stable")[: self.depth] if lexical_scores[i] > 0]
            lap("lexical")
            if mode == "lexical":
                scored = [(i, float(lexical_scores[i])) for i in lexical_ranking]
            else:
                fused = rrf([dense_ranking, lexical_ranking])
                scored = sorted(fused.items(), key=lambda item: -item[1])
            lap("fusion")
        hits = [
            Hit(self.passages[i], round(score, 6), rank, self._highlight(i, query))
            for rank, (i, score) in enumerate(scored[:top_k], start=1)
        ]
        lap("highlight")
        confidence = float(dense_scores[0][0]) if len(dense_ranking) else 0.0
        return QueryResult(
            question=question,
            mode=mode,
            answerable=confidence >= self.answerable_threshold,
            confidence=round(confidence, 6),
            hits=hits,
            index_id=self.index.id,
            timings_ms=timings,
        )

    def _highlight(self, passage_index: int, query: np.ndarray) -> Highlight:
        first, count = self.index.sentence_rows[passage_index]
        passage = self.passages[passage_index]
        similarities = self.index.sentence_vectors[first : first + count] @ query
        start, end = passage.sentences[int(np.argmax(similarities))]
        return Highlight(passage.text[start - passage.start : end - passage.start], start, end)
