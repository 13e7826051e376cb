"""Pure ASGI middleware around the whole app, installed in one place: request ids and logs, CORS, rate limit, admission.

The access rules (Host allow-list, Origin check, API key) live in api.security
and are installed here with the rest. Pure ASGI (not `BaseHTTPMiddleware`) so
nothing buffers a body or breaks streaming, and so every route is covered,
including ones mounted later (MCP at /mcp). The order, outermost first, is
decided once, in `install_middleware`:

    RequestContext   request id (X-Request-ID), one JSON access-log line, request metrics,
                     X-Content-Type-Options: nosniff, a correct Allow on 405, HEAD answered like GET,
                     431 past MAX_HEADERS headers, and a last-resort JSON 500 naming the request id
    HostAllowList    only with `check_host` (`rag serve`, api.server.serving_app): a Host this service is not
                     reached by is 421 on every route (DNS rebinding); names from api.security.transport_security
    CORS             only when settings.cors_origins is set (closed by default)
    OriginCheck      a POST/PUT/PATCH/DELETE whose Origin is present and foreign is 403 (cross-site forms,
                     no-cors fetches); no Origin (curl, scripts), same origin and CORS-allowed origins pass
    RateLimit        only when settings.rate_limit_per_minute > 0: token bucket per client IP, 429 + Retry-After;
                     a route may charge more (`charge`: a batch costs one token per question); one set of
                     buckets for all the workers of `rag serve --workers N` (api.worker_share.buckets_for)
    ApiKeyAuth       only when settings.api_key is set: every route but /health and /ready, 401 otherwise;
                     wrong keys are limited per client (settings.key_guesses_per_minute) even without a rate limit,
                     shared between workers like the rate limit
    AdmissionGate    503 + Retry-After before the body is read when the request's admission lane is full
                     (the route takes the slot itself, api.routers.query; this only spares the loop
                     from reading and validating 64 KB batches it would refuse anyway)
    BodySizeLimit    413 before the body is read (api.limits)

CORS sits outside the key check so a browser's preflight (which never carries
credentials) is answered, and outside the rate limit so a 429 is readable
cross-origin. The rate limit sits outside the key check so guessing keys is
rate limited too.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match

from api.limits import BodySizeLimit, TokenBuckets, drain, send_json
from api.observability import ACCESS_LOG, REQUEST_ID, Metrics
from api.security import OPEN_PATHS, ApiKeyAuth, HostAllowList, OriginCheck, client_address, header, transport_security
from api.worker_share import buckets_for

log = logging.getLogger(__name__)

MAX_HEADERS = 100  # request header lines
MAX_HEADER_BYTES = 16 * 1024  # names and values in all (api.server bounds only a head that arrives in pieces)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def install_middleware(app, settings, metrics: Metrics, check_host: bool = False, security=None) -> None:
    """Wrap `app` in the stack above (add_middleware puts the last one added outermost); `check_host` adds the
    Host allow-list (`rag serve`), just inside RequestContext so that a refused Host is logged and counted, with
    `security` (the app's `transport_security(settings)`, computed here when not given).

    `app.state.draining` is set by the server once shutdown starts (api.server): every response from
    then on says `Connection: close`, so no client sends another request on a connection about to close."""
    app.state.draining = threading.Event()
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AdmissionGate, admission=app.state.admission)
    if settings.api_key:
        guesses = buckets_for(settings, "key_guesses", settings.key_guesses_per_minute)
        app.add_middleware(ApiKeyAuth, api_key=settings.api_key, guesses_per_minute=settings.key_guesses_per_minute, buckets=guesses)
    if settings.rate_limit_per_minute > 0:
        rate = buckets_for(settings, "rate", settings.rate_limit_per_minute)
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute, buckets=rate)
    app.add_middleware(OriginCheck, cors_origins=settings.cors_origins, public_url=settings.public_url)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID", "Mcp-Session-Id", "Mcp-Protocol-Version"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    if check_host:
        app.add_middleware(HostAllowList, security=security if security is not None else transport_security(settings))
    app.add_middleware(RequestContext, metrics=metrics, router=app.router, draining=app.state.draining)


# --- request id, access log, metrics ------------------------------------------------------------


class RequestContext:
    def __init__(self, app, metrics: Metrics, router, draining: threading.Event | None = None):
        self.app = app
        self.metrics = metrics
        self.router = router
        self.draining = draining or threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or ()
        if len(headers) > MAX_HEADERS:
            return await send_json(send, 431, f"too many request headers: at most {MAX_HEADERS}")
        if sum(len(name) + len(value) for name, value in headers) > MAX_HEADER_BYTES:
            return await send_json(send, 431, f"request headers too large: at most {MAX_HEADER_BYTES} bytes in all")
        head_only = scope.get("method") == "HEAD"
        if head_only:  # answered like GET, without the body (Starlette routes GET-only endpoints to 405 otherwise)
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        incoming = header(scope, b"x-request-id")
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
                if self.draining.is_set():
                    headers["Connection"] = "close"
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
            method = "HEAD" if head_only else scope.get("method", "")
            self.metrics.observe_request(method, route, final, duration)
            ACCESS_LOG.info(
                "%s %s %s",
                method,
                scope.get("path"),
                final,
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": scope.get("path"),
                    "route": route,
                    "status": final,
                    "duration_ms": round(duration * 1000, 2),
                    "client": (scope.get("client") or [None])[0],
                },
            )
            REQUEST_ID.reset(token)

    def _allowed_methods(self, scope) -> list[str]:
        methods: set[str] = set()
        for candidate in _flat_routes(self.router.routes):
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
            for candidate in _flat_routes(self.router.routes):
                try:
                    match, _ = candidate.matches(scope)
                except Exception:  # pragma: no cover - a route that cannot match this scope
                    continue
                if match is not Match.NONE:
                    route = candidate
                    break
        return getattr(route, "path", None) or "<unmatched>"


def _flat_routes(routes):
    """Every route, with included routers opened up (FastAPI >= 0.16x keeps `include_router`'s routes in a wrapper)."""
    for route in routes:
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if inner is not None:
            yield from _flat_routes(inner)
        else:
            yield route


def _without_body(send):
    """A `send` for HEAD: the response's status and headers (Content-Length kept), no body bytes."""

    async def send_head(message):
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


# --- admission ---------------------------------------------------------------------------------


class AdmissionGate:
    """Refuse query work whose lane is full (api.limits.Admission) before its body is read: 503 + Retry-After."""

    LANES = {("POST", "/query"): "query", ("GET", "/query"): "query", ("POST", "/query/batch"): "batch"}

    def __init__(self, app, admission):
        self.app = app
        self.admission = admission

    async def __call__(self, scope, receive, send):
        name = self.LANES.get((scope.get("method"), scope.get("path"))) if scope["type"] == "http" else None
        lane = getattr(self.admission, name) if name else None
        if lane is None or not lane.full:
            return await self.app(scope, receive, send)
        lane.rejected += 1
        await drain(scope, receive)
        await send_json(
            send, 503, f"the server is busy: {lane.name} requests are at their limit; retry after {lane.retry_after} s",
            [(b"retry-after", str(lane.retry_after).encode())],
        )


# --- rate limit ------------------------------------------------------------------------------


class RateLimit:
    """A token bucket per client IP (api.limits.TokenBuckets, or the workers' shared buckets given as `buckets`):
    429 + Retry-After when it is empty.

    The client is the TCP peer (`scope["client"]`); X-Forwarded-For is believed
    only from RAG_TRUSTED_PROXIES (uvicorn rewrites the peer then, api.server).
    A request costs one token here; a route whose work is larger charges the
    rest through `charge(scope, n)` (a batch of n questions costs n).
    """

    def __init__(self, app, per_minute: int, max_clients: int = 10_000, clock=time.monotonic, buckets=None):
        self.app = app
        self.buckets = buckets if buckets is not None else TokenBuckets(per_minute, max_clients, clock)

    def take(self, client: str, n: int = 1) -> float:
        """Take n tokens for `client`: 0 if allowed, else seconds until they are available."""
        return self.buckets.take(client, n)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            return await self.app(scope, receive, send)
        client = client_address(scope)
        wait = self.take(client)
        if not wait:
            scope.setdefault("state", {})[CHARGE] = (self.buckets, client)
            return await self.app(scope, receive, send)
        retry_after = max(1, math.ceil(wait))
        await drain(scope, receive)
        await send_json(
            send,
            429,
            f"rate limit of {int(self.buckets.capacity)} requests per minute exceeded; retry after {retry_after} s",
            [(b"retry-after", str(retry_after).encode())],
        )


CHARGE = "rate_limit_charge"


class RateLimited(HTTPException):
    """Raised by a route whose extra cost the rate limit refused (429 + Retry-After)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(429, message, headers={"Retry-After": str(retry_after)})


def charge(scope, cost: int, what: str = "items") -> None:
    """Make this request cost `cost` rate-limit tokens in all (the middleware took one); no-op without a rate limit.

    Raises `RateLimited` (429 + Retry-After) when the client's bucket cannot pay the rest now."""
    limiter = (scope.get("state") or {}).get(CHARGE)
    if limiter is None or cost <= 1:
        return
    buckets, client = limiter
    wait = math.inf if cost > buckets.capacity else buckets.take(client, cost - 1)
    if wait == math.inf:
        raise RateLimited(f"{cost} {what} cost more than the rate limit allows at once; send fewer per request", 60)
    if wait:
        retry_after = max(1, math.ceil(wait))
        raise RateLimited(f"rate limit exceeded: {cost} {what} cost {cost} requests; retry after {retry_after} s", retry_after)
