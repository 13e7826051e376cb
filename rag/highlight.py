"""The highlight: which sentence(s) of a passage answer the question.

Each sentence is scored by its cosine with the question (embeddings computed at
index time) plus the rarity-weighted (IDF) share of the question's terms it
holds, so the sentence that carries the question's focus wins over one that is
merely about the same subject. Two kinds of sentence are never the answer and
are pushed down: the text's own questions ("Why was the Russian bourgeoisie
unable to lead ...?") and transitional sentences that only lead into what
follows (ending in a colon, or a few words with nothing of the question).

Where the evidence spans two adjacent sentences (the neighbour scores almost as
high, or the best sentence only introduces the next one), both are marked:
`highlights` holds them in text order; the best one alone stays `highlight`.
Pure functions over plain values; rag.retrieval supplies the scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

TERM_WEIGHT = 0.3  # weight of the IDF-weighted term coverage added to the cosine (chosen on dev)
QUESTION_PENALTY = 0.3  # subtracted from a sentence that is itself a question
TRANSITION_PENALTY = 0.15  # subtracted from a sentence that only leads into the next
PAIR_MARGIN = 0.03  # a neighbour within this of the best score is marked too (set by hand; no dev effect on highlight@1)
TYPE_BONUS = 0.05  # added to a sentence that holds the asked-for kind of answer
SHORT_WORDS = 7  # "purely transitional": at most this many words and no question term


@dataclass(frozen=True)
class Candidate:
    """One sentence of a passage, as the highlighter sees it."""

    text: str
    start: int  # offsets into the document text
    end: int
    cosine: float  # with the question
    coverage: float  # IDF-weighted share of the question's terms it holds
    typed: bool = False  # holds what the question asks for: a date for "when", a number for "how many", a name for "who"


def holds_answer_type(question: str, sentence: str) -> bool:
    """Whether the sentence holds the kind of answer the question asks for (rag.verdict's types, plus a name for "who")."""
    from rag.verdict import answer_type, asks_for_name, names_outside, type_met

    if asks_for_name(question):
        return bool(names_outside(sentence, question))
    kind = answer_type(question)
    return kind is not None and type_met(kind, sentence, question)


def is_question(text: str) -> bool:
    return text.rstrip(" \"'”’)]0123456789[").endswith("?")


def is_transitional(candidate: Candidate) -> bool:
    """A sentence that only leads into what follows: it ends in a colon, or is short and shares nothing with the question."""
    text = candidate.text.rstrip()
    return text.endswith(":") or (len(text.split()) <= SHORT_WORDS and candidate.coverage == 0.0)


def score(candidate: Candidate) -> float:
    value = candidate.cosine + TERM_WEIGHT * candidate.coverage + TYPE_BONUS * candidate.typed
    if is_question(candidate.text):
        value -= QUESTION_PENALTY
    if is_transitional(candidate):
        value -= TRANSITION_PENALTY
    return value


def choose(candidates: Sequence[Candidate]) -> tuple[int, tuple[int, ...]]:
    """(index of the best sentence, indices of the sentences to mark in text order: the best, and a neighbour if the
    evidence spans two). Raises ValueError for no candidates."""
    if not candidates:
        raise ValueError("a passage has at least one sentence")
    scores = [score(c) for c in candidates]
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    marked = [best]
    if is_transitional(candidates[best]) and best + 1 < len(candidates):
        marked.append(best + 1)  # "he explains:" -> mark what he explains
    else:
        neighbours = [i for i in (best - 1, best + 1) if 0 <= i < len(candidates) and not is_question(candidates[i].text)]
        close = [i for i in neighbours if scores[best] - scores[i] <= PAIR_MARGIN]
        if close:
            marked.append(max(close, key=lambda i: scores[i]))
    return best, tuple(sorted(marked))
