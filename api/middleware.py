"""Pure ASGI middleware around the whole app: request ids and logs, CORS, rate limit, API key, body size.

Pure ASGI (not `BaseHTTPMiddleware`) so nothing buffers a body or breaks
streaming, and so every route is covered, including ones mounted later (MCP
at /mcp). The order, outermost first, is decided once in `install_middleware`:

    RequestContext   request id (X-Request-ID), one JSON access-log line, request metrics,
                     X-Content-Type-Options: nosniff, a correct Allow on 405,
                     and a last-resort JSON 500 naming the request id
    CORS             only when settings.cors_origins is set (closed by default)
    RateLimit        only when settings.rate_limit_per_minute > 0: token bucket per client IP, 429 + Retry-After
    ApiKeyAuth       only when settings.api_key is set: every route but /health and /ready, 401 otherwise
    BodySizeLimit    413 before the body is read (api.limits)

CORS sits outside the key check so a browser's preflight (which never carries
credentials) is answered, and outside the rate limit so a 429 is readable
cross-origin. The rate limit sits outside the key check so guessing keys is
rate limited too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
import uuid
from collections import OrderedDict

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match

from api.limits import BodySizeLimit
from api.observability import ACCESS_LOG, REQUEST_ID, Metrics

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/ready"})  # liveness and readiness: no key, no rate limit
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def install_middleware(app, settings, metrics: Metrics) -> None:
    """Wrap `app` in the stack above (add_middleware puts the last one added outermost)."""
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.api_key:
        app.add_middleware(ApiKeyAuth, api_key=settings.api_key)
    if settings.rate_limit_per_minute > 0:
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID", "Mcp-Session-Id", "Mcp-Protocol-Version"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContext, metrics=metrics, router=app.router)


async def send_json(send, status: int, message: str, headers: list[tuple[bytes, bytes]] = (), close: bool = True) -> None:
    """A complete `{"error", "detail"}` response; `close` ends the connection (an unread body is not drained)."""
    body = json.dumps({"error": message, "detail": None}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


# --- request id, access log, metrics ------------------------------------------------------------


class RequestContext:
    def __init__(self, app, metrics: Metrics, router):
        self.app = app
        self.metrics = metrics
        self.router = router

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = _header(scope, b"x-request-id")
        candidate = incoming.decode("latin-1") if incoming else ""
        request_id = candidate if _SANE_REQUEST_ID.fullmatch(candidate) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status: int | None = None
        started = time.perf_counter()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-ID", request_id)
                if "x-content-type-options" not in headers:  # JSON holding "<script>" is never sniffed as HTML
                    headers.append("X-Content-Type-Options", "nosniff")
                if status == 405:  # Starlette names only the first route of a path; list every route's methods
                    headers["Allow"] = ", ".join(self._allowed_methods(scope)) or headers.get("Allow", "")
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # anything no handler turned into a response: log it, answer 500 with the id
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if status is None:
                message = f"internal error; the server log has the details under request id {request_id}"
                await send_json(send_with_id, 500, message)
        finally:
            self.metrics.in_flight.dec()
            duration = time.perf_counter() - started
            final = status if status is not None else 499  # the client went away before any response
            route = self._route(scope)
            self.metrics.observe_request(scope.get("method", ""), route, final, duration)
            ACCESS_LOG.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                final,
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "route": route,
                    "status": final,
                    "duration_ms": round(duration * 1000, 2),
                    "client": (scope.get("client") or [None])[0],
                },
            )
            REQUEST_ID.reset(token)

    def _routes(self) -> list:
        """Every route, with those of included routers (FastAPI wraps them) listed in place."""
        return list(_flatten(self.router.routes))

    def _allowed_methods(self, scope) -> list[str]:
        methods: set[str] = set()
        for candidate in self._routes():
            try:
                match, _ = candidate.matches({**scope, "method": "GET"})
            except Exception:  # pragma: no cover
                continue
            if match is not Match.NONE:
                methods |= set(getattr(candidate, "methods", None) or ())
        return sorted(methods)

    def _route(self, scope) -> str:
        """The route template (bounded label), matched after the fact if a middleware answered first."""
        route = scope.get("route")
        if route is None:
            for candidate in self._routes():
                try:
                    match, _ = candidate.matches(scope)
                except Exception:  # pragma: no cover - a route that cannot match this scope
                    continue
                if match is not Match.NONE:
                    route = candidate
                    break
        return getattr(route, "path", None) or "<unmatched>"


def _flatten(routes):
    for route in routes:
        included = getattr(route, "original_router", None)  # fastapi's _IncludedRouter (no prefix is used here)
        if included is not None:
            yield from _flatten(included.routes)
        else:
            yield route


# --- API key ---------------------------------------------------------------------------------


class ApiKeyAuth:
    """Every route but /health and /ready needs `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

    def __init__(self, app, api_key: str):
        self.app = app
        self._digest = hashlib.sha256(api_key.encode()).digest()

    def _authorized(self, scope) -> bool:
        presented = []
        authorization = _header(scope, b"authorization")
        if authorization:
            scheme, _, credentials = authorization.partition(b" ")
            if scheme.lower() == b"bearer":
                presented.append(credentials.strip())
        api_key = _header(scope, b"x-api-key")
        if api_key:
            presented.append(api_key.strip())
        # compare digests: constant time, and independent of the key's length
        return any(hmac.compare_digest(hashlib.sha256(p).digest(), self._digest) for p in presented)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope.get("path") in OPEN_PATHS or self._authorized(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await send_json(
            send,
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            [(b"www-authenticate", b'Bearer realm="ask-the-document"')],
        )


# --- rate limit ------------------------------------------------------------------------------


class RateLimit:
    """A token bucket per client IP: `per_minute` requests of burst, refilled at per_minute/60 a second.

    The client is the TCP peer (`scope["client"]`); X-Forwarded-For is not trusted.
    At most `max_clients` buckets are kept (least recently seen dropped first), so
    memory is bounded whatever the number of addresses.
    """

    def __init__(self, app, per_minute: int, max_clients: int = 10_000, clock=time.monotonic):
        self.app = app
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """Take a token for `client`: 0 if allowed, else seconds until one is available."""
        now = self.clock()
        tokens, last = self.buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self.buckets[client] = (tokens, now)
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ["unknown"])[0] or "unknown"
        wait = self.take(str(client))
        if not wait:
            return await self.app(scope, receive, send)
        retry_after = max(1, math.ceil(wait))
        await send_json(
            send,
            429,
            f"rate limit of {int(self.capacity)} requests per minute exceeded; retry after {retry_after} s",
            [(b"retry-after", str(retry_after).encode())],
        )
