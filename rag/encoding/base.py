"""What every encoder is (`Encoder`), and what the query path gets from one forward pass (`QuestionEmbedding`).

The service has several encoders of one model: sentence-transformers (the reference, torch), the fp32 ONNX
export for builds, the int8 ONNX variant for questions, and the micro-batcher around the query one. They
share this declared base class rather than an implied interface: `kind` ("torch" or "onnx"), `precision`,
`spec`, `dimension`, `max_seq_length`, `encode(texts)` giving unit-length float32 rows (so inner product is
cosine similarity), and `embed_question(s)`. An encoder that can give its word pieces' output vectors
overrides `embed_questions`; the default gives the sentence vector alone, which the verdict knows how to
handle (it embeds the masked question as text instead: rag.query.verdict).

`QuestionEmbedding` is the sentence vector, and the word pieces' own output vectors with their character
spans. The verdict pools a subset of those pieces to embed "the question without the words the evidence
already holds" without a second forward pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)  # numpy fields: compared by identity
class QuestionEmbedding:
    vector: np.ndarray  # the sentence embedding, unit length
    tokens: np.ndarray | None = None  # (word pieces, dim): the model's last hidden state, before pooling
    spans: tuple[tuple[int, int], ...] = ()  # each word piece's characters in the question; (0, 0) for [CLS]/[SEP]


class Encoder(ABC):
    """One model's text-to-vector function, as the index build and the query path use it."""

    kind: str = "torch"  # "torch" (sentence-transformers) or "onnx" (onnxruntime)
    precision: str = "fp32"  # or a variant verified by rag.encoding.quantize
    spec: object = None  # rag.encoding.model.ModelSpec
    dimension: int = 0
    max_seq_length: int = 256

    @abstractmethod
    def encode(self, texts: Sequence[str], progress: bool = False, batch_size: int = 32, desc: str = "texts") -> np.ndarray:
        """One unit-length float32 row per text."""

    def embed_questions(self, texts: Sequence[str]) -> list[QuestionEmbedding]:
        """Each text's embedding from one forward pass; this default gives the sentence vectors alone."""
        return [QuestionEmbedding(v) for v in self.encode(list(texts))]

    def embed_question(self, question: str) -> QuestionEmbedding:
        return self.embed_questions([question])[0]
