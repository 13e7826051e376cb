"""The reference encoder: sentence-transformers (torch), normalised embeddings.

It builds indexes and is the yardstick the ONNX fast path (rag.onnx_encoder,
chosen in rag.encoders) is checked against. Rows are float32 of unit length,
so inner product is cosine similarity.
"""

from __future__ import annotations

import os

import numpy as np

from rag.errors import ModelError
from rag.model import ModelSpec


class SentenceTransformerEncoder:
    """The reference encoder: sentence-transformers, normalized embeddings."""

    def __init__(self, spec: ModelSpec, device: str = "cpu"):
        if spec.local_dir:  # a model on disk never needs the hub
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(spec.location, device=device)
        except Exception as exc:  # any load failure becomes one clear message
            raise ModelError(f"cannot load embedding model {spec.location!r}: {exc}") from exc
        self.spec = spec
        self.kind = "torch"
        self.dimension = int(self.model.get_embedding_dimension())
        self.max_seq_length = int(self.model.max_seq_length)
        self._tokenizer = self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without the [CLS]/[SEP] the model adds."""
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: list[str], progress: bool = False, batch_size: int = 32, desc: str = "texts") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
