"""`rag serve --workers N`: several processes serving one built, read-only index.

A tiny index is built once; `rag serve --workers 2` starts with RAG_AUTO_BUILD=false (replicas never
build). Requests over fresh connections land on both workers: each response names its worker's pid
(X-Rag-Worker), and every worker reports the same index id. The index directory is left untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rag.config import PROJECT_ROOT
from rag.service import Service
from tests.reliability_support import free_port, index_files, server_env, settings_for, write_tiny_seeds

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 180
ROUNDS = 40  # rounds of 8 concurrent requests, each on a fresh connection


@pytest.fixture(scope="module")
def built(tmp_path_factory, encoders):
    root = tmp_path_factory.mktemp("workers")
    seeds = write_tiny_seeds(root / "seeds")
    service = Service.open(settings_for(seeds, root / "index"), encoders)
    return seeds, root / "index", service.snapshot.id


def start_workers(seeds, index, log_path, workers: int = 2):
    """`rag serve --workers N` in a subprocess (this checkout's code); returns (process, base URL) once /ready answers."""
    port = free_port()
    env = server_env(seeds, index, PYTHONPATH=str(PROJECT_ROOT))
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"rag serve --workers exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"not ready after {STARTUP_TIMEOUT_S}s: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/ready", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.25)


def stop(process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the supervisor stops its workers gracefully
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the supervisor and its workers only
            process.wait(10)


def fresh_ready(base: str) -> tuple[str, str, int]:
    with httpx.Client(timeout=10) as client:  # a new connection per request
        response = client.get(base + "/ready", headers={"Connection": "close"})
    return response.headers.get("x-rag-worker", ""), response.json()["index_id"], response.status_code


def test_two_workers_serve_the_same_index(built, tmp_path):
    seeds, index, index_id = built
    before = index_files(index)
    process, base = start_workers(seeds, index, tmp_path / "serve.log")
    try:
        seen: dict[str, set[str]] = {}
        with ThreadPoolExecutor(8) as pool:
            for _ in range(ROUNDS):
                for pid, served_id, status in pool.map(lambda _: fresh_ready(base), range(8)):
                    assert status == 200
                    seen.setdefault(pid, set()).add(served_id)
                if len(seen) >= 2:
                    break
        assert "" not in seen, "a response without the X-Rag-Worker header"
        assert len(seen) == 2, f"only worker(s) {sorted(seen)} answered in {ROUNDS} rounds"
        assert all(ids == {index_id} for ids in seen.values()), seen
        assert str(process.pid) not in seen  # the supervisor itself serves nothing
        with httpx.Client(timeout=30) as client:
            answer = client.post(base + "/query", json={"question": "What did Trotsky observe about foreign capital?", "top_k": 3})
        assert answer.status_code == 200 and answer.json()["index"]["id"] == index_id and answer.json()["passages"]
        assert answer.headers["x-rag-worker"] in seen
    finally:
        stop(process)
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()[-2000:]
    assert index_files(index) == before  # replicas never build or clean up: the index is read-only to them


def test_workers_refuse_a_missing_index_and_never_build_one(built, tmp_path):
    seeds, _, _ = built
    empty = tmp_path / "no-index"
    run = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "2"],
        env=server_env(seeds, empty, PYTHONPATH=str(PROJECT_ROOT)), capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S,
        cwd=PROJECT_ROOT,
    )
    assert run.returncode != 0
    assert "no index" in run.stderr + run.stdout
    assert not empty.exists() or not any(empty.iterdir())


def test_workers_flag_is_checked(tmp_path):
    from api.cli import main

    assert main(["serve", "--workers", "0"]) == 2
