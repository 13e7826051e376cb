"""The highlight: which sentence(s) of a passage answer the question.

Each sentence is scored by its cosine with the question (embeddings computed at
index time) plus the rarity-weighted (IDF) share of the question's terms it
holds, so the sentence that carries the question's focus wins over one that is
merely about the same subject. Two kinds of sentence are never the answer and
are pushed down: the text's own questions ("Why was the Russian bourgeoisie
unable to lead ...?") and transitional sentences that only lead into what
follows (ending in a colon, or a few words with nothing of the question). A
question that still wins (an FAQ's "Q: Can I hire a bike?" holds every word of
"Can I hire a bike in Leeds?") gives way to the best sentence of what follows
it up to the next question: its answer (bundled and SQuAD highlight@1 unchanged;
a walkthrough's FAQ highlights were its question lines).

Three rules for where the answer is not the sentence closest in meaning
(each fixed one dev question and cost none; dev highlight@1 0.750 -> 0.794,
54 of 68, with 58 of the 68 at rank 1 the ceiling):
- A sentence that opens by pointing back ("This outcome was foreseeable ...",
  "It ...", "They ...") is read with the cosine of the sentence it refers to
  when that is higher: on its own the embedding misses its subject. Its own
  terms and type then decide between it and what it refers to.
- "Why" questions ask for an explanation: a sentence with a causal connective
  ("because", "means", "led to", ...) holds the asked-for type. TYPE_BONUS is
  0.1 (dev flat from 0.07 to 0.2; 0.05 was too small for the why rule).
- A naming question ("What is the name of ...?", "What did X call ...?") is
  answered where a name is given ("termed", "known as", "called"); the sentence
  must also share a question term. NAME_BONUS 0.5 lets it win outright.
In a table (a sheet, a Word or Markdown table) the header line is pushed down as
a question is (it names the columns and answers nothing), and a row that holds
whole a name or code the question asks about ("PM-102", "Chen Wei") gets
ROW_NAME_BONUS over rows that read alike (a walkthrough: highlights holding the
answer 29 -> 32 of 38; no bundled or SQuAD text is a table; bench_tables 0.956
unchanged). TERM_WEIGHT is flat on dev from 0.3 to 1.0, so it stays. Tried and dropped: a
bonus for question word pairs found in the sentence (no gain, a loss at 0.1).

Where the evidence spans two adjacent sentences (the neighbour scores almost as
high, the best sentence only introduces the next one, or the best refers back
to the one before), both are marked: `highlights` holds them in text order; the
best one alone stays `highlight`, and that is what is evaluated. No dev gold
quote spans two sentences, and evaluating the joined pair instead gained
nothing on dev (54 either way), so the single sentence stays the measure.
Pure functions over plain values, and `Highlighter`, the stage built once per snapshot that feeds them a
passage's sentences (rag.query.sentences).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from rag.query.answer_types import answer_type, asked_entities, asks_for_name, names_outside, table_has_row, type_met
from rag.query.coverage import coverage
from rag.query.sentences import Sentences

TERM_WEIGHT = 0.3  # weight of the IDF-weighted term coverage added to the cosine (chosen on dev)
QUESTION_PENALTY = 0.3  # subtracted from a sentence that is itself a question
TRANSITION_PENALTY = 0.15  # subtracted from a sentence that only leads into the next
PAIR_MARGIN = 0.03  # a neighbour within this of the best score is marked too (set by hand; no dev effect on highlight@1)
TYPE_BONUS = 0.1  # added to a sentence that holds the asked-for kind of answer (dev: flat from 0.07 to 0.2)
NAME_BONUS = 0.5  # added to a sentence that gives the name a naming question asks for ("termed the law of ...")
HEADER_PENALTY = 0.3  # subtracted from a table's header line, as from a question: it names the columns, it answers nothing
ROW_NAME_BONUS = 0.2  # added to a table row holding what the question names, over its neighbours that hold only the columns
SHORT_WORDS = 7  # "purely transitional": at most this many words and no question term

# a sentence that opens by pointing back ("This outcome ...", "It ...", "They ...") is about what the one before said
_REFERS_BACK = re.compile(r"^\W*(this|that|these|those|such|it|they|its|their)\b", re.I)
_WHY = re.compile(r"^\W*why\b|\bwhy (did|do|does|was|were|is|are|would|should|could|shouldn|didn|don|doesn|wasn|weren)\b", re.I)
# what an explanation is written with; "since" and "thus" also serve other ends, which costs little at a small bonus
_EXPLAINS = re.compile(
    r"\b(because|since|as a result|due to|owing to|so that|in order to|therefore|thus|hence|means|meant|led to|leads to"
    r"|caused|causes|for this reason|consequently|the reason)\b", re.I)
# "What is the name of ...?", "Which term ...?", "What did Trotsky call ...?" (a what/which question, so not "Does it
# deserve to be called a theory?")
# ("term" only as "what/which term" or "the term for": not "his second term"; "named" alone is too common a verb)
_ASKS_NAME = re.compile(
    r"\b(what|which) term\b|\bthe term for\b"
    r"|\b(what|which)\b.*(\bname (of|for|given to)\b|\bknown as\b|\bcall(ed)?\b(?! (for|on|upon)\b))", re.I)
_GIVES_NAME = re.compile(r"\b(called|termed|known as|dubbed|coined|so-called|labell?ed|referred to as)\b(?! (for|on|upon)\b)", re.I)


@dataclass(frozen=True)
class Candidate:
    """One sentence of a passage, as the highlighter sees it."""

    text: str
    start: int  # offsets into the document text
    end: int
    cosine: float  # with the question
    coverage: float  # IDF-weighted share of the question's terms it holds
    typed: bool = False  # holds what the question asks for: a date for "when", a number for "how many", a name for "who", an explanation for "why"
    names: bool = False  # gives the name a naming question asks for ("What is the name of the law ...?" -> "termed the law of ...")
    header: bool = False  # the header line of a table (its column names): what the rows under it are, no answer itself
    row_named: bool = False  # a table row that holds whole a name or code the question asks about ("PM-102", "Chen Wei")


def holds_answer_type(question: str, sentence: str) -> bool:
    """Whether the sentence holds the kind of answer the question asks for (rag.query.answer_types, plus a name for "who")."""
    if asks_for_name(question):
        return bool(names_outside(sentence, question))
    if _WHY.search(question):
        return bool(_EXPLAINS.search(sentence))
    kind = answer_type(question)
    return kind is not None and type_met(kind, sentence, question)


def gives_asked_name(question: str, sentence: str) -> bool:
    """Whether the question asks what something is called and the sentence gives a name ("termed", "known as")."""
    return bool(_ASKS_NAME.search(question) and _GIVES_NAME.search(sentence))


def refers_back(text: str) -> bool:
    """Whether the sentence opens by pointing back at the one before ("This outcome was foreseeable ...")."""
    return bool(_REFERS_BACK.match(text))


def is_question(text: str) -> bool:
    return text.rstrip(" \"'”’)]0123456789[").endswith("?")


def is_transitional(candidate: Candidate) -> bool:
    """A sentence that only leads into what follows: it ends in a colon, or is short and shares nothing with the question."""
    text = candidate.text.rstrip()
    return text.endswith(":") or (len(text.split()) <= SHORT_WORDS and candidate.coverage == 0.0)


def read_with_previous(candidates: Sequence[Candidate], i: int) -> bool:
    """Whether sentence `i` is read with the one before: it refers back to it, and the one before is not a question
    and is closer to the question than it is on its own."""
    return (
        i > 0 and refers_back(candidates[i].text) and not is_question(candidates[i - 1].text)
        and candidates[i - 1].cosine > candidates[i].cosine
    )


def in_context(candidates: Sequence[Candidate], i: int) -> Candidate:
    """Sentence `i` with the cosine it is read with: a sentence that refers back ("This outcome ...") has no
    subject of its own for the embedding to see, so it takes the cosine of the sentence it refers to when that
    is higher. Its own terms and type still decide whether it, or what it refers to, holds more of the answer."""
    c = candidates[i]
    if read_with_previous(candidates, i):
        return replace(c, cosine=candidates[i - 1].cosine)
    return c


def score(candidate: Candidate) -> float:
    value = candidate.cosine + TERM_WEIGHT * candidate.coverage + TYPE_BONUS * candidate.typed
    if candidate.names and candidate.coverage > 0.0:
        value += NAME_BONUS
    if candidate.header:
        value -= HEADER_PENALTY
    elif is_question(candidate.text):
        value -= QUESTION_PENALTY
    if candidate.row_named:
        value += ROW_NAME_BONUS
    if is_transitional(candidate):
        value -= TRANSITION_PENALTY
    return value


def choose(candidates: Sequence[Candidate]) -> tuple[int, tuple[int, ...]]:
    """(index of the best sentence, indices of the sentences to mark in text order: the best, and a neighbour if the
    evidence spans two). Raises ValueError for no candidates."""
    if not candidates:
        raise ValueError("a passage has at least one sentence")
    scores = [score(in_context(candidates, i)) for i in range(len(candidates))]
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    answers = _answering(candidates, best) if is_question(candidates[best].text) else []
    if answers:  # "Q: Can I hire a bike?" wins on its words; what answers it is what follows
        best = max(answers, key=lambda i: (scores[i], -i))
    marked = [best]
    if is_transitional(candidates[best]) and best + 1 < len(candidates):
        marked.append(best + 1)  # "he explains:" -> mark what he explains
    elif read_with_previous(candidates, best):
        marked.append(best - 1)  # "This outcome was foreseeable" -> mark the outcome it refers to
    else:
        neighbours = [i for i in (best - 1, best + 1) if 0 <= i < len(candidates) and not is_question(candidates[i].text)]
        close = [i for i in neighbours if scores[best] - scores[i] <= PAIR_MARGIN]
        if close:
            marked.append(max(close, key=lambda i: scores[i]))
    return best, tuple(sorted(marked))


def _answering(candidates: Sequence[Candidate], question: int) -> list[int]:
    """The sentences after the question sentence `question` up to the next question: its answer, in an FAQ's
    "Q: ... A: ..." or after a rhetorical question."""
    following = []
    for i in range(question + 1, len(candidates)):
        if is_question(candidates[i].text):
            break
        following.append(i)
    return following


@dataclass(frozen=True)
class Highlight:
    text: str
    start: int  # offsets into the document text, like the passage's
    end: int


class Highlighter:
    """The highlight stage of one snapshot: a passage's sentences scored for one question."""

    def __init__(self, sentences: Sentences, idf: dict[str, float], unseen_idf: float):
        self.sentences = sentences
        self.idf = idf
        self.unseen_idf = unseen_idf

    def candidates(self, passage_index: int, query: np.ndarray, question: str, question_terms: set[str]) -> list[Candidate]:
        """The passage's sentences as candidates for the question, in text order."""
        rows = self.sentences.rows_of(passage_index)
        passage = self.sentences.passages[passage_index]
        cosines = self.sentences.cosines(rows, query)
        texts = self.sentences.texts_of(passage_index)
        headers = self.sentences.headers_of(passage_index)
        entities = asked_entities(question) if any(h is not None for h in headers) else []
        return [
            Candidate(
                texts[k], start, end, float(cosines[k]),
                coverage(question_terms, self.sentences.terms[rows.start + k], self.idf, self.unseen_idf),
                holds_answer_type(question, texts[k]),
                gives_asked_name(question, texts[k]),
                header=headers[k] is not None and headers[k] == texts[k],
                row_named=headers[k] is not None and headers[k] != texts[k] and any(table_has_row([e], [texts[k]], "") for e in entities),
            )
            for k, (start, end) in enumerate(passage.sentences)
        ]

    def mark(self, passage_index: int, query: np.ndarray, question: str, question_terms: set[str]) -> tuple[Highlight, tuple[Highlight, ...]]:
        """The passage's sentence that answers the question, and the sentences to mark."""
        return marks(self.candidates(passage_index, query, question, question_terms))


def marks(candidates: Sequence[Candidate], choice: tuple[int, tuple[int, ...]] | None = None) -> tuple[Highlight, tuple[Highlight, ...]]:
    """The highlight and the sentences to mark among `candidates`: `choice`, `choose`'s result for them when the caller
    has it already. The verifier's best window as the highlight was tried and dropped: on held-out SQuAD articles it
    held the answer for 0.62 of the answerable questions against the rules' 0.70 (eval/train_verifier.py's report)."""
    chosen, marked = choice if choice is not None else choose(candidates)
    spans = {k: Highlight(candidates[k].text, candidates[k].start, candidates[k].end) for k in marked}
    return spans[chosen], tuple(spans[k] for k in marked)
