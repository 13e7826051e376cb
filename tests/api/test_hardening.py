"""Hardening (issue 10): the index dir, crowds, proxies, rebinding and cross-site requests, slow clients, small ones.

Fast tests use the ASGI app in process (TestClient) or the library; the tests
marked `slow` run real `rag serve` processes (tests.reliability_support.rag_serve)
and talk to them over real sockets: one server for the connection-level checks
(head timeout, connection cap, log flood, header limits, HEAD, Host/Origin,
and last, a request on a kept-alive connection at SIGTERM), one with a rate
limit for X-Forwarded-For, and one for the crowd of batches and reloads.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.limits import Admission, Lane
from api.observability import JsonFormatter, RepeatFilter
from api.server import serving_app
from api.settings import ServerSettings
from rag.index.build import build
from rag.errors import IndexCorrupt, IndexProblem, Overloaded
from rag.service import Service
from rag.index.store import MANIFEST, load_index, read_manifest
from tests.reliability_support import (
    ARTICLE,
    EXTRA_PARAGRAPH,
    copy_index,
    index_files,
    rag_serve,
    settings_for,
    write_tiny_seeds,
)

KEY = "k3y-For-Tests-0123456789abcdef"


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoders):
    """A small corpus and its index: (seeds, index_dir)."""
    root = tmp_path_factory.mktemp("hardening")
    seeds = write_tiny_seeds(root / "seeds")
    Service.open(settings_for(seeds, root / "index"), encoders)
    return seeds, root / "index"


# --- 2: the index directory holds other people's files -------------------------------------------


def test_a_users_files_in_the_index_dir_survive_a_build_and_a_rebuild(tmp_path, encoders):
    seeds = write_tiny_seeds(tmp_path / "seeds")
    index = tmp_path / "index"
    index.mkdir()
    theirs = {
        "config.json": b'{"mine": true}',
        "notes.npy": b"not really numpy",
        "other.faiss": b"someone else's index",
        "vectors-final.faiss": b"close to our names, not ours",
        "passages-0123456789ab.json.bak": b"a backup",
    }
    for name, data in theirs.items():
        (index / name).write_bytes(data)
    first = build(settings_for(seeds, index), encoders)
    assert first.built
    write_tiny_seeds(seeds, extra=EXTRA_PARAGRAPH)  # a new corpus version: a real rebuild, then start-up housekeeping
    second = build(settings_for(seeds, index), encoders)
    assert second.built and second.manifest["id"] != first.manifest["id"]
    Service.open(settings_for(seeds, index, auto_build=False), encoders)
    for name, data in theirs.items():
        assert (index / name).read_bytes() == data, f"{name} was changed or deleted"


@pytest.mark.parametrize("where", ["the seeds dir", "inside it"])
def test_an_index_dir_in_the_seeds_dir_is_refused_and_nothing_is_deleted(tmp_path, encoders, where):
    seeds = write_tiny_seeds(tmp_path / "seeds")
    (seeds / "config.json").write_text('{"mine": true}')
    (seeds / "old-vectors.faiss").write_bytes(b"x")
    index = seeds if where == "the seeds dir" else seeds / "index"
    if index != seeds:
        index.mkdir()
        (index / "keep.npy").write_bytes(b"y")
    before = tree_digest(seeds)
    with pytest.raises(IndexProblem, match="inside the documents directory .*choose another RAG_INDEX_DIR"):
        build(settings_for(seeds, index), encoders)
    with pytest.raises(IndexProblem, match="inside the documents directory"):
        Service.open(settings_for(seeds, index), encoders)
    assert tree_digest(seeds) == before


# --- 9: a manifest that is a directory; start-up on a full disk ------------------------------------


def test_a_manifest_that_is_a_directory_is_index_corrupt(tiny, tmp_path, encoders):
    seeds, pristine = tiny
    index = copy_index(pristine, tmp_path / "index")
    (index / MANIFEST).unlink()
    (index / MANIFEST).mkdir()
    with pytest.raises(IndexCorrupt, match="cannot be read"):
        read_manifest(index)
    with pytest.raises(IndexCorrupt):
        load_index(index, None)
    with pytest.raises(IndexProblem, match="refusing to serve it"):
        Service.open(settings_for(seeds, index, auto_build=False), encoders)


def test_start_up_needs_no_free_space_to_serve_an_intact_index(tiny, tmp_path, encoders, monkeypatch):
    """Every write the process tries fails with ENOSPC (open for writing, os.open with a write flag, mkdir):
    an intact index still opens and answers, with or without RAG_AUTO_BUILD, and without a .lock file."""
    seeds, pristine = tiny
    index = copy_index(pristine, tmp_path / "index")
    (index / ".lock").unlink(missing_ok=True)
    before = index_files(index)
    real_open, real_os_open, real_mkdir = builtins.open, os.open, Path.mkdir
    refused = []

    def full(what):
        refused.append(what)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(what))

    def open_no_space(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and str(index) in str(file):
            full(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open_no_space(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(index) in str(path):
            full(path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir_no_space(self, *args, **kwargs):
        if str(index) in str(self) and not self.exists():
            full(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_no_space)
    monkeypatch.setattr(os, "open", os_open_no_space)
    monkeypatch.setattr(Path, "mkdir", mkdir_no_space)
    for auto_build in (False, True):
        service = Service.open(settings_for(seeds, index, auto_build=auto_build), encoders)
        assert service.query(service.parse("Trotsky", 1)).hits
    monkeypatch.undo()
    assert refused, "the simulation never refused a write: it tested nothing"
    assert index_files(index) == before


def test_start_up_on_a_real_full_disk_serves_the_intact_index(tiny, tmp_path, encoders):
    """A tmpfs holding only the index, filled to the last block (and its last inode): start-up serves it."""
    seeds, pristine = tiny
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=64", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        index = copy_index(pristine, mount / "index")
        (index / ".lock").unlink(missing_ok=True)
        before = index_files(index)
        with open(mount / "filler", "wb") as f:  # every free block
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        for i in range(64):  # every free inode
            try:
                (mount / f"i{i}").touch()
            except OSError:
                break
        with pytest.raises(OSError):
            (index / "probe").write_bytes(b"x" * 8192)
        for auto_build in (False, True):
            service = Service.open(settings_for(seeds, index, auto_build=auto_build), encoders)
            assert service.query(service.parse("Trotsky", 1)).hits
        assert index_files(index) == before
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)  # lazy: a memory-mapped index file may still be open


# --- 3: admission lanes, batches cost tokens, /ready reports load -----------------------------------


def test_a_lane_runs_workers_queues_a_few_and_refuses_the_rest_at_once():
    async def scenario():
        lane = Lane("query", workers=2, queue=3, retry_after=1)
        release = asyncio.Event()
        order = []

        async def job(i):
            async with lane.slot():
                order.append(i)
                await release.wait()

        tasks = [asyncio.create_task(job(i)) for i in range(5)]
        await asyncio.sleep(0.01)
        assert (lane.running, lane.queued, lane.full) == (2, 3, True)
        started = time.perf_counter()
        with pytest.raises(Overloaded) as refused:
            async with lane.slot():
                pass
        assert time.perf_counter() - started < 0.01 and refused.value.retry_after == 1
        assert "2 query request(s) running and 3 waiting" in str(refused.value)
        tasks[3].cancel()  # a waiting client leaves: its place is freed, nothing leaks
        await asyncio.sleep(0.01)
        assert lane.queued == 2
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert order == [0, 1, 2, 4]  # first come, first served
        assert (lane.running, lane.queued, lane.rejected) == (0, 0, 1)

        failing = Lane("batch", workers=1, queue=1)
        with pytest.raises(RuntimeError):
            async with failing.slot():
                raise RuntimeError("the job failed")
        assert failing.running == 0

    asyncio.run(scenario())


def test_a_batch_stops_after_the_question_in_progress_once_its_caller_has_gone(service):
    questions = ["Trotsky", "Lenin", "Mensheviks", "peasants"]
    stop = threading.Event()
    real_search = service.snapshot.retriever.search
    calls = []

    class Retriever:  # the real retriever; the caller leaves while the second question is being answered
        def __getattr__(self, name):
            return getattr(service.snapshot.retriever, name)

        def search(self, *args):
            calls.append(args[0].question)
            if len(calls) == 2:
                stop.set()
            return real_search(*args)

    watched = Service(service.settings, service.model, service.encoders, replace(service.snapshot, retriever=Retriever()))
    assert len(watched.batch_query(watched.parse_batch(questions, 2), stop=stop)) == 2 and calls == questions[:2]
    assert len(service.batch_query(service.parse_batch(questions, 2), stop=threading.Event())) == 4


def test_a_full_lane_is_a_fast_503_with_retry_after_and_ready_says_so(service):
    app = create_app(service=service, server_settings=ServerSettings(query_workers=1, query_queue=0, batch_workers=1, batch_queue=0))
    admission: Admission = app.state.admission
    with TestClient(app) as client:
        ready = client.get("/ready").json()
        assert ready["load"] == {"in_flight": 0, "queued": 0, "capacity": 2, "saturated": False}
        assert client.post("/query", json={"question": "Trotsky"}).status_code == 200
        admission.query.running = 1  # a question being answered (the lane's own bookkeeping, as a worker holds it)
        for response in (client.post("/query", json={"question": "Trotsky"}), client.get("/query", params={"q": "Trotsky"})):
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            assert "busy" in response.json()["error"]
        assert client.post("/query/batch", json={"questions": ["Trotsky"]}).status_code == 200  # its own lane
        ready = client.get("/ready").json()
        assert ready["load"] == {"in_flight": 1, "queued": 0, "capacity": 2, "saturated": True}
        assert 'rag_admission_rejected_total{lane="query"} 2.0' in client.get("/metrics").text
        admission.query.running = 0
        assert client.post("/query", json={"question": "Trotsky"}).status_code == 200


def test_mcp_tool_calls_share_the_query_lane(service):
    app = create_app(service=service, server_settings=ServerSettings(query_workers=1, query_queue=0))
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ask", "arguments": {"question": "Trotsky"}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert not client.post("/mcp", json=call, headers=headers).json()["result"].get("isError")
        app.state.admission.query.running = 1  # a question being answered
        busy = client.post("/mcp", json=call, headers=headers).json()["result"]
        assert busy["isError"] and "the server is busy" in busy["content"][0]["text"]
        app.state.admission.query.running = 0


def test_a_batch_costs_one_rate_limit_token_per_question(service):
    app = create_app(service=service, server_settings=ServerSettings(rate_limit_per_minute=10))
    with TestClient(app) as client:
        assert client.post("/query/batch", json={"questions": ["Trotsky"] * 8}).status_code == 200  # 8 of 10 tokens
        refused = client.post("/query/batch", json={"questions": ["Trotsky"] * 4})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "4 questions cost 4 requests" in refused.json()["error"]
        assert client.post("/query", json={"question": "Trotsky"}).status_code == 200  # what is left still serves
    with TestClient(create_app(service=service, server_settings=ServerSettings(rate_limit_per_minute=5))) as client:
        too_big = client.post("/query/batch", json={"questions": ["Trotsky"] * 6})
        assert too_big.status_code == 429 and "send fewer" in too_big.json()["error"]
        assert client.post("/query/batch", json={"questions": ["Trotsky"] * 4}).status_code == 200


# --- 5: Host allow-list on every route, foreign Origin refused, key guesses limited -------------------


ROUTES = [
    ("GET", "/", None),
    ("GET", "/documents", None),
    ("GET", "/query?q=Trotsky", None),
    ("POST", "/query", {"question": "Trotsky"}),
    ("POST", "/admin/reload", None),
    ("GET", "/openapi.json", None),
    ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
]
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_a_rebound_host_name_is_refused_on_every_route(service, method, path, body):
    app = serving_app(service.settings, ServerSettings(), service=service)
    with TestClient(app, base_url="http://127.0.0.1:8123", client=("127.0.0.1", 5000)) as client:  # loopback may reload
        reloads = app.state.metrics.reloads.labels("unchanged")._value.get()
        for host in ("evil.example", "evil.example:8123", "127.0.0.1.evil.example:8123", "localhost:80x"):
            response = client.request(method, path, json=body, headers={**MCP_HEADERS, "Host": host})
            assert response.status_code == 421, (host, response.text)
            assert "host" in response.json()["error"] and response.headers["x-request-id"]  # logged like any request
        assert app.state.metrics.reloads.labels("unchanged")._value.get() == reloads  # no reload was triggered
        for host in ("127.0.0.1:8123", "localhost:8123", "localhost", "[::1]:8123"):
            response = client.request(method, path, json=body, headers={**MCP_HEADERS, "Host": host})
            assert response.status_code not in (421, 403), (host, response.status_code)


def test_the_public_url_host_is_allowed_and_every_interface_turns_the_check_off(service):
    public = serving_app(service.settings, ServerSettings(public_url="https://docs.example.org"), service=service)
    with TestClient(public, base_url="https://docs.example.org") as client:
        assert client.get("/documents").status_code == 200
        assert client.get("/documents", headers={"Host": "evil.example"}).status_code == 421
    anywhere = serving_app(service.settings, ServerSettings(host="0.0.0.0"), service=service)
    with TestClient(anywhere, base_url="http://192.0.2.7:8000") as client:
        assert client.get("/documents").status_code == 200


def test_a_state_changing_request_from_a_foreign_origin_is_refused(service):
    good = "https://good.example"
    app = create_app(service=service, server_settings=ServerSettings(cors_origins=[good]))
    with TestClient(app) as client:  # TestClient's Host is "testserver", its peer "testclient" (not loopback)
        reloads = app.state.metrics.reloads.labels("unchanged")._value.get()
        for origin in ("https://evil.example", "http://testserver.evil.example", "null", "http://testserver:1"):
            for method, path, body in (("POST", "/admin/reload", None), ("POST", "/query", {"question": "Trotsky"}),
                                       ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                                       ("DELETE", "/documents/x", None), ("PUT", "/query", None)):
                response = client.request(method, path, json=body, headers={**MCP_HEADERS, "Origin": origin})
                assert response.status_code == 403, (origin, method, path, response.status_code)
                assert "cross-site" in response.json()["error"]
        assert app.state.metrics.reloads.labels("unchanged")._value.get() == reloads
        for headers in ({}, {"Origin": "http://testserver"}, {"Origin": good}):
            assert client.post("/query", json={"question": "Trotsky"}, headers=headers).status_code == 200, headers
        assert client.get("/query", params={"q": "Trotsky"}, headers={"Origin": "https://evil.example"}).status_code == 200
    proxied = create_app(service=service, server_settings=ServerSettings(public_url="https://docs.example.org/rag"))
    with TestClient(proxied) as client:  # behind a proxy that rewrites Host, the page's origin is the public URL's
        assert client.post("/query", json={"question": "Trotsky"}, headers={"Origin": "https://docs.example.org"}).status_code == 200
        assert client.post("/query", json={"question": "Trotsky"}, headers={"Origin": "https://evil.example"}).status_code == 403


def test_wrong_api_keys_are_limited_even_without_a_rate_limit(service):
    app = create_app(service=service, server_settings=ServerSettings(api_key=KEY, key_guesses_per_minute=3))
    guesser = TestClient(app, client=("10.0.0.9", 5000))
    other = TestClient(app, client=("10.0.0.10", 5000))
    for i in range(3):
        assert guesser.get("/documents", headers={"X-API-Key": f"guess-{i}"}).status_code == 401
    limited = guesser.get("/documents", headers={"X-API-Key": "guess-3"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    right = guesser.get("/documents", headers={"X-API-Key": KEY})
    assert right.status_code == 429  # a right guess is not confirmed while the guesser is limited
    assert guesser.get("/health").status_code == 200
    assert other.get("/documents", headers={"X-API-Key": KEY}).status_code == 200
    assert other.get("/documents", headers={"X-API-Key": "nope"}).status_code == 401
    assert other.get("/documents", headers={"X-API-Key": KEY}).status_code == 200  # right keys cost nothing


# --- 7: repeated log lines -------------------------------------------------------------------


def test_a_flood_of_identical_errors_writes_one_line_a_second_with_a_count():
    now = [100.0]
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter(clock=lambda: now[0]))
    logger = logging.getLogger("tests.hardening.flood")
    logger.addHandler(handler)
    logger.propagate = False
    access = logging.getLogger("api.access")
    access_level = access.level
    access.setLevel(logging.INFO)
    try:
        for i in range(10_000):
            logger.error("accept failed: %s", f"too many open files #{i}")
        logger.warning("another message")
        access.addHandler(handler)
        for _ in range(3):
            access.info("%s %s %s", "GET", "/health", 200)
        access.removeHandler(handler)
        assert len(lines) == 1 + 1 + 3, lines
        now[0] += 1.01
        logger.error("accept failed: %s", "again")
        last = json.loads(lines[-1])
        assert last["repeated"] == 9_999 and last["message"] == "accept failed: again"
    finally:
        logger.removeHandler(handler)
        access.removeHandler(handler)
        access.setLevel(access_level)


# --- 9: HEAD, header count -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/ready", "/documents", "/query?q=Trotsky", "/", "/openapi.json", "/metrics", "/docs"])
def test_head_answers_like_get_without_a_body(client, path):
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if path not in ("/metrics", "/ready", "/query?q=Trotsky"):  # these change between two calls
        assert head.headers.get("content-length") == got.headers.get("content-length")


def test_head_on_a_post_only_route_is_405_and_too_many_headers_431(client):
    response = client.head("/admin/reload")
    assert response.status_code == 405 and "POST" in response.headers["allow"]
    many = {f"x-h{i}": "v" for i in range(150)}
    response = client.get("/health", headers=many)
    assert response.status_code == 431 and "too many request headers" in response.json()["error"]
    assert client.get("/health", headers={f"x-h{i}": "v" for i in range(50)}).status_code == 200


# --- live: real `rag serve`, real sockets ------------------------------------------------------------

HEADER_TIMEOUT = 2.0
MAX_CONNECTIONS = 24


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _read_all(sock: socket.socket, limit: float) -> bytes:
    sock.settimeout(limit)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (socket.timeout, ConnectionResetError):
        pass
    return b"".join(chunks)


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (the connection stays open)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(errors="replace").splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, tiny):
    """`rag serve` with a short head timeout and a small connection cap, over the tiny index."""
    seeds, pristine = tiny
    root = tmp_path_factory.mktemp("guarded")
    index = copy_index(pristine, root / "index")
    log = root / "server.log"
    env = {"RAG_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT), "RAG_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
           "RAG_MAX_CONNECTIONS_PER_CLIENT": str(MAX_CONNECTIONS)}  # one client may fill the cap here: the share has its own tests
    with rag_serve(seeds, index, log, **env) as (process, base):
        yield {"process": process, "base": base, "port": _port(base), "log": log}


@pytest.mark.slow
def test_live_a_connection_that_never_finishes_its_head_is_closed(guarded):
    port = guarded["port"]
    silent = socket.create_connection(("127.0.0.1", port))
    slow = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed_at = None
    slow.settimeout(0.25)
    while time.monotonic() - started < HEADER_TIMEOUT + 5:
        try:
            slow.sendall(b"X-Drip: 1\r\n")  # a header line every 0.25 s, never the blank line
            if slow.recv(1) == b"":
                closed_at = time.monotonic() - started
                break
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.monotonic() - started
            break
    assert closed_at is not None and closed_at < HEADER_TIMEOUT + 1.0, closed_at
    assert _read_all(silent, 2.0) == b""  # closed as well (long since, no data)
    silent.close()
    slow.close()
    print(f"\nslowloris connection closed after {closed_at:.2f} s (timeout {HEADER_TIMEOUT} s)")


@pytest.mark.slow
def test_live_more_idle_connections_than_the_cap_do_not_lock_out_a_normal_request(guarded):
    port, base = guarded["port"], guarded["base"]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS + 16)]
    time.sleep(0.3)
    refused = 0
    for sock in idle[MAX_CONNECTIONS:]:
        answer = _read_all(sock, 0.5)
        refused += answer.startswith(b"HTTP/1.1 503")
    started = time.monotonic()
    first = None
    while time.monotonic() - started < HEADER_TIMEOUT + 5:
        try:
            status = httpx.get(base + "/health", timeout=2).status_code
        except httpx.HTTPError:
            status = None
        first = first or status
        if status == 200:
            break
        time.sleep(0.2)
    served_after = time.monotonic() - started
    for sock in idle:
        sock.close()
    print(f"\n{refused} of 16 connections over the cap got 503; a normal request was served after {served_after:.2f} s")
    assert refused == 16
    assert status == 200 and served_after < HEADER_TIMEOUT + 2
    assert guarded["process"].poll() is None


@pytest.mark.slow
def test_live_a_flood_of_bad_requests_does_not_grow_the_log(guarded):
    port, log = guarded["port"], guarded["log"]
    before = log.stat().st_size
    answered = 0
    started = time.monotonic()
    for _ in range(1000):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            answered += _read_all(sock, 2.0).startswith(b"HTTP/1.1 400")
    took = time.monotonic() - started
    time.sleep(1.1)
    with socket.create_connection(("127.0.0.1", port)) as sock:  # the next one after a second carries the count
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        _read_all(sock, 2.0)
    time.sleep(0.3)
    grown = log.stat().st_size - before
    repeated = [e.get("repeated", 0) for e in _log_lines(log) if e.get("message") == "Invalid HTTP request received."]
    print(f"\n1,001 bad requests in {took:.1f} s: log grew {grown} bytes; lines {len(repeated)}, dropped {sum(repeated)}")
    assert answered == 1000
    assert grown < 200 * (took + 3)  # a line or two a second, not one per request (1,000 lines are ~130 KB)
    assert sum(repeated) >= 900


@pytest.mark.slow
def test_live_header_size_and_count_are_bounded(guarded):
    base = guarded["base"]
    huge = httpx.get(base + "/health", headers={"X-Big": "a" * 20_000})  # arrives whole: the middleware's check
    assert huge.status_code == 431 and "too large" in huge.json()["error"]
    with socket.create_connection(("127.0.0.1", guarded["port"])) as sock:  # arrives in pieces: api.server's head bound
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sent = 0
        try:
            for _ in range(40):
                sock.sendall(b"X-Piece: " + b"b" * 1000 + b"\r\n")
                sent += 1
                time.sleep(0.005)
            answer = _read_all(sock, 3.0)
        except (BrokenPipeError, ConnectionResetError):
            answer = b"closed"
        assert answer.startswith(b"HTTP/1.1 400") or (answer == b"closed" and sent < 40), (answer[:100], sent)
    many = httpx.get(base + "/health", headers={f"X-H{i}": "v" for i in range(150)})
    assert many.status_code == 431
    assert httpx.get(base + "/health").status_code == 200


@pytest.mark.slow
def test_live_pipelined_requests_are_answered_and_bounded(guarded):
    """llhttp parses on while a response is in flight, so pipelined requests queue: a few are answered in order, a
    flood is not queued without end (api.server.MAX_PIPELINED: the connection is closed)."""
    from api.server import MAX_PIPELINED

    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", guarded["port"])) as sock:
        sock.sendall(request * 5)
        answers = b""
        sock.settimeout(5)
        while answers.count(b"HTTP/1.1 200") < 5:
            answers += sock.recv(65536)
        assert answers.count(b"HTTP/1.1 200") == 5
    flood = 2000
    with socket.create_connection(("127.0.0.1", guarded["port"])) as sock:
        try:
            sock.sendall(request * flood)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answered = _read_all(sock, 5.0).count(b"HTTP/1.1 200")
    print(f"\n{answered} of {flood} pipelined requests answered before the connection was closed")
    assert answered < flood - MAX_PIPELINED
    assert httpx.get(guarded["base"] + "/health").status_code == 200
    assert guarded["process"].poll() is None


@pytest.mark.slow
def test_live_a_body_after_an_early_answer_is_not_taken_for_a_head(guarded):
    """A route that answers without reading the body (405 here): the body's bytes that follow are the request's,
    not the next head's, so they do not trip the 16 KiB head bound, and the connection serves the next request."""
    body = 64 * 1024
    with socket.create_connection(("127.0.0.1", guarded["port"])) as sock:
        sock.sendall(b"PUT /health HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: %d\r\n\r\n" % body)
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 405"), first[:80]
        for _ in range(body // 1024):
            sock.sendall(b"b" * 1024)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        second = _read_response(sock)
    assert second.startswith(b"HTTP/1.1 200"), second[:120]


@pytest.mark.slow
def test_live_head_host_and_origin(guarded):
    base, port = guarded["base"], guarded["port"]
    head = httpx.head(base + "/documents")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(httpx.get(base + "/documents").content)
    rebound = httpx.get(base + "/documents", headers={"Host": f"evil.example:{port}"})
    assert rebound.status_code == 421
    assert httpx.post(base + "/admin/reload", headers={"Host": f"evil.example:{port}"}).status_code == 421
    assert httpx.post(base + "/admin/reload", headers={"Origin": "http://evil.example"}).status_code == 403
    assert httpx.post(base + "/admin/reload", headers={"Origin": f"http://127.0.0.1:{port}"}, timeout=60).status_code == 200
    assert httpx.get(f"http://localhost:{port}/documents").status_code == 200


@pytest.mark.slow
def test_live_zz_a_request_on_a_kept_alive_connection_at_sigterm_is_served(guarded):
    """Last in this module: it stops the server. A request sent on an idle keep-alive connection just after
    SIGTERM is answered (with Connection: close), not reset."""
    process, port = guarded["process"], guarded["port"]
    request = b"GET /documents HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(request)
    first = _read_response(sock)
    assert first.startswith(b"HTTP/1.1 200")
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.4)  # uvicorn notices the signal within 0.1 s and closes idle connections at once, before this fix
    try:
        sock.sendall(request)
        second = _read_all(sock, 5.0)
    except (BrokenPipeError, ConnectionResetError) as exc:
        second = repr(exc).encode()
    sock.close()
    head = second.split(b"\r\n\r\n", 1)[0].lower()
    assert second.startswith(b"HTTP/1.1 200"), second[:200]
    assert b"connection: close" in head
    assert process.wait(20) in (0, -signal.SIGTERM)


