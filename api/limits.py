"""Limits that keep one client or a crowd from exhausting the server: body size, token buckets, admission.

- `BodySizeLimit` (pure ASGI): a body whose Content-Length is over the limit is
  answered 413 before a byte of it is read; a chunked body is counted as it
  streams and cut off with 413 the moment it passes the limit, so an oversized
  request never sits in memory.
- `TokenBuckets`: a token bucket per client, bounded in memory; the rate limit
  and the key-guess limit (api.middleware) are two of them. `take(client, n)`
  lets a batch of n questions cost n tokens. One process's own; the workers of
  `rag serve --workers N` share theirs instead (api.worker_share.SharedBuckets,
  the same interface).
- `Admission`: query work is admitted through two lanes, single questions and
  batches, each with at most `workers` jobs running and `queue` waiting; past
  that, `Overloaded` at once (503 + Retry-After) instead of an ever longer
  queue. Batches have their own lane, so a crowd of 32-question batches never
  stands between a single /query and a worker. Waiting holds no thread (an
  awaited future on the event loop), and a slot is released in `finally`, so
  a client that leaves or a request that fails never leaks one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from starlette.exceptions import HTTPException

from rag.errors import Overloaded


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit.

    An HTTPException so that FastAPI's body parsing re-raises it (it turns any
    other error while reading the body into a 400) and the app answers 413.
    """

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body is over the limit of {max_bytes} bytes", headers={"Connection": "close"})


class BodySizeLimit:
    """`max_bytes` for every route but document uploads (POST /documents, PUT /documents/{id}), whose limit is
    the app's `server_settings.max_upload_bytes` (api.routers.documents)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def limit(self, scope) -> int:
        path, method = scope.get("path", ""), scope.get("method")
        if (method == "POST" and path == "/documents") or (method == "PUT" and path.startswith("/documents/")):
            settings = getattr(getattr(scope.get("app"), "state", None), "server_settings", None)
            return getattr(settings, "max_upload_bytes", self.max_bytes)
        return self.max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        max_bytes = self.limit(scope)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await send_json(send, 400, "Content-Length is not a number")
            if declared > max_bytes:
                return await send_json(send, 413, f"request body is {declared} bytes; the limit is {max_bytes}")
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await send_json(send, 413, f"request body is over the limit of {max_bytes} bytes")


DRAIN_BYTES = 64 * 1024  # a refused request's body read and dropped first when it is declared at most this long
DRAIN_SECONDS = 1.0


async def drain(scope, receive) -> None:
    """Read and drop a small request body before a refusal that closes the connection.

    Closing a socket with bytes of the request still unread makes the kernel send a TCP reset, and a client still
    writing its body (or reading the answer) can then get "connection reset by peer" instead of the 401/403/429/503
    it was sent (seen once in a `make test-fast` run: tests/api/test_mcp.py's foreign-Origin POST). Only a body whose
    Content-Length is at most DRAIN_BYTES, for at most DRAIN_SECONDS: a large or slow body is not waited for."""
    if scope.get("type") != "http":
        return
    declared = next((value for name, value in scope.get("headers", ()) if name == b"content-length"), None)
    try:
        length = int(declared) if declared is not None else 0
    except ValueError:
        return
    if not 0 < length <= DRAIN_BYTES:
        return

    async def read_all() -> None:
        while True:
            message = await receive()
            if message.get("type") != "http.request" or not message.get("more_body"):
                return

    try:
        await asyncio.wait_for(read_all(), DRAIN_SECONDS)
    except Exception:  # noqa: BLE001 - a client slow (the timeout) or gone: answer anyway
        pass


async def send_json(send, status: int, message: str, headers: list[tuple[bytes, bytes]] = (), close: bool = True) -> None:
    """A complete `{"error", "detail"}` response; `close` ends the connection (an unread body is not drained)."""
    body = json.dumps({"error": message, "detail": None}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def describe_body_error(exc: Exception) -> str | None:
    """A readable reason for FastAPI's generic 400 "There was an error parsing the body", from its cause."""
    cause = exc.__cause__
    if cause is None or getattr(exc, "status_code", None) != 400:
        return None
    if isinstance(cause, RecursionError):
        return "request body is nested too deeply to parse"
    if isinstance(cause, UnicodeError):
        return "request body is not valid UTF-8 JSON"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "request body holds a number too long to parse"
    return "request body could not be parsed as JSON"


# --- token buckets ------------------------------------------------------------------------------


class TokenBuckets:
    """A token bucket per client: `per_minute` tokens of burst, refilled at per_minute/60 a second.

    At most `max_clients` buckets are kept (least recently seen dropped first),
    so memory is bounded whatever the number of addresses.
    """

    def __init__(self, per_minute: int, max_clients: int = 10_000, clock=time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.buckets)

    def _tokens(self, client: str) -> tuple[float, float]:
        now = self.clock()
        tokens, last = self.buckets.pop(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - last) * self.rate), now

    def _store(self, client: str, tokens: float, now: float) -> None:
        self.buckets[client] = (tokens, now)
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)

    def take(self, client: str, n: int = 1) -> float:
        """Take n tokens for `client`: 0 if allowed, else seconds until n are available (nothing taken).

        n larger than the bucket can ever hold is `math.inf`."""
        if n > self.capacity:
            return math.inf
        tokens, now = self._tokens(client)
        wait = 0.0
        if tokens >= n:
            tokens -= n
        else:
            wait = (n - tokens) / self.rate
        self._store(client, tokens, now)
        return wait

    def empty(self, client: str) -> float:
        """Seconds until `client` has a whole token again (0 when it has one); takes nothing."""
        tokens, now = self._tokens(client)
        self._store(client, tokens, now)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


