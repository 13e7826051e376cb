"""Retrieval metrics for the eval set: pure functions, no I/O, no model.

This module owns the scoring rules of the retrieval evaluation (in the spirit of
faiss ``contrib/evaluation.py``): when a retrieved passage counts as evidence
for a question (``quote_hit``), where the first such passage sits in a ranked
list (``first_hit_rank``), and the rank metrics computed from that
(``recall_at_k``, ``reciprocal_rank``, ``ndcg_at_k``), plus the precision and
recall of the answerable / unanswerable decision (``precision_recall``).
Loading questions, running retrieval and writing reports live elsewhere.

Conventions, chosen so that no function raises on empty input:

* ranks are 1-based; ``None`` means "no hit in the list";
* a question with no gold quotes never hits (``first_hit_rank`` -> ``None``);
* ``mean([])`` is 0.0, ``ndcg_at_k`` with no relevant item is 0.0;
* ``precision_recall`` defines every 0/0 as 0.0 (see its docstring).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

__all__ = [
    "normalize_whitespace",
    "quote_hit",
    "boundary_run",
    "word_count",
    "passage_relevances",
    "first_hit_rank",
    "recall_at_k",
    "reciprocal_rank",
    "ndcg_at_k",
    "mean",
    "precision_recall",
    "f1_score",
]

_WS = re.compile(r"\s+")


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (incl. newlines, NBSP) to one space and strip the ends."""
    return _WS.sub(" ", text).strip()


def quote_hit(passage_text: str, quote: str, min_fraction: float = 0.5) -> bool:
    """Whether a passage contains the gold quote, allowing for a cut at a passage boundary.

    Both strings are whitespace-normalized first. The passage hits when it contains the whole quote,
    or else when a passage boundary cuts the quote and the passage keeps at least ``min_fraction`` of
    its (normalized) length: the passage opens with the quote's tail or closes with its head
    (`boundary_run`). A run of the quote in the middle of a passage does not count, whatever its
    length: "on Linux" inside a sentence is not what is left of "WireGuard on Linux" (issue 19).
    Matching is otherwise exact (case, punctuation, curly quotes). An empty quote never hits.
    ``min_fraction`` must be in (0, 1].
    """
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    q = normalize_whitespace(quote)
    if not q:
        return False
    p = normalize_whitespace(passage_text)
    if not p:
        return False
    if q in p:
        return True
    return boundary_run(p, q, at_least=math.ceil(min_fraction * len(q) - 1e-9)) > 0


def boundary_run(passage: str, quote: str, at_least: int = 1) -> int:
    """Length of the longest part of ``quote`` that a passage boundary leaves in ``passage``: a suffix of the
    quote that opens the passage, or a prefix of it that closes the passage; 0 when neither is ``at_least``
    characters long. Shorter than the quote: a passage holding all of it is a containment, not a cut.
    Strings as given (normalize them first)."""
    for length in range(min(len(quote) - 1, len(passage)), max(at_least, 1) - 1, -1):
        if passage.startswith(quote[len(quote) - length :]) or passage.endswith(quote[:length]):
            return length
    return 0


def word_count(text: str) -> int:
    """Words of a quote (whitespace-separated), for telling a short, ambiguous quote from a distinctive one."""
    return len(text.split())


def passage_relevances(
    passages: Sequence[str], quotes: Sequence[str], min_fraction: float = 0.5
) -> list[int]:
    """Binary relevance of each passage in rank order: 1 when it hits any quote, else 0."""
    return [int(any(quote_hit(p, q, min_fraction) for q in quotes)) for p in passages]


def first_hit_rank(
    passages: Sequence[str], quotes: Sequence[str], min_fraction: float = 0.5
) -> int | None:
    """1-based rank of the first passage that hits any of ``quotes``; ``None`` when none does.

    No quotes (an unanswerable question) or no passages -> ``None``.
    """
    if not quotes:
        return None
    for rank, passage in enumerate(passages, start=1):
        if any(quote_hit(passage, q, min_fraction) for q in quotes):
            return rank
    return None


def recall_at_k(rank: int | None, k: int) -> float:
    """Hit rate at k for one question: 1.0 when the first hit is at rank <= k, else 0.0.

    With one gold item per question (any quote counts) this is recall@k;
    averaged over questions it is the usual hit-rate / success@k.
    """
    return 1.0 if rank is not None and 1 <= rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int = 10) -> float:
    """1/rank when the first hit is within the top k, else 0.0 (MRR@k once averaged)."""
    return 1.0 / rank if rank is not None and 1 <= rank <= k else 0.0


def _dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(i + 1) for i, g in enumerate(gains, start=1))


def ndcg_at_k(relevances: Sequence[int | float], k: int, n_relevant: int | None = None) -> float:
    """Normalized DCG at k with binary gains (any relevance > 0 counts as 1).

    ``relevances`` are per retrieved item in rank order. DCG = sum over the top
    k of gain_i / log2(i + 1) (i 1-based). The ideal DCG is that of the same
    relevances sorted in decreasing order, i.e. of all relevant items found
    put first; pass ``n_relevant`` (the number of relevant items that exist)
    to use that instead, so relevant items that were not retrieved are also
    charged. Returns 0.0 when there is no relevant item or k <= 0.
    """
    if k <= 0:
        return 0.0
    gains = [1.0 if r > 0 else 0.0 for r in relevances]
    n_ideal = int(sum(gains)) if n_relevant is None else max(int(n_relevant), 0)
    ideal = _dcg([1.0] * min(n_ideal, k))
    if ideal == 0.0:
        return 0.0
    return _dcg(gains[:k]) / ideal


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values."""
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def precision_recall(predicted: Sequence[bool], actual: Sequence[bool]) -> tuple[float, float]:
    """Precision and recall of the positive class (``True``), e.g. "answerable".

    precision = TP / (TP + FP), recall = TP / (TP + FN). A zero denominator
    (nothing predicted positive, or no actual positive) gives 0.0 -- the same
    convention as scikit-learn's ``zero_division=0``, so an empty input is
    (0.0, 0.0). Raises ``ValueError`` when the lengths differ.
    """
    if len(predicted) != len(actual):
        raise ValueError(f"length mismatch: {len(predicted)} predictions, {len(actual)} labels")
    tp = sum(1 for p, a in zip(predicted, actual) if p and a)
    fp = sum(1 for p, a in zip(predicted, actual) if p and not a)
    fn = sum(1 for p, a in zip(predicted, actual) if not p and a)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall; 0.0 when both are 0."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# --- the verdict (issue 12): ranking quality of a confidence, and what a threshold keeps -------------------


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative.

    Ties between a positive and a negative count as half (the Mann-Whitney U statistic over all pairs,
    computed from ranks with ties averaged). Raises ``ValueError`` when the lengths differ or when either
    class is missing (the area is undefined then).
    """
    if len(scores) != len(labels):
        raise ValueError(f"length mismatch: {len(scores)} scores, {len(labels)} labels")
    n_pos = sum(1 for y in labels if y)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # 1-based average rank of the tie group
        i = j + 1
    positive_rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def kept_rate(predicted_answerable: Iterable[bool]) -> float:
    """Share of questions let through (predicted answerable); 0.0 for none."""
    return mean(1.0 if p else 0.0 for p in predicted_answerable)


def refused_rate(predicted_answerable: Iterable[bool]) -> float:
    """Share of questions turned away (predicted not answerable); 0.0 for none."""
    return mean(0.0 if p else 1.0 for p in predicted_answerable)
