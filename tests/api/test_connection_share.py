"""A per-client share of the connection cap (issue 21 item 5, api.connections): one address cannot lock others out.

The unit tests count connections in `ConnectionShare` and check how
`guarded_protocol` sizes the share; the live tests run a real `rag serve`
(cap 24, share 8) and open real sockets from two loopback addresses
(127.0.0.1 and 127.0.0.2 are different peers on Linux): one client holding the
whole cap gets only its share, and another client is still answered.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from api.connections import ConnectionShare, share_of
from api.server import guarded_protocol
from api.settings import ServerSettings
from rag.service import Service
from tests.reliability_support import copy_index, rag_serve, settings_for, write_tiny_seeds

MAX_CONNECTIONS = 24
PER_CLIENT = 8


# --- the share, counted ----------------------------------------------------------------------------


def test_the_default_share_is_a_quarter_of_the_cap_and_never_above_it():
    assert share_of(512) == 128
    assert share_of(24) == 6
    assert share_of(3) == 1  # never 0: every client may open one
    assert share_of(24, configured=8) == 8
    assert share_of(24, configured=100) == 24


def test_a_client_past_its_share_is_refused_and_others_are_admitted():
    share = ConnectionShare(per_client=2)
    assert share.admit("10.0.0.1") and share.admit("10.0.0.1")
    assert not share.admit("10.0.0.1")  # its third
    assert share.admit("10.0.0.2")  # another client
    assert share.refused == 1 and share.open["10.0.0.1"] == 2
    share.release("10.0.0.1")
    assert share.admit("10.0.0.1")  # one closed: room for one more
    for _ in range(2):
        share.release("10.0.0.1")
    share.release("10.0.0.2")
    assert not share.open  # nothing kept for addresses with no connection open
    share.release("10.0.0.9")  # never admitted: no count goes negative
    assert not share.open


def test_trusted_proxies_are_exempt_because_they_carry_many_clients():
    share = ConnectionShare(per_client=1, exempt=["10.1.0.0/16", "not-an-address"])
    assert all(share.admit("10.1.2.3") for _ in range(5))
    assert share.admit("10.2.0.1") and not share.admit("10.2.0.1")
    assert share.admit(None)  # a Unix socket has no peer address: only the global cap applies


def test_the_server_sizes_the_share_from_its_settings(monkeypatch):
    monkeypatch.setenv("RAG_MAX_CONNECTIONS", "40")
    monkeypatch.setenv("RAG_TRUSTED_PROXIES", '["10.9.9.9"]')
    protocol = guarded_protocol(ServerSettings(), threading.Event())
    assert protocol.share.per_client == 10 and protocol.share.exempt("10.9.9.9")
    monkeypatch.setenv("RAG_MAX_CONNECTIONS_PER_CLIENT", "7")
    assert guarded_protocol(ServerSettings(), threading.Event()).share.per_client == 7
    assert guarded_protocol(ServerSettings(), threading.Event()).share is not protocol.share  # one count per server


# --- live: real `rag serve`, real sockets from two addresses -----------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory, encoders):
    """`rag serve` with a cap of 24 and a share of 8, and a head timeout long enough that idle sockets stay open."""
    root = tmp_path_factory.mktemp("share")
    seeds = write_tiny_seeds(root / "seeds")
    Service.open(settings_for(seeds, root / "pristine"), encoders)
    index = copy_index(root / "pristine", root / "index")
    env = {"RAG_MAX_CONNECTIONS": str(MAX_CONNECTIONS), "RAG_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT), "RAG_HEADER_TIMEOUT_SECONDS": "30"}
    with rag_serve(seeds, index, root / "server.log", **env) as (process, base):
        yield {"process": process, "base": base, "port": int(base.rsplit(":", 1)[1])}


def _connect_from(address: str, port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), source_address=(address, 0))


def _answer(sock: socket.socket, wait: float) -> bytes:
    """What the server sent before closing (b"" when it is silent for `wait` seconds: the connection is held open)."""
    sock.settimeout(wait)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def _get_from(address: str, url: str) -> int:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=5) as client:
        return client.get(url).status_code


@pytest.mark.slow
def test_live_one_client_holding_the_whole_cap_gets_its_share_and_another_client_is_served(shared):
    port, base = shared["port"], shared["base"]
    crowd = [_connect_from("127.0.0.1", port) for _ in range(MAX_CONNECTIONS)]  # what locked everyone out before
    try:
        time.sleep(0.3)
        answers = [_answer(sock, 0.3) for sock in crowd]
        refused = sum(answer.startswith(b"HTTP/1.1 503") for answer in answers)
        held = sum(answer == b"" for answer in answers)
        other = _get_from("127.0.0.2", base + "/health")
        again = _answer(_connect_from("127.0.0.1", port), 1.0)  # the crowd's client, still over its share
        print(f"\n{refused} of {MAX_CONNECTIONS} connections from one client got 503, {held} held; another client: {other}")
        assert (refused, held) == (MAX_CONNECTIONS - PER_CLIENT, PER_CLIENT)
        assert other == 200
        assert again.startswith(b"HTTP/1.1 503") and b"too many open connections" in again
    finally:
        for sock in crowd:
            sock.close()
    deadline = time.monotonic() + 5
    while (status := _get_from("127.0.0.1", base + "/health")) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # its connections closed: its share is free again
    assert status == 200
    assert shared["process"].poll() is None


@pytest.mark.slow
def test_live_the_global_cap_still_holds_over_many_clients(shared):
    port = shared["port"]
    clients = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    held = [_connect_from(address, port) for address in clients for _ in range(PER_CLIENT)]  # 3 x 8 = the whole cap
    try:
        time.sleep(0.3)
        assert all(_answer(sock, 0.1) == b"" for sock in held)  # each within its share: all held open
        over = _answer(_connect_from("127.0.0.5", port), 1.0)  # a fresh client, but the server is full
        assert over.startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
