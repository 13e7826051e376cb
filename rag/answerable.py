"""Whether the documents seem to hold an answer: a two-feature logistic model.

A bi-encoder's similarity alone separates answerable from unanswerable
questions poorly when the unanswerable ones are near the topic ("Who led the
Mensheviks?" asked of an essay that names them). Two signals together do
better: `similarity`, the mean of the best passage cosine and the best sentence
cosine, and `coverage`, the share of the question's content terms (stemmed,
stop words out) that the best of the top three passages contains.

The weights are fitted by `rag eval` on the dev split only (class-balanced
logistic regression, features standardised with the dev means and spreads) and
written here by hand; the test split never sees them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnswerabilityModel:
    mean: tuple[float, float]  # of (similarity, coverage) on the fitting set
    scale: tuple[float, float]
    weights: tuple[float, float]
    bias: float

    def probability(self, similarity: float, coverage: float) -> float:
        z = [(x - m) / s for x, m, s in zip((similarity, coverage), self.mean, self.scale)]
        logit = sum(w * v for w, v in zip(self.weights, z)) + self.bias
        return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))

    def as_dict(self) -> dict:
        return {"mean": self.mean, "scale": self.scale, "weights": self.weights, "bias": self.bias}


def fit(features: list[tuple[float, float]], answerable: list[bool], l2: float = 1.0, steps: int = 3000) -> AnswerabilityModel:
    """Class-balanced, L2-regularised logistic regression by gradient descent (small data, no dependencies)."""
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(answerable, dtype=np.float64)
    if len(X) == 0 or y.min() == y.max():
        raise ValueError("fitting needs both answerable and unanswerable questions")
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = np.c_[(X - mean) / scale, np.ones(len(X))]
    weight = np.where(y == 1, 1.0, (y == 1).sum() / (y == 0).sum())
    w = np.zeros(Z.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(Z @ w)))
        grad = Z.T @ ((p - y) * weight) / len(y) + l2 * np.r_[w[:-1], 0.0] / len(y)
        w -= grad
    r = lambda v: round(float(v), 4)  # noqa: E731
    return AnswerabilityModel((r(mean[0]), r(mean[1])), (r(scale[0]), r(scale[1])), (r(w[0]), r(w[1])), r(w[2]))


# Fitted with `rag eval` on the dev split (see eval/results/eval.json, "answerability_fit_on_dev").
DEFAULT_MODEL = AnswerabilityModel(mean=(0.5349, 0.5385), scale=(0.1181, 0.2044), weights=(1.0593, 0.9577), bias=0.754)
