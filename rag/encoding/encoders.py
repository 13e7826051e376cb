"""Encoders: which encoder embeds questions and which builds the index, and the ONNX fast path's lifecycle.

`Encoders` is the one provider the service asks for encoders (tests inject one
to share a loaded model across services). It loads each encoder on first use:

- `reference()`: sentence-transformers (rag.encoding.torch_encoder), the yardstick;
- `builder(precision)`: what builds indexes (rag.encoding.build_encoder), length-bucketed: in "bf16" (the
  default on a CPU with bfloat16 units, `build_precision`) the reference model under torch's CPU autocast; in
  "fp32" the verified ONNX export for the packaged model, else the reference;
- `query()`: what embeds questions. For the packaged default model that is the
  verified ONNX export run by onnxruntime (rag.encoding.onnx_encoder), in the precision
  set by `query_precision` (int8 by default: rag.encoding.quantize, gated on retrieval
  quality by eval.encoder_gate; fp32 by setting), unless `encoder=torch`; any
  other model uses sentence-transformers.

The ONNX export and its int8 variant are build artifacts cached under
`encoder_dir` (rag.encoding.artifacts: made once, verified, re-made when their
sidecar no longer vouches for them; rag.encoding.onnx_encoder.ensure_onnx,
rag.encoding.quantize.ensure_quantized).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from rag.encoding.base import Encoder
from rag.encoding.batching import BatchingEncoder
from rag.encoding.build_encoder import build_encoder, resolve_build_precision
from rag.encoding.model import ModelSpec, is_default_model
from rag.encoding.onnx_encoder import ONNX_CHECK_TEXTS, OnnxQueryEncoder, ensure_onnx
from rag.encoding.quantize import ensure_quantized
from rag.encoding.torch_encoder import SentenceTransformerEncoder
from rag.errors import ModelError

log = logging.getLogger(__name__)

class Encoders:
    """Loads, once each and on first use, the encoders for one model (thread-safe)."""

    def __init__(
        self, spec: ModelSpec, encoder: str = "auto", encoder_dir: Path | None = None, device: str = "cpu", precision: str = "int8",
        build_precision: str = "fp32",
    ):
        self.spec = spec
        self.build_precision = resolve_build_precision(build_precision, device)  # "bf16" or "fp32"
        self.encoder_setting = encoder
        self.encoder_dir = Path(encoder_dir) if encoder_dir else None
        self.device = device
        self.precision = precision
        self._lock = threading.Lock()
        self._query_lock = threading.Lock()
        self._builder_lock = threading.Lock()
        self._reference: SentenceTransformerEncoder | None = None
        self._builders: dict[str, Encoder] = {}
        self._query = None

    @classmethod
    def from_settings(cls, settings, spec: ModelSpec) -> "Encoders":
        return cls(spec, settings.encoder, settings.encoder_dir, settings.device, settings.query_precision, settings.build_precision)

    def with_query_encoder(self, encoder: str, precision: str | None = None) -> "Encoders":
        """A provider for the same model with another query encoder choice, sharing the loaded reference encoder."""
        other = Encoders(self.spec, encoder, self.encoder_dir, self.device, precision or self.precision, self.build_precision)
        other._reference = self._reference
        other._builders = self._builders
        return other

    def builder(self, precision: str | None = None) -> Encoder:
        """The encoder that builds indexes in `precision` ("bf16" or "fp32"; None: this provider's `build_precision`),
        rag.encoding.build_encoder: an index is built in the precision its configuration names (IndexConfig)."""
        precision = precision or self.build_precision
        with self._builder_lock:
            if precision not in self._builders:
                self._builders[precision] = build_encoder(self.encoder_setting, self.spec, self.encoder_dir, self.reference, precision)
            return self._builders[precision]

    def reference(self) -> SentenceTransformerEncoder:
        """The sentence-transformers encoder (builds indexes)."""
        with self._lock:
            if self._reference is None:
                self._reference = SentenceTransformerEncoder(self.spec, self.device)
            return self._reference

    def query(self) -> Encoder:
        """The encoder that embeds questions: ONNX for the default model unless told otherwise.

        'auto' falls back to sentence-transformers (with a warning) if the export cannot be made;
        'onnx' refuses instead; 'torch' always uses sentence-transformers. Any model other than the
        packaged default always uses sentence-transformers.
        """
        with self._query_lock:
            if self._query is None:  # one micro-batcher (rag.encoding.batching) per model, shared by every service using it
                self._query = BatchingEncoder(self._choose_query_encoder())
            return self._query

    def _choose_query_encoder(self):
        if self.encoder_setting != "torch" and is_default_model(self.spec):
            try:
                path = ensure_onnx(self.encoder_dir, self.spec, self.reference)
                if self.precision != "fp32":  # a quantized variant of the verified export (rag.encoding.quantize), gated on quality
                    try:
                        quantized = ensure_quantized(path, self.precision, ONNX_CHECK_TEXTS, self.spec.local_dir)
                        return OnnxQueryEncoder(self.spec, quantized, precision=self.precision)
                    except Exception as exc:  # e.g. an onnxruntime without 8-bit MatMulNBits: the verified fp32 export serves
                        log.warning("%s query model unavailable (%s); using the fp32 export", self.precision, exc)
                return OnnxQueryEncoder(self.spec, path)
            except Exception as exc:
                if self.encoder_setting == "onnx":
                    raise ModelError(f"cannot use the ONNX query encoder: {exc}") from exc
                log.warning("ONNX query encoder unavailable (%s); using sentence-transformers", exc)
        elif self.encoder_setting == "onnx":
            raise ModelError("RAG_ENCODER=onnx works only with the packaged default model")
        return self.reference()
