"""The encoder that builds indexes: the verified fp32 ONNX export, length-bucketed, with a progress bar.

Index builds embed every passage and every sentence of the corpus. sentence-transformers does that
in torch with batches in input order (padding each batch to its longest text); this module does it
with the fp32 ONNX export that rag.encoding.torch_encoder already verifies against sentence-transformers
(cosine >= 0.999; about 0.999999 in practice, tests/test_build_encoder.py), sorting texts by token
length so batches carry little padding. Builds stay fp32 on purpose: the int8 query variant is gated
on retrieval quality for questions, not for the stored passage vectors.

It also owns the two costs around the forward pass of a build:

* token counting for the chunker: `count_tokens` uses the Rust tokenizer directly and remembers
  its answers (the chunker asks about the same paragraph and growing prefixes again and again);
* progress: `progress_bar` draws one tqdm bar on stderr (files while chunking, then passages and
  sentences while embedding, each with its rate and ETA).

`build_encoder(encoder_setting, spec, encoder_dir, reference)` picks it for the packaged default model unless RAG_ENCODER=torch;
any other model builds with sentence-transformers as before.
"""

from __future__ import annotations

import logging
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer

from rag.encoding.base import Encoder
from rag.encoding.model import is_default_model
from rag.encoding.onnx_encoder import OnnxEncoder, ensure_onnx

log = logging.getLogger(__name__)


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 enabled: bool = True):
    """A tqdm bar on stderr (rate and ETA), or a silent stand-in with the same `update`/iteration when disabled."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, mininterval=0.5)


class OnnxBuildEncoder(Encoder):
    """The build encoder (rag.encoding.base.Encoder), plus `count_tokens(text)` for the chunker."""

    kind = "onnx"

    def __init__(self, spec, onnx_path: Path, max_seq_length: int = 256, threads: int | None = None):
        self.spec = spec
        self.max_seq_length = max_seq_length
        self._encoder = OnnxEncoder(onnx_path, spec.local_dir, max_seq_length=max_seq_length, threads=threads)
        self.dimension = self._encoder.dim
        counter = Tokenizer.from_file(str(Path(spec.local_dir) / "tokenizer.json"))
        counter.no_padding()
        counter.no_truncation()
        self._counter = counter
        self.count_tokens = lru_cache(maxsize=1 << 18)(self._count_tokens)

    def _count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without [CLS]/[SEP] (what the chunker budgets)."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def encode(self, texts: Sequence[str], progress: bool = False, batch_size: int = 128, desc: str = "texts") -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with progress_bar(total=len(texts), desc=f"embedding {desc}", unit=desc.rstrip("s") or "text",
                          enabled=progress) as bar:
            return self._encoder.encode_bucketed(texts, on_batch=bar.update, max_batch=batch_size)


def build_encoder(encoder_setting: str, spec, encoder_dir: Path, reference) -> Encoder:
    """The encoder an index build should use: the fp32 ONNX export for the packaged default model (unless
    RAG_ENCODER=torch, or the export cannot be made and RAG_ENCODER=auto), sentence-transformers otherwise.
    `reference` is a function returning the sentence-transformers encoder (loaded only when needed)."""
    if encoder_setting != "torch" and is_default_model(spec):
        try:
            return OnnxBuildEncoder(spec, ensure_onnx(encoder_dir, spec, reference))
        except Exception as exc:  # auto: fall back to the reference encoder, as the query path does
            if encoder_setting == "onnx":
                raise
            log.warning("ONNX build encoder unavailable (%s); building with sentence-transformers", exc)
    return reference()
