"""The sentences of one snapshot's passages, as the highlight and the verdict read them.

Sentence vectors are stored once, at index time, in one (memory-mapped, float16) array; `sentence_rows[i]`
gives passage i's first row and count. This class answers "which rows, which texts, which vectors, which
terms" for a passage or a row, with each row's term set computed on first use and kept in a bounded cache
(at a million passages, tokenizing every sentence at load took minutes and gigabytes).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from rag.corpus.passage_text import row_headers

TERM_CACHE_SIZE = 65_536  # term sets kept: the pools of recent queries
# float16 -> float32 by table (exact; twice as fast as numpy's cast, which is not vectorised here)
FLOAT16_TO_FLOAT32 = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


class Sentences:
    def __init__(self, loaded_index, terms: Callable[[str], set[str]]):
        self.passages = loaded_index.passages
        self.rows = loaded_index.sentence_rows  # (passages, 2): first row, count
        self.vectors = loaded_index.sentence_vectors  # (sentences, dim), float16 or float32
        self.terms = LazyTerms(self.text, terms)  # by sentence row, like the vectors
        # each sentence's table header or None (rag.corpus.passage_text.row_headers), read by the highlight and the
        # verdict for the same top passages: worked out once per passage
        self.headers_of = lru_cache(maxsize=TERM_CACHE_SIZE)(lambda passage_index: tuple(row_headers(self.passages[passage_index])))

    def rows_of(self, passage_index: int) -> range:
        first, count = self.rows[passage_index]
        return range(int(first), int(first) + int(count))

    def texts_of(self, passage_index: int) -> list[str]:
        """The texts of the passage's sentences, in order (the rows `rows_of(passage_index)` names)."""
        return self.passages[passage_index].written_sentences()

    def text(self, row: int) -> str:
        """The text of the sentence stored at `row`."""
        passage_index = int(np.searchsorted(self.rows[:, 0], row, side="right")) - 1
        while self.rows[passage_index, 1] == 0:  # passages without sentences share their first row
            passage_index -= 1
        return self.texts_of(passage_index)[row - int(self.rows[passage_index, 0])]

    def cosines(self, rows, query: np.ndarray) -> np.ndarray:
        """Cosine of the question with each of `rows` (a range or a list of rows)."""
        if isinstance(rows, range):
            block = self.vectors[rows.start : rows.stop]
        else:
            block = self.vectors[list(rows)]
        return np.asarray(block, dtype=np.float32) @ query

    def best_per_passage(self, pool: np.ndarray, query: np.ndarray) -> np.ndarray:
        """For each pooled passage, the best cosine between the question and one of its sentences (-1 if none)."""
        firsts, counts = self.rows[pool].T if len(pool) else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        best = np.full(len(pool), -1.0, dtype=np.float32)
        has = counts > 0
        if not has.any():
            return best
        firsts, counts = firsts[has], counts[has]
        starts = np.cumsum(counts) - counts  # where each passage's rows begin in the gathered block
        rows = np.repeat(firsts - starts, counts) + np.arange(int(counts.sum()))
        block = np.asarray(self.vectors[rows])
        block = FLOAT16_TO_FLOAT32.take(block.view(np.uint16)) if block.dtype == np.float16 else block.astype(np.float32, copy=False)
        # einsum, not `@`: a block this size makes OpenBLAS wake its threads, which on a busy 2-core machine
        # cost ~20 ms a call instead of ~0.1 ms
        best[has] = np.maximum.reduceat(np.einsum("ij,j->i", block, query), starts)
        return best


class LazyTerms:
    """Term sets by position, computed on first use and kept in a bounded, thread-safe cache.

    Indexes like the list of every term set it replaces (`terms[i]`), without tokenizing the whole
    index at load."""

    def __init__(self, text_of: Callable[[int], str], terms: Callable[[str], set[str]], size: int = TERM_CACHE_SIZE):
        self._terms_at = lru_cache(maxsize=size)(lambda i: frozenset(terms(text_of(i))))

    def __getitem__(self, i: int) -> frozenset[str]:
        return self._terms_at(int(i))

    @property
    def computed(self) -> int:
        """How many term sets are held now (what the queries so far touched, up to the cache size)."""
        return self._terms_at.cache_info().currsize
