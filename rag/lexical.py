"""Lexical retrieval: BM25 over passages, with English stemming and stop words.

Built from the passages at load time (bm25s indexes thousands of passages in
milliseconds), so the index on disk holds no second, derived copy that could
drift from the passages. What is indexed is the same context-prefixed text the
dense side embeds (title and section, then the passage).
"""

from __future__ import annotations

import logging

import bm25s
import numpy as np
import Stemmer

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


class LexicalIndex:
    def __init__(self, texts: list[str]):
        self._stemmer = Stemmer.Stemmer("english")
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)
        self._bm25 = bm25s.BM25()
        self._bm25.index(tokens, show_progress=False)
        self.size = len(texts)

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for `question` (zeros when it shares no term)."""
        terms = bm25s.tokenize([question], stopwords="en", stemmer=self._stemmer, show_progress=False, return_ids=False)[0]
        if not terms:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)
