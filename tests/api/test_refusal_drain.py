"""A refusal that closes the connection first reads a small request body (api.limits.drain).

Closing a socket with request bytes unread makes the kernel reset the connection, and the client can then see
"connection reset by peer" instead of its 403/401/429/503. These tests call the middleware as ASGI with a body in
pieces and check what it read: a small declared body is read to its end before the answer, a large one is not
waited for, and a body that never comes costs at most the drain's time bound.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from api import limits
from api.security import ApiKeyAuth, OriginCheck


async def _never_called(scope, receive, send):  # the app behind the refusal
    raise AssertionError("the request should have been refused")


def _call(middleware, body_parts: list[bytes], declared: int | None, headers=(), stalls: bool = False):
    scope = {"type": "http", "method": "POST", "path": "/query", "headers": [(b"host", b"127.0.0.1:8000"), *headers],
             "client": ("127.0.0.1", 5000)}
    if declared is not None:
        scope["headers"].append((b"content-length", str(declared).encode()))
    pending = list(body_parts)
    read, sent = [], []

    async def receive():
        if not pending:
            await asyncio.sleep(30)  # a client that stopped sending
        part = pending.pop(0)
        read.append(part)
        return {"type": "http.request", "body": part, "more_body": bool(pending) or stalls}

    async def send(message):
        sent.append((message, len(read)))

    asyncio.run(middleware(scope, receive, send))
    start = next(m for m, _ in sent if m["type"] == "http.response.start")
    return start["status"], read, sent[0][1]


def test_a_foreign_origin_post_has_its_small_body_read_before_the_403():
    check = OriginCheck(_never_called)
    status, read, read_before_answer = _call(check, [b'{"question": ', b'"hi"}'], 17, [(b"origin", b"http://evil.example")])
    assert status == 403 and read == [b'{"question": ', b'"hi"}'] and read_before_answer == 2


def test_a_wrong_key_has_its_small_body_read_before_the_401():
    auth = ApiKeyAuth(_never_called, api_key="s3cret", guesses_per_minute=100)
    status, read, read_before_answer = _call(auth, [b'{"q": 1}'], 8, [(b"x-api-key", b"wrong")])
    assert status == 401 and read_before_answer == 1


def test_a_large_body_is_not_read_for_a_refusal():
    check = OriginCheck(_never_called)
    status, read, _ = _call(check, [b"x" * 1024], limits.DRAIN_BYTES + 1, [(b"origin", b"http://evil.example")])
    assert status == 403 and read == []


def test_a_body_that_never_comes_delays_the_refusal_by_the_bound_only(monkeypatch):
    monkeypatch.setattr(limits, "DRAIN_SECONDS", 0.2)
    check = OriginCheck(_never_called)
    started = time.monotonic()
    status, read, _ = _call(check, [b"{"], 100, [(b"origin", b"http://evil.example")], stalls=True)  # 100 declared, 1 sent
    assert status == 403 and read == [b"{"] and 0.2 <= time.monotonic() - started < 5
