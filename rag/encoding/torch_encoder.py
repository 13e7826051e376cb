"""The reference encoder: sentence-transformers (torch), normalised embeddings.

The encoder builds indexes and is the yardstick the ONNX fast path
(rag.encoding.onnx_encoder, chosen in rag.encoding.encoders) is checked against. Rows are float32
of unit length, so inner product is cosine similarity.

`embed_questions` gives each question's word pieces too (rag.encoding.base.QuestionEmbedding)
when the model's sentence vector is their mean: not for CLS pooling, a Dense layer, a prompt
(`mean_pools_word_pieces`) or a tokenizer without character spans, which give the vector alone;
the verdict then embeds the masked text instead, with its own model (rag.query.verdict.MODEL_REEMBEDDED).
"""

from __future__ import annotations

import os

import numpy as np

from rag.encoding.base import Encoder, QuestionEmbedding
from rag.encoding.cpus import usable_cores
from rag.errors import ModelError
from rag.encoding.model import ModelSpec


def mean_pools_word_pieces(model) -> bool:
    """Whether a SentenceTransformer's sentence vector is the (normalised) mean of its word pieces' output
    vectors and nothing else: Transformer, mean Pooling, optionally Normalize, and no prompt added to the text.
    Only then can a subset of the pieces stand for a part of the question (CLS pooling, a Dense layer or a
    prompt's extra tokens would each break that)."""
    kinds = [type(module).__name__ for module in model._modules.values()]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return False
    mode = getattr(model[1], "pooling_mode", None)
    if mode is None:  # older sentence-transformers: one flag per mode
        mode = "mean" if getattr(model[1], "pooling_mode_mean_tokens", False) and not getattr(model[1], "pooling_mode_cls_token", False) else None
    prompt = (getattr(model, "prompts", None) or {}).get(getattr(model, "default_prompt_name", None) or "", "")
    return mode in ("mean", ["mean"]) and not prompt


def _threads_within_quota() -> None:
    """torch's CPU threads at most the cores this process may use (rag.encoding.cpus): torch counts the host's cores,
    so in a container given two cores' worth of a large host it would start dozens of threads that wait on each other."""
    import torch

    usable = usable_cores()
    if torch.get_num_threads() > usable:
        torch.set_num_threads(usable)


class SentenceTransformerEncoder(Encoder):
    """The reference encoder: sentence-transformers, normalized embeddings."""

    def __init__(self, spec: ModelSpec, device: str = "cpu"):
        if spec.local_dir:  # a model on disk never needs the hub
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every start
            _threads_within_quota()
            self.model = SentenceTransformer(spec.location, device=device)
        except Exception as exc:  # any load failure becomes one clear message
            raise ModelError(f"cannot load embedding model {spec.location!r}: {exc}") from exc
        self.spec = spec
        self.kind = "torch"
        self.dimension = int(self.model.get_embedding_dimension())
        self.max_seq_length = int(self.model.max_seq_length)
        self._tokenizer = self.model.tokenizer
        self._pools_word_pieces = mean_pools_word_pieces(self.model) and bool(getattr(self._tokenizer, "is_fast", False))

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without the [CLS]/[SEP] the model adds. Counting a text longer than the model's
        window is what the chunker does to cut it, so transformers' "will result in indexing errors" warning
        (meant for feeding such a text to the model) is turned off here."""
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])

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

    def embed_questions(self, texts: list[str]) -> list[QuestionEmbedding]:
        """Sentence vectors and word-piece vectors of each text in one forward pass (see QuestionEmbedding); the
        vectors alone for a model whose sentence vector is not the mean of its word pieces (see
        `mean_pools_word_pieces`) or whose tokenizer gives no character spans."""
        if not self._pools_word_pieces:
            return [QuestionEmbedding(v) for v in self.encode(texts)]
        outputs = self.model.encode(list(texts), output_value=None, convert_to_numpy=False)
        embedded = []
        for text, out in zip(texts, outputs):
            spans = self._tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=self.max_seq_length)["offset_mapping"]
            vector = out["sentence_embedding"].float().cpu().numpy().astype(np.float32)
            vector /= max(float(np.linalg.norm(vector)), 1e-12)  # `normalize_embeddings` is ignored with output_value=None
            tokens = out["token_embeddings"].float().cpu().numpy()[: len(spans)]
            if tokens.shape != (len(spans), self.dimension):  # not one row per piece of this text: no pooling from it
                embedded.append(QuestionEmbedding(vector))
                continue
            embedded.append(QuestionEmbedding(vector, tokens, tuple(map(tuple, spans))))
        return embedded

