"""Statistics over per-question scores: pure functions for comparing two systems and rating a confidence.

`paired_randomization_test` is the two-sided paired permutation test IR papers use to compare two
systems on the same questions (Smucker, Allan and Carterette 2007): swap each question's pair of
scores at random and count how often the mean difference is at least as large as the one observed.
`wins_losses` counts the questions each side wins. `auroc` says how well a confidence separates
two classes (answerable vs not): 0.5 is chance, ties count one half. No I/O, no model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from eval import metrics


def paired_randomization_test(a: Sequence[float], b: Sequence[float], rounds: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that systems with per-question scores `a` and `b` have the same mean.

    Each round flips the sign of every question's difference with probability 1/2; the p-value is
    (1 + rounds with |mean| >= observed) / (1 + rounds), never 0. Identical scores give 1.0.
    Raises ValueError on different lengths.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b) if x != y]
    if not diffs:
        return 1.0
    n = len(a)
    observed = abs(sum(diffs)) / n - 1e-12  # tolerance: float sums of the same terms in another order
    rng = random.Random(seed)
    extreme = 0
    for _ in range(rounds):
        total = sum(d if rng.random() < 0.5 else -d for d in diffs)
        if abs(total) / n >= observed:
            extreme += 1
    return (1 + extreme) / (1 + rounds)


def wins_losses(a: Sequence[float], b: Sequence[float]) -> dict[str, int]:
    """How many questions `a` scores higher than `b` on (wins), lower (losses), the same (ties)."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    wins = sum(1 for x, y in zip(a, b) if x > y)
    losses = sum(1 for x, y in zip(a, b) if x < y)
    return {"wins": wins, "losses": losses, "ties": len(a) - wins - losses}


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` for the positive class (eval.metrics.auroc); None unless both
    classes occur, so a report over a question set without unanswerable questions simply has no AUROC."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels")
    if all(labels) or not any(labels):
        return None
    return metrics.auroc(scores, labels)
