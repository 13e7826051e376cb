"""Retrieval: from a parsed query to ranked, highlighted passages and a verdict, in four stages.

`Retriever` is built once per snapshot (rag.service.Snapshot) and holds one of each stage, all built then:
- embed: the question's one forward pass (the snapshot's query encoder, rag.encoding); a question longer than
  the model's window is read as its sentences that ask (`asked_sentences`), by this and every later stage;
- rank: candidates from the store's dense and BM25 searches within the filter, fused (rag.query.ranking; the
  store is FAISS + bm25s in the process by default, or an engine: rag.index.vector_store);
- highlight: the sentence(s) of each returned passage that answer the question (rag.query.highlight);
- verify (a question's `verify`, by default RAG_VERIFIER, off): the verifier, a cross-encoder, reads the best
  sentence windows of the top passages (rag.query.verification) and its best logit joins the verdict's features.
  Never for a model other than the default (it was fitted with the default model's features): the verdict is then
  the bi-encoder one, and a question that asked is told so in `warnings`;
- judge: whether the top passages answer it at all: `verdict`, `answerable`, `confidence` (rag.query.verdict).

Results are small frozen dataclasses carrying the snapshot they were computed on; the HTTP, MCP and CLI
layers render them from it. `timings_ms` says what each stage cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from rag.config import Mode
from rag.corpus.chunking import Passage, sentence_spans
from rag.index.vector_store import FaissBm25Store, VectorStore
from rag.query import verdict as verdicts
from rag.query.coverage import idf_table, unseen_idf
from rag.query import verification
from rag.encoding.base import QuestionEmbedding
from rag.query.answer_types import Vocabulary, names_absent
from rag.query.highlight import Highlight, Highlighter, choose, is_question, marks
from rag.query.ranking import Ranker
from rag.query.request import Query
from rag.query.sentences import Sentences


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
    windows: tuple[verification.Window, ...] = ()  # the sentence windows the verifier read (none without one, unless asked for)
    warnings: tuple[str, ...] = ()  # what the caller should know about how the question was read
    verified: bool = False  # the verifier read the evidence and its logit is in the verdict


TAIL_SHARE = 0.9  # a long question's question sentences: at most 0.9 of the characters the model's window held (so they fit)
def asked_sentences(text: str, budget: int) -> str:
    """The sentences of `text` that end with a question mark, the last ones first, as many as `budget` characters
    hold, in text order; "" when it asks nothing. "So, to put it simply: what are the hours?" keeps its lead-in."""
    kept: list[str] = []
    used = 0
    asking = [text[a:b].strip() for a, b in sentence_spans(text) if is_question(text[a:b])]  # the corpus's sentence rules
    for sentence in reversed(asking):
        if kept and used + len(sentence) + 1 > budget:
            break
        kept.insert(0, sentence[-budget:] if not kept and len(sentence) > budget else sentence)
        used += len(kept[0]) + 1
    return " ".join(kept)
VOCABULARIES = 64  # documents whose words are kept for `names_absent`, the most recently cited (a 1 MB text: some 5 MB)
PASSAGE_VOCABULARIES = 4096  # passages whose words are kept for `names_unread`, the most recently cited


class Retriever:
    def __init__(self, loaded_index, documents: dict, lexical, encoder, answerable_threshold: float = verdicts.ANSWERABLE_THRESHOLD,
                 verifier=None, verifier_status: dict | None = None, store: VectorStore | None = None):
        self.index = loaded_index
        self.documents = documents  # id -> Document: the version this index was built from
        self.passages: list[Passage] = loaded_index.passages
        self.lexical = lexical
        self.encoder = encoder
        self.position = {p.id: i for i, p in enumerate(self.passages)}
        sentences = Sentences(loaded_index, lexical.terms)
        # rarity of each term over the passages' own text, for the highlight and the verdict (counted once)
        idf = idf_table((lexical.terms(p.text) for p in self.passages), len(self.passages))
        unseen = unseen_idf(len(self.passages))
        # where the passage vectors and BM25 live: FAISS + bm25s here by default, or an engine (rag.index.vector_store)
        self.store = store if store is not None else FaissBm25Store(loaded_index.vectors, lexical)
        self.ranker = Ranker(self.store, sentences, len(self.passages))
        self.highlighter = Highlighter(sentences, idf, unseen)
        self.judge = verdicts.Judge(sentences, lexical.terms, encoder, idf, unseen, answerable_threshold)
        self.verifier = verifier  # rag.encoding.verifier.VerifierSlot, or None (a model other than the default)
        self._verifier_status = verifier_status or {"used": False, "on_request": False, "reason": "not available to this service"}
        self.vocabulary = lru_cache(maxsize=VOCABULARIES)(self._vocabulary)  # document id -> its words, made when first cited
        self.passage_vocabulary = lru_cache(maxsize=PASSAGE_VOCABULARIES)(self._passage_vocabulary)  # passage index -> its words

    def _vocabulary(self, document_id: str) -> Vocabulary:
        """The words of a document: its text and every metadata field (title, author, file name...)."""
        document = self.documents.get(document_id)
        if document is None:  # not in this snapshot's corpus (cannot happen for a hit, but never fail a query on it)
            return Vocabulary(" ".join(p.text for p in self.passages if p.document == document_id))
        return Vocabulary(" ".join([document.text, *self._fields(document_id)]))

    def _passage_vocabulary(self, passage_index: int) -> Vocabulary:
        """The words of a passage: its text, its section heading and its document's metadata fields."""
        passage = self.passages[passage_index]
        return Vocabulary(" ".join([passage.text, passage.section or "", *self._fields(passage.document)]))

    def _fields(self, document_id: str) -> list[str]:
        """A document's metadata fields (title, author, file name...) as text; none for a document not in the corpus."""
        document = self.documents.get(document_id)
        metadata = document.metadata() if document is not None else {}
        return [str(v) for v in metadata.values() if isinstance(v, (str, int, list, tuple)) and v]

    def names_absent(self, question: str, top: list[int]) -> list[str]:
        """What the question names that none of the documents of the passages `top` holds (answer_types.names_absent)."""
        if not top:
            return []
        return names_absent(question, [self.vocabulary(d) for d in dict.fromkeys(self.passages[i].document for i in top)])

    def names_unread(self, question: str, top: list[int]) -> tuple[list[str], list[str]]:
        """(what the question names that none of the documents of the passages `top` holds, what those documents hold
        elsewhere but none of the passages `top` does): "the minimum investment in the 2014 share offer" over the 2025
        offer's passages, whose document says "registered in 2014" further up. Either caps the verdict (the passages
        read do not speak of it); the warning tells them apart."""
        unread = names_absent(question, [self.passage_vocabulary(i) for i in top]) if top else []
        if not unread:
            return [], []
        absent = [name for name in self.names_absent(question, top) if name in unread]  # a heading's word is the passage's
        return absent, [name for name in unread if name not in absent]

    def verifier_status(self) -> dict:
        """What /ready says of the verifier: read for every question, on request, or not at all and why."""
        return self.verifier.status() if self.verifier is not None else self._verifier_status

    def _verifier_for(self, query: Query):
        """(the verifier to read `query`'s evidence with or None, a warning when the question asked for one it cannot
        have). A question that says nothing is read as the service is set (the slot's `by_default`), silently."""
        by_default = self.verifier is not None and self.verifier.by_default
        if not (by_default if query.verify is None else query.verify):
            return None, None
        if self.verifier is None or not self.verifier.on_request:
            reason = self.verifier_status()["reason"]
            return None, f"verify was asked for, but the verifier is {reason}"
        verifier, failure = self.verifier.get()  # a slot that reads every question loaded at start: only asked ones fail here
        return verifier, (None if verifier is not None else f"verify was asked for, but {failure}; the verdict is the bi-encoder one")

    def _cut(self, embedded) -> bool:
        """Whether the encoder read only the start of the question (it filled its whole window)."""
        window = getattr(self.encoder, "max_seq_length", None)
        return bool(window) and embedded.tokens is not None and len(embedded.spans) >= window

    def _embed(self, question: str) -> tuple[str, QuestionEmbedding, str | None]:
        """(the question as read, its embedding, a warning when the model could not read all of it). A question
        longer than the model's window that asks something ("... I am still confused. So, to put it simply: what are
        the new opening hours of the Bristol office?") is read as its question sentences, as many of the last ones
        as the window holds: every stage then reads those (the embedding, BM25, the highlight, the verdict). One
        that asks nothing is read as far as the window goes."""
        embedded = self.encoder.embed_question(question)
        if not self._cut(embedded):
            return question, embedded, None
        read = max((end for _, end in embedded.spans), default=0)  # the characters the window held
        asked = asked_sentences(question, int(TAIL_SHARE * read))
        if not asked:
            return question, embedded, "the question is longer than the model reads; only its start was used"
        shown = asked if len(asked) <= 120 else "…" + asked[-119:].split(" ", 1)[-1]  # its end: where it asks
        return asked, self.encoder.embed_question(asked), f"the question is longer than the model reads; it was read as what it asks: '{shown}'"

    @property
    def verdict_model(self):
        """The verdict's model for a question read as the settings say (rag.query.verdict)."""
        return verdicts.MODEL_VERIFIED_BLEND if self.verifier is not None and self.verifier.by_default else self.judge.model

    def search(self, query: Query, snapshot=None, allowed: np.ndarray | None = None, read_windows: int | None = None) -> QueryResult:
        """Rank passages for a parsed query (rag.query.request); the result carries `snapshot`.

        `allowed` (one bool per passage, rag.query.filters.passage_mask) restricts every stage to those passages;
        `read_windows` is how many sentence windows are chosen for the verifier: by default what it reads, none
        without one (training draws more)."""
        question = query.question
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 3)
            clock = now

        question, embedded, too_long = self._embed(question)
        lap("embed")
        ranking = self.ranker.rank(question, embedded.vector, query.mode, allowed, lap)
        question_terms = self.lexical.terms(question)
        candidates: dict[int, list] = {}

        def candidates_of(i: int) -> list:
            if i not in candidates:
                candidates[i] = self.highlighter.candidates(i, embedded.vector, question, question_terms)
            return candidates[i]

        returned = ranking.top(query.top_k)
        choices = [choose(candidates_of(i)) for i, _ in returned]  # each hit's highlighted sentence and marks
        hits = [Hit(self.passages[i], round(score, 6), rank, *marks(candidates_of(i), choice))
                for rank, ((i, score), choice) in enumerate(zip(returned, choices), start=1)]
        lap("highlight")
        read = [i for i, _ in ranking.top(verification.READ_PASSAGES)]
        verifier, unverified = self._verifier_for(query)
        if read_windows is None:  # as the verifier reads; none without one
            read_windows = verification.READ_WINDOWS if verifier is not None else 0
        chosen = verification.windows([(i, candidates_of(i)) for i in read], read_windows) if read_windows else []
        reading = verification.read(verifier, question, chosen) if verifier is not None else None
        lap("verify")
        absent, elsewhere = self.names_unread(question, read)
        shown = choices[0][:1] if choices else ()  # the top hit's highlighted sentence (read[0] is the top hit)
        assessment = self.judge.assess(question, question_terms, embedded, read, reading, names_absent=bool(absent or elsewhere),
                                       passage_cosines=ranking.top_cosines(verification.READ_PASSAGES), highlighted=shown)
        lap("verdict")
        warnings = () if unverified is None else (unverified,)
        if too_long:
            warnings += (too_long,)
        elif reading is not None and reading.question_cut:
            warnings += ("the question is longer than the verifier reads; it read only its start",)
        if absent:
            names = ", ".join(f"'{name}'" for name in absent)
            warnings += (f"the documents of the best passages never mention {names}: they may be about something else",)
        if elsewhere:
            names = ", ".join(f"'{name}'" for name in elsewhere)
            warnings += (f"the best passages never mention {names} (other parts of their documents do): they may be about something else",)
        return QueryResult(
            question=query.question,
            mode=query.mode,
            answerable=assessment.answerable,
            confidence=assessment.confidence,
            hits=hits,
            index_id=self.index.id,
            timings_ms=timings,
            verdict=assessment.verdict,
            features=assessment.features,
            snapshot=snapshot,
            windows=tuple(chosen),
            warnings=warnings,
            verified=reading is not None,
        )
