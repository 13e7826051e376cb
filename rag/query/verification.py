"""Verification: the verifier (rag.encoding.verifier) reads the best sentence windows of the top passages.

Which windows: the top READ_PASSAGES passages' sentences, ranked by the highlight's own score
(rag.query.highlight.score: cosine, rarity-weighted term coverage, answer type), best READ_WINDOWS of them in
all; a sentence that opens by pointing back ("This outcome ...") is read with the sentence before it, as the
highlight reads it. Training (eval/train_verifier.py) draws its pairs with the same `windows`, more of them,
so the model learns on the candidates it will see.

What comes out: the best window's logit, a feature of the verdict (rag.query.verdict), and which window that was.
Using that window as its passage's highlight was tried and dropped (it held the answer less often than the
highlight's own rules on held-out articles: rag.query.highlight.marks). The stage runs for a question that asks
(`verify`), or for every question with RAG_VERIFIER=true.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.query.highlight import Candidate, in_context, read_with_previous, score

READ_PASSAGES = 3  # the passages the verdict looks at (as the bi-encoder features do)
READ_WINDOWS = 3  # windows read per question at query time (cost: one batch of this many pairs)


@dataclass(frozen=True)
class Window:
    passage_index: int
    sentence: int  # index of the sentence in its passage (the highlight it would be)
    text: str  # what the verifier reads
    start: int  # document offsets of the sentence
    end: int
    read_start: int  # where `text` starts in the document (the sentence before, when it is read with it)
    prior: float  # the highlight's score of the sentence


@dataclass(frozen=True)
class Reading:
    logit: float  # the best window's verifier logit; the verdict's feature
    best: Window | None
    question_cut: bool  # the verifier read only the start of a long question


def windows(candidates_by_passage: Sequence[tuple[int, Sequence[Candidate]]], count: int) -> list[Window]:
    """The `count` best sentence windows of the given passages (passage index, its candidates), best first."""
    found: list[Window] = []
    for passage_index, candidates in candidates_by_passage:
        for k, c in enumerate(candidates):
            text, read_start = c.text, c.start
            if read_with_previous(candidates, k):
                text, read_start = f"{candidates[k - 1].text} {c.text}", candidates[k - 1].start
            found.append(Window(passage_index, k, text, c.start, c.end, read_start, score(in_context(candidates, k))))
    found.sort(key=lambda w: -w.prior)
    return found[:count]


def read(verifier, question: str, chosen: Sequence[Window]) -> Reading:
    """The verifier's reading of the chosen windows: its best logit and window."""
    if not chosen:
        return Reading(-10.0, None, False)
    logits = verifier.logits(question, [w.text for w in chosen])
    best = int(np.argmax(logits))
    return Reading(round(float(logits[best]), 4), chosen[best], not verifier.reads_whole(question))
