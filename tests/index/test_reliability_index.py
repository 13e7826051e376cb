"""The index under faults: corruption, SIGKILL during a rebuild, a full disk, planted pickles, leftovers.

Every test here works on a small corpus (two sections of the article) so an
index builds in about a second; the properties do not depend on its size.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import gc
import io
import json
import os
import pickle
import queue
import random
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import rag.index.store
import rag.service
from rag.config import PROJECT_ROOT
from rag.errors import IndexCorrupt, IndexProblem, IndexStale
from rag.index.store import MANIFEST, load_index
from rag.service import Service
from tests.reliability_support import (
    EXTRA_PARAGRAPH,
    copy_index,
    index_files,
    manifest,
    resign,
    settings_for,
    write_tiny_seeds,
)

pytestmark = pytest.mark.slow  # live servers, subprocesses, browsers or whole-set runs: `make test`, not `make test-fast`

FINGERPRINT_KEYS = ("format_version", "model", "chunker", "embedding_text", "ann", "lexical", "corpus_sha256")
QUESTIONS = ("lighthouse keeper counting zebras", "What did Trotsky observe about foreign capital?", "Mensheviks feudal economy")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoders):
    """A pristine small index: (seeds, index_dir, manifest)."""
    root = tmp_path_factory.mktemp("tiny")
    seeds = write_tiny_seeds(root / "seeds")
    Service.open(settings_for(seeds, root / "index"), encoders)
    return seeds, root / "index", manifest(root / "index")


def answers(service: Service) -> dict:
    return {q: [h.passage.id for h in service.query(service.parse(q, 3, "hybrid")).hits] for q in QUESTIONS}


# --- corruption ----------------------------------------------------------------------------

CORRUPTION_SCRIPT = textwrap.dedent(
    """
    import json, random, shutil, sys
    from pathlib import Path
    from rag.errors import IndexProblem
    from rag.index.store import load_index
    from tests.reliability_support import manifest, resign

    pristine, work, expected_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    expected = json.loads(expected_path.read_text())
    original = manifest(pristine)
    rng = random.Random(20240605)
    results = []

    def attempt(kind, key, mutate, resigned=False):
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(pristine, work)
        name = "manifest.json" if key == "manifest" else original["files"][key]["name"]
        path = work / name
        data = mutate(path.read_bytes())
        if resigned:
            resign(work, key, data)
        else:
            path.write_bytes(data)
        try:
            loaded = load_index(work, expected)
            outcome = "same" if loaded.manifest == original and not resigned else "loaded"
            message = ""
        except IndexProblem as exc:
            outcome, message = type(exc).__name__, str(exc)
        results.append({"kind": kind, "key": key, "resigned": resigned, "outcome": outcome, "message": message})

    def flip(position, mask):
        def mutate(data):
            data = bytearray(data)
            data[position % len(data)] ^= mask
            return bytes(data)
        return mutate

    for key in ("manifest", "vectors", "passages", "sentences"):
        size = (pristine / ("manifest.json" if key == "manifest" else original["files"][key]["name"])).stat().st_size
        for offset in sorted({0, 1, 8, 64, 128, size // 3, size // 2, size - 2, size - 1}):
            attempt(f"truncate@{offset}", key, lambda d, o=offset: d[:o])
        for _ in range(12):
            attempt("flip", key, flip(rng.randrange(size), rng.randrange(1, 256)))
    # A manifest re-signed over bad files (forgery, not corruption): the parsers must still refuse, not crash.
    for key in ("vectors", "sentences", "passages"):
        size = len((pristine / original["files"][key]["name"]).read_bytes())
        for offset in sorted({0, 4, 16, 100, size // 2, size - 1}):
            attempt(f"truncate@{offset}", key, lambda d, o=offset: d[:o], resigned=True)
        for _ in range(12):
            attempt("flip-header", key, flip(rng.randrange(min(size, 128)), rng.randrange(1, 256)), resigned=True)
    print(json.dumps(results))
    """
)


def test_truncated_or_flipped_index_files_are_refused_and_never_crash_the_reader(tiny, tmp_path):
    """Each file (and the manifest): truncations at several offsets and random byte flips, loaded in a
    subprocess so a crash in FAISS or numpy would show as a signal, not kill pytest."""
    _, pristine, original = tiny
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({k: original[k] for k in FINGERPRINT_KEYS}))
    run = subprocess.run(
        [sys.executable, "-c", CORRUPTION_SCRIPT, str(pristine), str(tmp_path / "work"), str(expected)],
        capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT,
    )
    assert run.returncode == 0, f"the loader crashed (exit {run.returncode}): {run.stderr[-3000:]}"
    results = json.loads(run.stdout.strip().splitlines()[-1])
    plain = [r for r in results if not r["resigned"]]
    tally = collections.Counter((r["resigned"], r["outcome"]) for r in results)
    print(f"\ncorruption: {len(results)} variants loaded in a subprocess (exit 0): "
          + ", ".join(f"{'re-signed ' if k[0] else ''}{k[1]} {v}" for k, v in sorted(tally.items())))
    assert len(plain) >= 4 * (12 + 7)
    for r in plain:
        # refused with a reason, or (manifest only) a flip that left the same JSON document, e.g. "\n" -> "\r"
        assert r["outcome"] in ("IndexCorrupt", "IndexStale") or (r["key"] == "manifest" and r["outcome"] == "same"), r
        if r["key"] != "manifest":
            assert "does not match its manifest checksum" in r["message"], r
    assert sum(r["outcome"] == "same" for r in plain) <= 3
    forged = [r for r in results if r["resigned"]]
    for r in forged:
        if r["kind"].startswith("truncate"):
            assert r["outcome"] == "IndexCorrupt", r
        else:
            assert r["outcome"] in ("IndexCorrupt", "loaded"), r  # a flip in float data may parse; it never crashes


@pytest.mark.parametrize(
    ("key", "mutation"),
    [("manifest", "truncate"), ("vectors", "flip"), ("passages", "truncate"), ("sentences", "flip")],
)
def test_corrupted_index_is_rebuilt_at_startup_or_refused(tiny, tmp_path, encoders, key, mutation):
    seeds, pristine, original = tiny
    index = copy_index(pristine, tmp_path / "index")
    path = index / (MANIFEST if key == "manifest" else original["files"][key]["name"])
    data = bytearray(path.read_bytes())
    if mutation == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))

    with pytest.raises(IndexProblem, match="refusing to serve it") as refused:
        Service.open(settings_for(seeds, index, auto_build=False), encoders)
    assert isinstance(refused.value.__cause__, (IndexCorrupt, IndexStale))
    service = Service.open(settings_for(seeds, index), encoders)  # auto_build: rebuilt from the sources
    assert service.snapshot.index.id == original["id"]  # same content, same id
    assert load_index(index, None).id == original["id"]
    assert not [n for n in index_files(index) if n.startswith(".tmp-")]


# --- SIGKILL during a rebuild ----------------------------------------------------------------

HARNESS = Path(__file__).resolve().parents[1] / "reliability_kill_harness.py"
KILLS = 16
SLOW_WRITE_SECONDS = 0.04


class Harness:
    def __init__(self, log: Path):
        self.log = open(log, "wb")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAG_LOG_LEVEL": "ERROR"}
        self.process = subprocess.Popen(
            [sys.executable, str(HARNESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            cwd=PROJECT_ROOT, env=env, text=True, bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("READY", timeout=90)

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, word: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {word} from the kill harness in {timeout}s")
            try:
                parts = self.lines.get(timeout=remaining).split()
            except queue.Empty:
                continue
            if parts and parts[0] == word:
                return parts[1:]

    def run(self, index: Path, seeds: Path, slow: float) -> int:
        self.process.stdin.write(f"RUN {index} {seeds} {slow}\n")
        self.process.stdin.flush()
        return int(self.expect("PID", timeout=30)[0])

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def test_sigkill_at_random_moments_of_a_rebuild_leaves_the_old_or_the_new_index(tmp_path, encoders):
    """`rag index --force` (the real CLI, in forked children) killed with SIGKILL at random moments,
    KILLS times: half uniformly over the whole run, half inside the write phase (slowed down so the
    kill lands between any two of its steps). After each kill the next start serves the complete old
    or the complete new index, answers exactly as that version does, and leaves no temp file."""
    old_seeds = write_tiny_seeds(tmp_path / "old-seeds")
    new_seeds = write_tiny_seeds(tmp_path / "new-seeds", extra=EXTRA_PARAGRAPH)
    pristine = tmp_path / "pristine"
    old = Service.open(settings_for(old_seeds, pristine), encoders)
    reference = {old.snapshot.index.id: answers(old)}
    rng = random.Random(5)
    harness = Harness(tmp_path / "harness.log")
    try:
        work = copy_index(pristine, tmp_path / "work")
        started = time.monotonic()
        pid = harness.run(work, new_seeds, 0)
        harness.expect("WRITING", timeout=60)
        written = time.monotonic()
        assert harness.expect("EXIT", timeout=60) == [str(pid), "0"], (tmp_path / "harness.log").read_text()[-3000:]
        full_run, write_phase = time.monotonic() - started, time.monotonic() - written
        new = Service.open(settings_for(new_seeds, copy_index(work, tmp_path / "new"), auto_build=False), encoders)
        reference[new.snapshot.index.id] = answers(new)
        assert len(reference) == 2 and reference[new.snapshot.index.id] != reference[old.snapshot.index.id]
        # the slowed write phase: 4 files x (fsync + rename + directory fsync) plus loading afterwards
        slow_write_phase = write_phase + 12 * SLOW_WRITE_SECONDS

        outcomes = {"old": 0, "new": 0}
        killed_mid_write = 0
        for i in range(KILLS):
            work = copy_index(pristine, tmp_path / "work")
            in_write_phase = i % 2 == 1
            pid = harness.run(work, new_seeds, SLOW_WRITE_SECONDS if in_write_phase else 0)
            if in_write_phase:
                harness.expect("WRITING", timeout=60)
                time.sleep(rng.uniform(0, slow_write_phase))
            else:
                time.sleep(rng.uniform(0, full_run))
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            status = int(harness.expect("EXIT", timeout=60)[1])
            leftovers = {n for n in os.listdir(work)} - {MANIFEST, ".lock"} - {f["name"] for f in manifest(work)["files"].values()}
            killed_mid_write += bool(leftovers)

            loaded = load_index(work, None)  # never raises: the current manifest and its files are complete
            assert loaded.id in reference, f"kill {i}: serving an index that is neither old nor new"
            seeds = old_seeds if loaded.id == old.snapshot.index.id else new_seeds
            service = Service.open(settings_for(seeds, work, auto_build=False), encoders)  # the next start
            assert service.snapshot.index.id == loaded.id
            assert answers(service) == reference[loaded.id], f"kill {i}: answers differ from that version's"
            remaining = set(index_files(work))
            assert not [n for n in remaining if n.startswith(".tmp-")], f"kill {i}: temp files left: {remaining}"
            assert remaining == {MANIFEST} | {f["name"] for f in manifest(work)["files"].values()}
            outcomes["old" if loaded.id == old.snapshot.index.id else "new"] += 1
            assert status in (0, -9)
        print(f"\nSIGKILL x{KILLS}: {outcomes}, {killed_mid_write} left partial files (cleaned at the next start); "
              f"full run {full_run:.1f}s, write phase {write_phase:.2f}s")
        assert outcomes["old"] + outcomes["new"] == KILLS
        assert killed_mid_write >= 1, "no kill landed inside the write phase; the test proved less than it claims"
    finally:
        harness.close()


# --- a full disk -----------------------------------------------------------------------------


def _failing(real, fail_at: int, counter: list[int], error: int = errno.ENOSPC):
    def call(*args, **kwargs):
        counter[0] += 1
        if counter[0] == fail_at:
            raise OSError(error, os.strerror(error))
        return real(*args, **kwargs)

    return call


@pytest.mark.parametrize(
    ("step", "fail_at"),
    # 4 files are written (3 data files, then the manifest), each fsynced, renamed, then the directory fsynced:
    # fsync #7 is the manifest's own (before its rename). #8, after the rename, is not a "failed write".
    [("write", 1), ("write", 2), ("write", 3), ("write", 4), ("fsync", 1), ("fsync", 2), ("fsync", 5), ("fsync", 7)],
)
def test_a_failed_write_leaves_the_old_index_served_and_untouched(tiny, tmp_path, encoders, monkeypatch, step, fail_at):
    """Disk full (ENOSPC on the Nth file write) or an I/O error on the Nth fsync during a forced rebuild:
    the rebuild fails with a clear IndexProblem, the old index's files are byte-identical, no temp file is
    left, and the running service keeps answering from the old index."""
    seeds, pristine, original = tiny
    index = copy_index(pristine, tmp_path / "index")
    service = Service.open(settings_for(seeds, index, auto_build=False), encoders)
    before = index_files(index)
    counter = [0]
    if step == "write":
        real_open = open

        class FailingFile:  # the Nth file written fails, like a full disk
            def __init__(self, handle):
                self.handle = handle
                self.write = _failing(handle.write, fail_at, counter)

            def __getattr__(self, name):
                return getattr(self.handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self.handle.__exit__(*exc)

        def failing_open(path, mode="r", *args, **kwargs):
            handle = real_open(path, mode, *args, **kwargs)
            return FailingFile(handle) if "w" in mode else handle

        monkeypatch.setattr(rag.index.store, "open", failing_open, raising=False)
    else:

        class FailingOS:
            fsync = staticmethod(_failing(os.fsync, fail_at, counter, errno.EIO))

            def __getattr__(self, name):
                return getattr(os, name)

        monkeypatch.setattr(rag.index.store, "os", FailingOS())
    with pytest.raises(IndexProblem, match="cannot write the index"):
        service.reload(force=True)
    monkeypatch.undo()
    assert index_files(index) == before
    assert service.snapshot.index.id == original["id"]
    assert service.query(service.parse("Trotsky", 1)).hits
    assert load_index(index, None).id == original["id"]


def test_a_real_full_disk_leaves_the_old_index(tiny, tmp_path, encoders):
    """The same on a real, small tmpfs filled up to leave less room than a second copy of the index needs."""
    seeds, pristine, original = tiny
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        total = sum((pristine / f["name"]).stat().st_size for f in original["files"].values())
        for room in (total // 4, total // 2, total - 8192):
            index = copy_index(pristine, mount / "index")
            service = Service.open(settings_for(seeds, index, auto_build=False), encoders)
            before = index_files(index)
            stat = os.statvfs(mount)
            filler = stat.f_bavail * stat.f_frsize - room
            with open(mount / "filler", "wb") as f:
                f.truncate(0)
                f.write(b"\0" * max(filler, 0))
            with pytest.raises(IndexProblem, match="No space left on device"):
                service.reload(force=True)
            assert index_files(index) == before, f"room {room}: the old index changed"
            assert service.query(service.parse("Trotsky", 1)).hits
            # the next round measures the free room: this round's memory-mapped files must be released first, not
            # by a garbage collection in the middle of the next reload (that frees room and lets it succeed)
            del service
            gc.collect()
            (mount / "filler").unlink()
            shutil.rmtree(index)
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)  # lazy: a memory-mapped index file may still be open


# --- no code-executing formats ----------------------------------------------------------------


class Planted:
    marker: str = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this creates the marker file


@pytest.mark.parametrize("key", ["sentences", "vectors", "passages"])
def test_a_planted_pickle_is_never_executed(tiny, tmp_path, encoders, key):
    """A pickle in place of an index file, with a manifest re-signed to vouch for it: refused as
    IndexCorrupt, and its payload (create a marker file) never runs."""
    seeds, pristine, _ = tiny
    index = copy_index(pristine, tmp_path / "index")
    marker = tmp_path / "PWNED"
    payload = Planted()
    payload.marker = str(marker)
    if key == "sentences":  # an object array in .npy form: what np.load(allow_pickle=True) would execute
        buffer = io.BytesIO()
        np.save(buffer, np.array([payload, payload], dtype=object), allow_pickle=True)
        data = buffer.getvalue()
    else:
        data = pickle.dumps(payload)
    resign(index, key, data)
    with pytest.raises(IndexCorrupt):
        load_index(index, None)
    with pytest.raises(IndexProblem):
        Service.open(settings_for(seeds, index, auto_build=False), encoders)
    assert not marker.exists(), "the planted pickle was executed"
    if key == "sentences":
        np.load(io.BytesIO(data), allow_pickle=True)
    else:
        pickle.loads(data)
    assert marker.exists()  # the payload is live: the test would have caught its execution


def test_no_load_path_uses_a_code_executing_format():
    """Source check: nothing in rag/ or api/ unpickles (pickle, joblib, torch.load, allow_pickle=True, eval)."""
    forbidden = [r"import pickle", r"from pickle", r"joblib", r"torch\.load", r"allow_pickle=True", r"marshal", r"shelve",
                 r"(?<![\w.])eval\(", r"(?<![\w.])exec\("]  # builtin eval/exec, not model.eval() or cmd_eval(
    for path in sorted([*(PROJECT_ROOT / "rag").glob("*.py"), *(PROJECT_ROOT / "api").glob("*.py")]):
        text = path.read_text(encoding="utf-8")
        found = [f for f in forbidden if re.search(f, text)]
        assert not found, f"{path.name} uses {found}"


# --- leftovers ----------------------------------------------------------------------------------


def test_leftovers_of_an_interrupted_build_are_removed_at_start_but_not_during_a_build(tiny, tmp_path, encoders):
    seeds, pristine, original = tiny
    index = copy_index(pristine, tmp_path / "index")
    strays = [".tmp-1234abcd-vectors-deadbeef.faiss", "vectors-deadbeef0000.faiss", "sentences-deadbeef0000.npy"]
    for name in strays:
        (index / name).write_bytes(b"partial")
    with open(index / ".lock", "w") as lock:  # another process is building: its files are not ours to remove
        fcntl.flock(lock, fcntl.LOCK_EX)
        Service.open(settings_for(seeds, index, auto_build=False), encoders)
        assert all((index / name).exists() for name in strays)
        fcntl.flock(lock, fcntl.LOCK_UN)
    Service.open(settings_for(seeds, index, auto_build=False), encoders)
    assert set(index_files(index)) == {MANIFEST} | {f["name"] for f in original["files"].values()}
