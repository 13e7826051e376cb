"""`rag serve --workers N` keeps the single process's connection protections (issue 21 item 4).

The supervisor's signal handling is checked in process (`coalescing_supervisor`, with the replacement of
workers counted instead of run); live, against one `rag serve --workers 2` over real sockets: the head
timeout in every worker, then a burst of SIGHUPs and a SIGTERM that stops it within the grace period.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import httpx
import pytest
import uvicorn

from api.server import SHUTDOWN_GRACE_SECONDS, coalescing_supervisor
from rag.service import Service
from tests.api.test_workers import start_workers, stop
from tests.reliability_support import write_tiny_seeds, settings_for

HEADER_TIMEOUT = 2.0


@pytest.fixture
def supervisor():
    """A supervisor over no socket (nothing started); the signal handlers it installs are put back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in signal.valid_signals() if signal.getsignal(sig) is not None}
    try:
        yield coalescing_supervisor(uvicorn.Config("api.server:worker_app", factory=True, workers=2), [])
    finally:
        for sig, handler in saved.items():
            try:
                signal.signal(sig, handler)
            except (OSError, ValueError):
                pass


def test_sighups_arriving_during_a_replacement_coalesce_into_one_more(supervisor):
    rounds = []

    def replace_workers():  # what uvicorn's restart_all does, taking a while: the other 9 SIGHUPs arrive meanwhile
        rounds.append(len(rounds))
        if len(rounds) == 1:
            supervisor.signal_queue.extend([signal.SIGHUP] * 9)

    supervisor.restart_all = replace_workers
    supervisor.signal_queue.append(signal.SIGHUP)
    for _ in range(3):  # three turns of the supervisor's loop
        supervisor.handle_signals()
    assert len(rounds) == 2  # uvicorn alone: 10 rounds (20 replacements with 2 workers)
    assert supervisor.coalesced_hups == 8 and not supervisor.signal_queue


def test_sigterm_stops_a_replacement_under_way_at_once(supervisor):
    assert not supervisor.should_exit.is_set()
    os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's own handler: no wait for the loop's next turn
    deadline = time.monotonic() + 2
    while not supervisor.should_exit.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert supervisor.should_exit.is_set()  # restart_all and wait_until_ready stop on it
    supervisor.handle_signals()  # the queued SIGTERM is handled as uvicorn's: exit
    assert supervisor.should_exit.is_set() and not supervisor.signal_queue


@pytest.fixture(scope="module")
def workers(tmp_path_factory, encoders):
    """`rag serve --workers 2` with a 2 s head timeout over a tiny index; the last test here stops it."""
    root = tmp_path_factory.mktemp("workers-hardening")
    seeds = write_tiny_seeds(root / "seeds")
    Service.open(settings_for(seeds, root / "index"), encoders)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAG_HEADER_TIMEOUT_SECONDS", str(HEADER_TIMEOUT))  # the workers' environment (server_env)
        process, base = start_workers(seeds, root / "index", root / "serve.log")
    try:
        yield {"process": process, "port": int(base.rsplit(":", 1)[1]), "log": root / "serve.log"}
    finally:
        stop(process)


@pytest.mark.slow
def test_live_every_worker_closes_a_connection_that_never_finishes_its_head(workers):
    silent = [socket.create_connection(("127.0.0.1", workers["port"])) for _ in range(6)]  # over both workers
    for sock in silent:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never the blank line
    started = time.monotonic()
    closed = []
    for sock in silent:
        sock.settimeout(HEADER_TIMEOUT + 5)
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass
        closed.append(time.monotonic() - started)
        sock.close()
    print(f"\n6 unfinished heads over 2 workers closed after {max(closed):.2f} s (timeout {HEADER_TIMEOUT} s)")
    assert max(closed) < HEADER_TIMEOUT + 1.5, closed  # before: still open at 25 s


def _workers_started(log_path) -> set[str]:
    return set(re.findall(r"Started server process \[(\d+)\]", log_path.read_text(errors="replace")))


@pytest.mark.slow
def test_live_y_a_burst_of_sighups_replaces_the_workers_at_most_twice(workers):
    process, log_path = workers["process"], workers["log"]
    before = _workers_started(log_path)
    assert len(before) == 2
    for _ in range(10):  # 10 SIGHUPs in a second
        process.send_signal(signal.SIGHUP)
        time.sleep(0.1)
    settled_at, count, deadline = time.monotonic(), 0, time.monotonic() + 120
    while time.monotonic() < deadline and time.monotonic() - settled_at < 8:  # until no worker started for 8 s (one starts every ~5 s)
        time.sleep(0.5)
        if len(now := _workers_started(log_path)) != count:
            count, settled_at = len(now), time.monotonic()
    replaced = len(_workers_started(log_path) - before)
    print(f"\n10 SIGHUPs in a second: {replaced} workers started to replace 2")
    assert 2 <= replaced <= 4  # one round, plus one for the SIGHUPs that came during it; uvicorn alone: 20
    assert httpx.get(f"http://127.0.0.1:{workers['port']}/ready", timeout=5).status_code == 200


@pytest.mark.slow
def test_live_zz_sigterm_during_a_replacement_stops_within_the_grace_period(workers):
    process = workers["process"]
    for _ in range(10):
        process.send_signal(signal.SIGHUP)
        time.sleep(0.05)
    time.sleep(0.5)  # a replacement under way, more queued
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    took = time.monotonic() - started
    print(f"\nSIGTERM during a replacement: exited in {took:.2f} s")
    assert process.returncode == 0
    assert took < SHUTDOWN_GRACE_SECONDS + 5  # before: 184 s (every queued round ran first)
