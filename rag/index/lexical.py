"""Lexical retrieval: BM25 over passages, with English stemming and stop words.

Built from the passages at load time (bm25s indexes thousands of passages in
milliseconds), so the index on disk holds no second, derived copy that could
drift from the passages. What is indexed is the passage under its title and
section (rag.corpus.passage_text.heading_text). English stop words and question words are
dropped; terms are Snowball-stemmed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


# Words that shape a question but never name its subject: as query terms they only
# pull in passages that happen to ask a question themselves ("Why was ...").
QUESTION_WORDS = ("why", "how", "what", "when", "who", "whom", "whose", "which", "where", "did", "does", "do")
STOPWORDS = sorted(set(STOPWORDS_EN) | set(QUESTION_WORDS))
STEMMER = "english"
STOPWORD_SET = frozenset(STOPWORDS)
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s.tokenize's default token pattern
BM25 = {"k1": 1.5, "b": 0.75, "method": "lucene"}  # bm25s defaults, recorded so a change shows


def lexical_fingerprint() -> dict:
    """What shapes BM25 (recorded in the index manifest: a change makes the index stale)."""
    words = hashlib.sha256("\n".join(STOPWORDS).encode()).hexdigest()[:16]
    return {"stemmer": STEMMER, "stopwords_sha256": words, "question_words": list(QUESTION_WORDS), "bm25": BM25}


def tokens(texts: list[str]) -> list[list[str]]:
    """Each text's terms in order, repeats kept, exactly as bm25s indexes and queries them (lower case, its token
    pattern, stop words dropped, Snowball-stemmed): what an engine store turns into BM25 sparse vectors."""
    return bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=Stemmer.Stemmer(STEMMER), show_progress=False, return_ids=False)


class LexicalIndex:
    def __init__(self, texts: list[str], index: bool = True):
        """BM25 over `texts`; with index=False only the tokenizer (`terms`), for a store that keeps BM25 itself."""
        self._stemmer = Stemmer.Stemmer(STEMMER)
        self._local = threading.local()
        self.size = len(texts)
        self._bm25 = None
        if index:
            tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=self._stemmer, show_progress=False)
            self._bm25 = bm25s.BM25(**BM25)
            self._bm25.index(tokens, show_progress=False)

    def terms(self, text: str) -> set[str]:
        """The stemmed content terms of `text`, exactly as bm25s.tokenize makes them (lower case, its token
        pattern, stop words dropped, then stemmed), without its per-call overhead: the retriever asks
        this for every sentence a query's candidates hold."""
        words = [w for w in TOKEN.findall(text.lower()) if w not in STOPWORD_SET]
        return set(self._thread_stemmer().stemWords(words))

    def _thread_stemmer(self) -> Stemmer.Stemmer:
        """A stemmer of this thread's own (PyStemmer's stemmers are not safe to share between threads)."""
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = Stemmer.Stemmer(STEMMER)
        return stemmer

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for `question` (zeros when it shares no term)."""
        terms = bm25s.tokenize([question], stopwords=STOPWORDS, stemmer=self._thread_stemmer(), show_progress=False, return_ids=False)[0]
        scores = np.zeros(self.size, dtype=np.float32)
        index = self._bm25.scores  # bm25s's precomputed per-term scores, CSC: data, indices, indptr
        for term in self._bm25.get_tokens_ids(terms):
            start, end = index["indptr"][term], index["indptr"][term + 1]
            # what bm25s.get_scores does with np.add.at, as a plain indexed add (a document appears once per
            # term): the same float32 sums in the same order, several times faster on large posting lists
            scores[index["indices"][start:end]] += index["data"][start:end]
        return scores
