"""Lexical retrieval: BM25 over passages, with English stemming and stop words.

Built from the passages at load time, so the index on disk holds no second, derived copy that could drift
from the passages. What is indexed is the passage under its title and section
(rag.corpus.passage_text.heading_text). English stop words and question words are dropped; terms are
Snowball-stemmed. The scores are bm25s's (Lucene's variant, its defaults), computed here with numpy
(`bm25_from_ids`) from tokens made as `bm25s.tokenize(token_pattern=TOKEN.pattern)` makes them (`tokens`: its
default pattern, after a dotted number kept whole), bit for bit what bm25s builds itself
(tests/index/test_incremental.py, tests/index/test_store_mmap.py). bm25s itself is imported only for the rare
shapes `bm25_from_ids` hands to it (nothing to index): importing it loads scipy.sparse, about a third of a second
of every cold start, and an up-to-date index never needs it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import sys
import threading

import numpy as np
import Stemmer

# bm25s.stopwords.STOPWORDS_EN (bm25s 0.2), spelled out so that the lexical index does not import bm25s (and
# scipy with it) to start; tests/index/test_store_mmap.py holds it equal to bm25s's list.
STOPWORDS_EN = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
)

# Words that shape a question but never name its subject: as query terms they only
# pull in passages that happen to ask a question themselves ("Why was ...").
QUESTION_WORDS = ("why", "how", "what", "when", "who", "whom", "whose", "which", "where", "did", "does", "do")
STOPWORDS = sorted(set(STOPWORDS_EN) | set(QUESTION_WORDS))
STEMMER = "english"
STOPWORD_SET = frozenset(STOPWORDS)
# bm25s.tokenize's default token pattern (words of two characters or more), after a dotted number kept whole: a
# version, an address or a clause number ("3.7.1", "192.168.0.1", "4.2") is one term, where the default pattern
# keeps none of "3.7.1" and only "168" of the address.
TOKEN = re.compile(r"(?u)\b\d+(?:\.\d+)+\b|\b\w\w+\b")
BM25 = {"k1": 1.5, "b": 0.75, "method": "lucene"}  # bm25s defaults, recorded so a change shows


def lexical_fingerprint() -> dict:
    """What shapes BM25 (recorded in the index manifest: a change makes the index stale)."""
    words = hashlib.sha256("\n".join(STOPWORDS).encode()).hexdigest()[:16]
    return {"stemmer": STEMMER, "stopwords_sha256": words, "question_words": list(QUESTION_WORDS), "bm25": BM25,
            "token_pattern": TOKEN.pattern}


def tokens(texts: list[str], stemmer: "Stemmer.Stemmer | None" = None) -> list[list[str]]:
    """Each text's terms in order, repeats kept, exactly as `bm25s.tokenize(texts, stopwords=STOPWORDS,
    stemmer=..., return_ids=False)` makes them (lower case, its token pattern, stop words dropped, then each
    distinct word Snowball-stemmed once): what BM25 indexes and queries, and what an engine store turns into
    sparse vectors."""
    split = TOKEN.findall
    words = [[w for w in split(text.lower()) if w not in STOPWORD_SET] for text in texts]
    distinct = list(dict.fromkeys(w for text_words in words for w in text_words))
    stems = dict(zip(distinct, (stemmer or Stemmer.Stemmer(STEMMER)).stemWords(distinct)))
    return [[stems[w] for w in text_words] for text_words in words]


class Scores:
    """A BM25 index as bm25s keeps it (`scores`: the per-term scores as CSC data, indices, indptr, num_docs;
    `vocab_dict`: term -> column), without bm25s."""

    def __init__(self, scores: dict, vocab_dict: dict[str, int]):
        self.scores = scores
        self.vocab_dict = vocab_dict

    def get_tokens_ids(self, query_tokens: list[str]) -> list[int]:
        """The columns of the query's terms, in order, those not in the vocabulary left out (as bm25s)."""
        vocab = self.vocab_dict
        return [vocab[t] for t in query_tokens if t in vocab]


class LexicalIndex:
    def __init__(self, texts: list[str], index: bool = True, keys: list | None = None, previous: "LexicalIndex | None" = None,
                 passage_texts: list[str] | None = None):
        """BM25 over `texts`; with index=False only the tokenizer (`terms`), for a store that keeps BM25 itself.

        `keys` (one hashable per text, naming its content) keep each text's tokens, so a later index over mostly
        the same texts (`previous`, an index made with keys) tokenizes only the texts it lacks; the BM25 scores
        are the same as a fresh index's (they depend on the texts, never on the token numbering). `passage_texts`
        are texts whose `terms` are kept (the passages' own texts, which the retriever asks for every passage
        of a snapshot), taken from `previous` when it kept them."""
        self._stemmer = Stemmer.Stemmer(STEMMER)
        self._local = threading.local()
        self.size = len(texts)
        self._bm25 = None
        self._tokens: dict = {}  # key -> token numbers (into self._vocab), in order, repeats kept
        self._vocab: dict[str, int] = {}
        self.reused = 0  # texts whose tokens came from `previous`
        known: dict[str, tuple[str, ...]] = {}  # passage text -> its terms, when the fresh tokenizing made them
        if index:
            if keys is not None and previous is not None and previous._tokens:
                self._index_reusing(texts, keys, previous)
            else:
                ids, vocab, known = self._tokenize_fresh(texts, passage_texts if previous is None else None)
                if keys is not None:
                    self._vocab = vocab
                    self._tokens = dict(zip(keys, ids))
                self._bm25 = bm25_from_ids(ids, vocab)
        self._known: dict[str, tuple[str, ...]] = {}  # passage text -> its terms
        if passage_texts is not None:
            kept = previous._known if previous is not None else known
            intern = sys.intern
            for text in passage_texts:
                found = kept.get(text)
                self._known[text] = found if found is not None else tuple(intern(t) for t in self._terms_of(text))

    def _tokenize_fresh(self, texts: list[str], passage_texts: list[str] | None):
        """Each text's token numbers (into the vocabulary returned, numbered by first appearance) and, for
        `passage_texts`, each one's terms (what `terms` answers), in one pass: the same tokens as `tokens(texts)`
        and the same terms as `_terms_of`. A text that is its passage's text under a heading line (heading_text:
        "<title>. <section>.\n<text>") is split at that newline, which no token crosses and which stops lower
        case's context, so its words are the heading's (worked out once per heading) then the passage's, and the
        passage's words are split out of the text only once. Each distinct word is stemmed once."""
        split = TOKEN.findall
        stop = STOPWORD_SET

        def words_of(text: str) -> list[str]:
            return [w for w in split(text.lower()) if w not in stop]

        aligned = passage_texts is not None and len(passage_texts) == len(texts)
        own = [words_of(t) for t in passage_texts] if passage_texts is not None else []
        headings: dict[str, list[str]] = {}
        words: list[list[str]] = []
        for i, text in enumerate(texts):
            if aligned and len(text) > len(passage_texts[i]) and text.endswith(passage_texts[i]) \
                    and text[-len(passage_texts[i]) - 1] == "\n":
                head = text[: -len(passage_texts[i]) - 1]
                if head not in headings:
                    headings[head] = words_of(head)
                words.append(headings[head] + own[i])
            else:
                words.append(words_of(text))
        indexed: set[str] = set()
        for text_words in words:
            indexed.update(text_words)
        distinct = set(indexed)
        for text_words in own:
            distinct.update(text_words)
        # the stems of the distinct words, in one call (stemming is per word: the same stems as text by text)
        ordered = sorted(distinct)
        intern = sys.intern  # each distinct term kept once, however many passages hold it
        stems = {w: intern(stem) for w, stem in zip(ordered, self._stemmer.stemWords(ordered))}
        vocab: dict[str, int] = {}
        number = {w: vocab.setdefault(stems[w], len(vocab)) for w in sorted(indexed)}
        ids = [np.array([number[w] for w in text_words], dtype=np.int32) for text_words in words]
        known = {}
        if passage_texts is not None:
            for text, text_words in zip(passage_texts, own):
                known[text] = tuple({stems[w] for w in text_words})
        return ids, vocab, known

    def _index_reusing(self, texts: list[str], keys: list, previous: "LexicalIndex") -> None:
        vocab = dict(previous._vocab)  # a copy: the previous index (still serving) never changes
        kept = previous._tokens
        missing = [i for i, key in enumerate(keys) if key not in kept]
        new = {}
        for i, words in zip(missing, tokens([texts[i] for i in missing])):
            new[keys[i]] = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int32, count=len(words))
        self._tokens = {key: kept[key] if key in kept else new[key] for key in keys}
        self._vocab = vocab
        self._bm25 = bm25_from_ids([self._tokens[key] for key in keys], vocab)
        self.reused = len(keys) - len(missing)

    def terms(self, text: str) -> set[str]:
        """The stemmed content terms of `text`, exactly as bm25s.tokenize makes them (lower case, its token
        pattern, stop words dropped, then stemmed), without its per-call overhead: the retriever asks
        this for every sentence a query's candidates hold."""
        known = self._known.get(text)
        if known is not None:
            return set(known)
        return self._terms_of(text)

    def _terms_of(self, text: str) -> set[str]:
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
        terms = tokens([question], self._thread_stemmer())[0]
        scores = np.zeros(self.size, dtype=np.float32)
        index = self._bm25.scores  # the precomputed per-term scores, CSC: data, indices, indptr
        for term in self._bm25.get_tokens_ids(terms):
            start, end = index["indptr"][term], index["indptr"][term + 1]
            # what bm25s.get_scores does with np.add.at, as a plain indexed add (a document appears once per
            # term): the same float32 sums in the same order, several times faster on large posting lists
            scores[index["indices"][start:end]] += index["data"][start:end]
        return scores


def bm25_from_ids(token_ids: list[np.ndarray], vocab: dict[str, int]):
    """A bm25s index over texts given as token numbers (into `vocab`, numbered 0..len-1), with the very scores
    `bm25s.BM25(**BM25).index((ids, vocab))` computes (the same float32 data, rows and column pointers, bit for bit:
    tests/index/test_incremental.py), in a few numpy passes instead of bm25s's loop over every text. Lucene BM25:
    idf = log(1 + (N - df + 0.5) / (df + 0.5)), score = idf * tf / (k1 * (1 - b + b * dl / avgdl) + tf)."""
    if BM25["method"] != "lucene" or not token_ids or not any(len(t) for t in token_ids):
        import bm25s  # the rare shapes (nothing to index) as bm25s handles them; it loads scipy.sparse

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        bm25 = bm25s.BM25(**BM25)
        bm25.index(([t.tolist() for t in token_ids], dict(vocab)), show_progress=False)
        return bm25
    k1, b = BM25["k1"], BM25["b"]
    n_docs, n_vocab = len(token_ids), len(vocab)
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=n_docs)
    average = lengths.mean()  # as bm25s: the mean of an int64 array
    docs = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    pairs, counts = np.unique((np.concatenate(token_ids).astype(np.int64) << 32) | docs, return_counts=True)  # by term, then text
    cols, rows = pairs >> 32, pairs & 0xFFFFFFFF
    frequencies = np.bincount(cols, minlength=n_vocab)
    idf = np.zeros(n_vocab, dtype=np.float32)
    for term in np.flatnonzero(frequencies).tolist():  # math.log on Python numbers, as bm25s's idf does
        df = int(frequencies[term])
        idf[term] = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    tf = counts.astype(np.float32).astype(np.float64)
    norm = k1 * ((1 - b) + b * lengths.astype(np.float64) / average)  # per text, in float64 like bm25s's scalar
    data = (idf[cols] * (tf / (norm[rows] + tf))).astype(np.float32)
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(frequencies, out=indptr[1:])
    vocab_dict = dict(vocab)
    vocab_dict.setdefault("", max(vocab.values()) + 1)  # as bm25s.index adds it
    return Scores({"data": data, "indices": rows.astype(np.int32), "indptr": indptr, "num_docs": n_docs}, vocab_dict)
