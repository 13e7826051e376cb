"""Encoders: which encoder embeds questions and which builds the index, and the ONNX fast path's lifecycle.

`Encoders` is the one provider the service asks for encoders (tests inject one
to share a loaded model across services). It loads each encoder on first use:

- `reference()`: sentence-transformers (rag.encoding.torch_encoder), the yardstick;
- `builder()`: what builds indexes: the verified fp32 ONNX export,
  length-bucketed (rag.encoding.build_encoder), for the packaged model; else the reference;
- `query()`: what embeds questions. For the packaged default model that is the
  verified ONNX export run by onnxruntime (rag.encoding.onnx_encoder), in the precision
  set by `query_precision` (int8 by default: rag.encoding.quantize, gated on retrieval
  quality by eval.encoder_gate; fp32 by setting), unless `encoder=torch`; any
  other model uses sentence-transformers.

The ONNX export is a build artifact cached under `encoder_dir`, named by the
weights it came from, with a sidecar holding its sha256; it is accepted only
after it agrees with sentence-transformers (cosine >= 0.999 on fixed texts),
and re-made when the sidecar does not match.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from rag.encoding.batching import BatchingEncoder
from rag.encoding.torch_encoder import QuestionEmbedding, SentenceTransformerEncoder
from rag.errors import ModelError
from rag.encoding.model import ModelSpec, file_sha256, is_default_model

log = logging.getLogger(__name__)

ONNX_CHECK_TEXTS = (
    "Why did Trotsky think the bourgeoisie could not lead?",
    "a",
    "The theory of the permanent revolution was put to the test by new revolutionary uprisings in the mid-20th century. " * 12,
)


def onnx_path(encoder_dir: Path, spec: ModelSpec) -> Path:
    """Where the exported query model for `spec` lives: a build artifact, named by the weights it came from."""
    return Path(encoder_dir) / f"{(spec.weights_sha256 or 'unknown')[:16]}.onnx"


def ensure_onnx(encoder_dir: Path, spec: ModelSpec, reference=None) -> Path:
    """The verified ONNX export of the default model, exporting (and checking) it first if needed.

    `reference` is a function returning the sentence-transformers encoder; it is called only when
    an export has to be made and checked.
    A sidecar `<name>.onnx.json` records the export's sha256 and the weights it came from; a file
    that does not match is exported again. The export is compared with sentence-transformers
    (cosine >= 0.999 on fixed texts) before it is accepted.
    """
    from rag.encoding.onnx_encoder import OnnxEncoder, export_onnx

    path = onnx_path(encoder_dir, spec)
    meta_path = path.with_name(path.name + ".json")
    try:
        meta = json.loads(meta_path.read_text())
        if meta["weights_sha256"] == spec.weights_sha256 and meta["sha256"] == file_sha256(path):
            return path
    except (OSError, ValueError, KeyError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(spec.local_dir, path)
    reference = reference() if reference else SentenceTransformerEncoder(spec)
    expected = reference.encode(list(ONNX_CHECK_TEXTS))
    got = OnnxEncoder(path, spec.local_dir, max_seq_length=reference.max_seq_length).encode(list(ONNX_CHECK_TEXTS))
    worst = float(np.min(np.sum(expected * got, axis=1)))
    if worst < 0.999:
        path.unlink(missing_ok=True)
        raise ModelError(f"the ONNX export disagrees with sentence-transformers (cosine {worst:.4f}); not using it")
    tmp = meta_path.with_name(meta_path.name + ".tmp")
    tmp.write_text(json.dumps({"weights_sha256": spec.weights_sha256, "sha256": file_sha256(path), "min_cosine": worst}))
    os.replace(tmp, meta_path)
    return path


class OnnxQueryEncoder:
    """The fast query path (rag.encoding.onnx_encoder) with the same attributes as the reference encoder."""

    def __init__(self, spec: ModelSpec, path: Path, max_seq_length: int = 256, precision: str = "fp32"):
        from rag.encoding.onnx_encoder import OnnxEncoder

        self.spec = spec
        self.kind = "onnx"
        self.precision = precision  # "fp32" or a variant verified by rag.encoding.quantize and gated by eval.encoder_gate
        self.max_seq_length = max_seq_length
        self._encoder = OnnxEncoder(path, spec.local_dir, max_seq_length=max_seq_length, token_states=True)
        self.dimension = self._encoder.dim

    def encode(self, texts: list[str], progress: bool = False, batch_size: int = 32) -> np.ndarray:
        return self._encoder.encode(list(texts))

    def embed_questions(self, texts: list[str]) -> list[QuestionEmbedding]:
        return self._encoder.embed_questions(list(texts))

    def embed_question(self, question: str) -> QuestionEmbedding:
        return self._encoder.embed_questions([question])[0]


class Encoders:
    """Loads, once each and on first use, the encoders for one model (thread-safe)."""

    def __init__(
        self, spec: ModelSpec, encoder: str = "auto", encoder_dir: Path | None = None, device: str = "cpu", precision: str = "int8"
    ):
        self.spec = spec
        self.encoder_setting = encoder
        self.encoder_dir = Path(encoder_dir) if encoder_dir else None
        self.device = device
        self.precision = precision
        self._lock = threading.Lock()
        self._query_lock = threading.Lock()
        self._builder_lock = threading.Lock()
        self._reference: SentenceTransformerEncoder | None = None
        self._builder = None
        self._query = None

    @classmethod
    def from_settings(cls, settings, spec: ModelSpec) -> "Encoders":
        return cls(spec, settings.encoder, settings.encoder_dir, settings.device, settings.query_precision)

    def with_query_encoder(self, encoder: str, precision: str | None = None) -> "Encoders":
        """A provider for the same model with another query encoder choice, sharing the loaded reference encoder."""
        other = Encoders(self.spec, encoder, self.encoder_dir, self.device, precision or self.precision)
        other._reference = self._reference
        other._builder = self._builder
        return other

    def builder(self):
        """The encoder that builds indexes (rag.encoding.build_encoder): the fp32 ONNX export, length-bucketed, for the
        default model; sentence-transformers otherwise."""
        from rag.encoding.build_encoder import build_encoder

        with self._builder_lock:
            if self._builder is None:
                self._builder = build_encoder(self.encoder_setting, self.spec, self.encoder_dir, self.reference)
            return self._builder

    def reference(self) -> SentenceTransformerEncoder:
        """The sentence-transformers encoder (builds indexes)."""
        with self._lock:
            if self._reference is None:
                self._reference = SentenceTransformerEncoder(self.spec, self.device)
            return self._reference

    def query(self):
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
                    from rag.encoding.quantize import ensure_quantized

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
