"""The answerability model: a small class-balanced logistic regression over N features.

It owns the model and its fitting, nothing else: which features go in and what
the probability is used for live in rag.query.verdict. Features are standardised with
the fitting set's means and spreads; the weights are fitted on the dev split
only (`rag eval` refits and prints them) and written in code by hand, so the
test split never sees them.

History: the first model had two features (`similarity`, the mean of the best
passage and best sentence cosines, and `coverage`, the share of question terms
in the best of the top three passages); rag.query.verdict's model replaced it (issue
12): three features first, two since the masked question is pooled from the
question's word pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnswerabilityModel:
    mean: tuple[float, ...]  # of each feature on the fitting set
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def probability(self, *features: float) -> float:
        if len(features) != len(self.weights):
            raise ValueError(f"the model takes {len(self.weights)} features, got {len(features)}")
        z = [(x - m) / s for x, m, s in zip(features, self.mean, self.scale)]
        logit = sum(w * v for w, v in zip(self.weights, z)) + self.bias
        return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))

    def as_dict(self) -> dict:
        return {"mean": self.mean, "scale": self.scale, "weights": self.weights, "bias": self.bias}


@dataclass(frozen=True)
class BlendedModel:
    """Two answerability models averaged: `base` reads the leading features (as many as it has weights), `extended`
    all of them; the probability is (1 - weight) x base's + weight x extended's. rag.query.verdict blends the
    bi-encoder model (fitted on the bundled article) with the verified one (fitted mostly on SQuAD), so that neither
    corpus's operating point rules alone."""

    base: AnswerabilityModel
    extended: AnswerabilityModel
    weight: float

    def probability(self, *features: float) -> float:
        leading = features[: len(self.base.weights)]
        return (1.0 - self.weight) * self.base.probability(*leading) + self.weight * self.extended.probability(*features)

    def as_dict(self) -> dict:
        return {"blend": {"base": self.base.as_dict(), "extended": self.extended.as_dict(), "weight": self.weight}}


def fit(features: list[tuple[float, ...]], answerable: list[bool], l2: float = 1.0, steps: int = 3000) -> AnswerabilityModel:
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
    r = lambda values: tuple(round(float(v), 4) for v in values)  # noqa: E731
    return AnswerabilityModel(r(mean), r(scale), r(w[:-1]), round(float(w[-1]), 4))