# --- admission ----------------------------------------------------------------------------------


class Lane:
    """At most `workers` jobs at once and `queue` waiting, first come first served; beyond that `Overloaded`."""

    def __init__(self, name: str, workers: int, queue: int, retry_after: int = 1):
        self.name = name
        self.workers = workers
        self.queue = queue
        self.retry_after = retry_after
        self.running = 0
        self.rejected = 0
        self._waiting: deque[asyncio.Future] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def full(self) -> bool:
        """A new job would be refused now."""
        return self.running >= self.workers and self.queued >= self.queue

    @contextlib.asynccontextmanager
    async def slot(self):
        """Hold a worker slot for the block; raises `Overloaded` at once when the lane is full."""
        await self._enter()
        try:
            yield
        finally:
            self._leave()

    async def _enter(self) -> None:
        if self.running < self.workers and not self._waiting:
            self.running += 1
            return
        if self.queued >= self.queue:
            self.rejected += 1
            raise Overloaded(
                f"the server is busy: {self.running} {self.name} request(s) running and {self.queued} waiting; "
                f"retry after {self.retry_after} s",
                self.retry_after,
            )
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future  # set by _leave, which hands its slot over (running stays the same)
        except BaseException:  # cancelled while waiting (the client left, shutdown)
            if future.done() and not future.cancelled():
                self._leave()  # the slot was handed over just now: pass it on
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    self._waiting.remove(future)
            raise

    def _leave(self) -> None:
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.running -= 1


@dataclass(frozen=True)
class Load:
    in_flight: int
    queued: int
    capacity: int
    saturated: bool


class Admission:
    """The app's two lanes of query work: `query` (single questions) and `batch`."""

    def __init__(self, query: Lane, batch: Lane):
        self.query = query
        self.batch = batch

    @classmethod
    def from_settings(cls, settings) -> "Admission":
        return cls(
            Lane("query", settings.query_workers, settings.query_queue, retry_after=1),
            Lane("batch", settings.batch_workers, settings.batch_queue, retry_after=5),
        )

    @property
    def lanes(self) -> tuple[Lane, Lane]:
        return (self.query, self.batch)

    def load(self) -> Load:
        """Jobs running and waiting over both lanes, how many fit, and whether either lane is refusing work."""
        return Load(
            in_flight=sum(lane.running for lane in self.lanes),
            queued=sum(lane.queued for lane in self.lanes),
            capacity=sum(lane.workers + lane.queue for lane in self.lanes),
            saturated=any(lane.full for lane in self.lanes),
        )
