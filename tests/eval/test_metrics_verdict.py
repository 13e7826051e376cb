"""The verdict metrics in eval.metrics: AUROC (ties count half) and kept/refused rates, on hand-worked examples."""

import random

import pytest

from eval.metrics import auroc, kept_rate, refused_rate


def brute_force_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


def test_hand_worked_examples():
    assert auroc([0.9, 0.8, 0.7, 0.6], [True, False, True, False]) == 0.75  # pairs: 0.9>0.8, 0.9>0.6, 0.7>0.6; 0.7<0.8
    assert auroc([0.1, 0.9], [False, True]) == 1.0
    assert auroc([0.1, 0.9], [True, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert auroc([0.5, 0.5, 0.2], [True, False, False]) == 0.75  # (0.5 tie + 1 win) / 2 pairs
    assert auroc([1, 1, 1, 1], [True, True, False, False]) == 0.5


def test_matches_sklearn_or_the_pairwise_count_with_ties():
    rng = random.Random(7)
    for _ in range(50):
        n = rng.randint(2, 40)
        labels = [rng.random() < 0.5 for _ in range(n)]
        labels[0], labels[1] = True, False
        scores = [round(rng.random(), 1) for _ in range(n)]  # one decimal: many ties
        expected = brute_force_auroc(scores, labels)
        assert auroc(scores, labels) == pytest.approx(expected)
        try:
            from sklearn.metrics import roc_auc_score
        except ImportError:
            continue
        assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_undefined_without_both_classes_or_with_mismatched_lengths():
    with pytest.raises(ValueError):
        auroc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError):
        auroc([], [])
    with pytest.raises(ValueError):
        auroc([0.1], [True, False])


def test_kept_and_refused_rates():
    assert kept_rate([True, True, False, True]) == 0.75
    assert refused_rate([True, True, False, True]) == 0.25
    assert kept_rate([]) == 0.0 and refused_rate([]) == 0.0
    assert refused_rate(iter([False, False])) == 1.0
