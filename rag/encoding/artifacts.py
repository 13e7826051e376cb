"""The verified-artifact cache: every model file the service makes for itself (the ONNX export, its int8
variant) is made once, checked, and trusted afterwards only while its sidecar still vouches for it.

An artifact is a file plus a sidecar `<file>.json` holding what it was made from (`identity`: the weights'
sha256, the source export's sha256 and recipe, ...), its own sha256, and the check's figure (`min_cosine`).
`ensure_artifact` returns the file when the sidecar matches the identity asked for and the file's hash;
otherwise it makes the file again (`make`), runs `verify` on it (which returns the figure or raises
`ModelError`; a file that fails is deleted), and writes the sidecar last, atomically. A half-written,
edited or outdated file is therefore never used: at worst it is made again.

The file's hash is checked at every start, remembered in the folder's `sha256.json` keyed on the file's whole
stat (`artifact_sha256`, rag.encoding.model.file_sha256): a file written since (its ctime changes) or replaced
(its inode) is hashed again, so an edit is still caught without re-reading ~220 MB each time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from rag.encoding.model import MEMO_FILE, file_sha256
from rag.files import write_atomic


def sidecar(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".json")


def artifact_sha256(path: Path) -> str:
    """The sha256 of an artifact (or of the export it was made from), remembered in its folder's memo."""
    path = Path(path)
    return file_sha256(path, path.parent / MEMO_FILE)


def is_current(path: Path, identity: Mapping) -> bool:
    """Whether `path` exists, its sidecar records `identity`, and the file still has the hash recorded."""
    try:
        meta = json.loads(sidecar(path).read_text())
        return all(meta[k] == v for k, v in identity.items()) and meta["sha256"] == artifact_sha256(path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_artifact(path: Path, identity: Mapping, make: Callable[[Path], None], verify: Callable[[Path], float]) -> Path:
    """`path`, made (`make(path)`) and verified (`verify(path)`, the figure recorded as `min_cosine`) unless
    its sidecar already vouches for it (see the module docstring)."""
    path = Path(path)
    if is_current(path, identity):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    try:
        figure = verify(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    write_atomic(sidecar(path), json.dumps({**identity, "sha256": artifact_sha256(path), "min_cosine": figure}))
    return path