# --- 4: X-Forwarded-For is not believed ------------------------------------------------------------


@pytest.mark.slow
def test_live_x_forwarded_for_changes_neither_the_rate_limit_bucket_nor_the_log(tmp_path, tiny):
    seeds, pristine = tiny
    index = copy_index(pristine, tmp_path / "index")
    log = tmp_path / "server.log"
    with rag_serve(seeds, index, log, RAG_RATE_LIMIT_PER_MINUTE="3") as (process, base):
        statuses = [
            httpx.get(base + "/documents", headers={"X-Forwarded-For": f"203.0.113.{i}", "X-Real-IP": f"198.51.100.{i}"}).status_code
            for i in range(1, 5)
        ]
    assert statuses == [200, 200, 200, 429], statuses  # one bucket: the TCP peer's
    access = [e for e in _log_lines(log) if e.get("logger") == "api.access" and e.get("path") == "/documents"]
    assert [e["client"] for e in access] == ["127.0.0.1"] * 4
    assert "203.0.113" not in log.read_text() and "198.51.100" not in log.read_text()


# --- 3, live: a crowd of maximal batches and reloads ---------------------------------------------------


def _long_questions(n: int, chars: int, seed: int) -> list[str]:
    words = re.findall(r"[A-Za-z]{4,}", ARTICLE.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = f"Question {i}:"
        while len(text) < chars - 12:
            text += " " + rng.choice(words)
        out.append(text[:chars])
    return out


@pytest.mark.slow
def test_live_a_single_query_is_answered_or_refused_fast_under_a_crowd_of_batches_and_reloads(tmp_path, settings, service):
    """10 batch clients that give up after 0.5 s, then 40 concurrent maximal batches (32 x 2,000 characters,
    top_k 50) and 40 concurrent reloads: single queries from another client complete within 2 s or get a
    503 with Retry-After within 100 ms; once everyone has left, nothing is in flight."""
    seeds = tmp_path / "seeds"
    shutil.copytree(ARTICLE.parent, seeds)
    index = copy_index(settings.index_dir, tmp_path / "index")
    log = tmp_path / "server.log"
    batch = {"questions": _long_questions(32, 2000, seed=5), "top_k": 50}
    crowd_limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)

    async def storm(base):
        async with httpx.AsyncClient(limits=crowd_limits, timeout=300) as crowd:
            async def post(path, body=None, timeout=300.0):
                started = time.monotonic()
                try:
                    response = await crowd.post(base + path, json=body, timeout=timeout)
                    return path, response.status_code, response.headers.get("retry-after"), time.monotonic() - started
                except httpx.TimeoutException:
                    return path, "gave up", None, time.monotonic() - started

            async def later(path, body=None):
                await asyncio.sleep(0.8)
                return await post(path, body)

            # first 10 clients that give up after 0.5 s: they take the batch lane (one runs, two wait) and leave
            tasks = [asyncio.create_task(post("/query/batch", batch, timeout=0.5)) for _ in range(10)]
            tasks += [asyncio.create_task(later("/query/batch", batch)) for _ in range(40)]
            tasks += [asyncio.create_task(later("/admin/reload")) for _ in range(40)]
            probes, during = [], []
            async with httpx.AsyncClient(timeout=30) as single:
                for i in range(8):
                    await asyncio.sleep(0.75)
                    during.append((await single.get(base + "/ready")).json()["load"])
                    started = time.monotonic()
                    response = await single.post(base + "/query", json={"question": f"What is permanent revolution? ({i})", "top_k": 5})
                    probes.append((response.status_code, response.headers.get("retry-after"), time.monotonic() - started))
            outcomes = await asyncio.wait_for(asyncio.gather(*tasks), timeout=240)
        return probes, during, outcomes

    with rag_serve(seeds, index, log) as (process, base):
        probes, during, outcomes = asyncio.run(storm(base))
        left = time.monotonic()
        while True:  # a batch whose client gave up stops after its current question; a waiting one left at once
            after = httpx.get(base + "/ready").json()["load"]
            if after["in_flight"] == 0 or time.monotonic() - left > 5:
                break
            time.sleep(0.1)
        drained_s = time.monotonic() - left
        metrics = httpx.get(base + "/metrics").text
    in_flight = float(re.search(r"^rag_http_requests_in_flight (\S+)$", metrics, re.M).group(1))
    batches = [o for o in outcomes if o[0] == "/query/batch"]
    reloads = [o for o in outcomes if o[0] == "/admin/reload"]
    summary = {
        "probes": [(s, round(t, 3)) for s, _, t in probes],
        "batches": {str(s): sum(1 for o in batches if o[1] == s) for s in {o[1] for o in batches}},
        "reloads": {str(s): sum(1 for o in reloads if o[1] == s) for s in {o[1] for o in reloads}},
        "batch_503_s": [round(t, 3) for t in sorted(o[3] for o in batches if o[1] == 503)][::6],
        "during": [(d["in_flight"], d["queued"], d["saturated"]) for d in during],
        "after": after,
        "drained_s": round(drained_s, 2),
    }
    print("\ncrowd:", json.dumps(summary))
    for status, retry_after, took in probes:
        assert (status == 200 and took < 2.0) or (status == 503 and retry_after and took < 0.1), (status, took)
    assert any(d["saturated"] and d["in_flight"] == 1 for d in during)  # one batch runs, the lane's queue is full
    assert all(o[1] in (200, 503, "gave up") for o in batches), batches
    assert all(o[2] for o in batches if o[1] == 503), "a 503 without Retry-After"
    refused_s = sorted(o[3] for o in batches if o[1] == 503)
    # refused before the body is read once the lane is full (api.middleware.AdmissionGate); these times include
    # this process encoding and sending 50 bodies of 64 KB at once, on the same 2 cores as the server
    assert refused_s and refused_s[len(refused_s) // 2] < 2 and refused_s[-1] < 10
    assert sum(1 for o in batches if o[1] == 200) >= 1
    assert all(o[1] == 200 for o in reloads), reloads
    assert after == {"in_flight": 0, "queued": 0, "capacity": after["capacity"], "saturated": False}
    assert in_flight == 1.0  # only the /metrics request that reads it
