"""Rarity-weighted term coverage: how much of a question's rare vocabulary a sentence holds.

BM25's IDF over the passages' own text weights each question term; `coverage` is the weighted share found in
the evidence. The highlight adds it to a sentence's cosine, and the verdict picks its evidence sentence by it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def idf_table(passage_terms: Iterable[set[str]], n: int | None = None) -> dict[str, float]:
    """BM25's IDF of every term the passages use (look unseen terms up with `unseen_idf`); `n` passages
    when `passage_terms` is a generator (counted in one pass, no per-passage set kept)."""
    if n is None:
        passage_terms = list(passage_terms)
        n = len(passage_terms)
    df: dict[str, int] = {}
    for terms in passage_terms:
        for t in terms:
            df[t] = df.get(t, 0) + 1
    return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}


def unseen_idf(passages: int) -> float:
    """The IDF of a term no passage uses: the top weight, so a question word the corpus never says counts most."""
    return math.log(1 + (passages + 0.5) / 0.5)


def coverage(question_terms: Iterable[str], evidence_terms: set[str], idf: dict[str, float], unseen: float) -> float:
    """IDF-weighted share of the question's terms found in the evidence (0.0 for a question without terms)."""
    weights = {t: idf.get(t, unseen) for t in question_terms}
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in evidence_terms) / total if total else 0.0
