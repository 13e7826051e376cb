"""Who may ask: the Host allow-list, the Origin check, the API key and the admin rule, for HTTP and MCP alike.

One home for the access rules, whatever the route (the page, the API, /mcp):

- `transport_security(settings)`: the names this service is reached by. The MCP SDK applies them to /mcp
  (its own Host and Origin check) and `HostAllowList` to every route under `rag serve`.
- `HostAllowList`, `OriginCheck`, `ApiKeyAuth`: pure ASGI middleware (no body buffered, routes mounted
  later such as /mcp covered too). `api.middleware.install_middleware` is the one place that installs
  them, in their order among the others; the Host check only when asked (`rag serve`: `check_host`),
  since in-process clients (tests, TestClient) use names no deployment has.
- `require_admin`: the dependency of the admin router (api.routers.admin). With an API key set,
  `ApiKeyAuth` has already checked it; without one, only this machine (loopback) may administer.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from urllib.parse import urlsplit

from fastapi import Depends, Request
from mcp.server.transport_security import TransportSecuritySettings
from starlette.exceptions import HTTPException

from api.deps import get_server_settings
from api.limits import TokenBuckets, drain, send_json
from api.settings import ServerSettings

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/ready"})  # liveness and readiness: no key, no rate limit
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
ANY_INTERFACE = ("", "0.0.0.0", "::")
KEY_HOLDER = "api_key_holder"  # set in scope["state"] by ApiKeyAuth on an open path when the right key came along


def header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


def client_address(scope) -> str:
    return str((scope.get("client") or ["unknown"])[0] or "unknown")


# --- the names this service is reached by ---------------------------------------------------------


def transport_security(settings: ServerSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection: which Host (and Origin) headers are accepted.

    The attack: a web page on evil.example makes its name resolve to 127.0.0.1,
    then its scripts call this local server "same-origin", with Host and Origin
    saying evil.example. So we accept only the names this service is really
    reached by: loopback (127.0.0.1, localhost, [::1]) on any port, since
    `rag serve --port` may differ from settings.port and tests use free ports;
    a concrete RAG_HOST; and the host of RAG_PUBLIC_URL, for a deployment
    behind a proxy or tunnel (e.g. a ChatGPT connector). Bare names without a
    port are included for proxies on :80/:443. A request without an Origin
    (server-to-server clients such as ChatGPT's, the SDK, curl) is allowed by
    the SDK; a browser's Origin must be one of the same names.

    Bound to every interface (0.0.0.0 or ::) without RAG_PUBLIC_URL, the names
    clients will use cannot be known, so the check is off (as the SDK itself
    does for non-loopback hosts) and a warning says to set RAG_PUBLIC_URL.
    """
    names = ["127.0.0.1", "localhost", "[::1]"]
    if settings.host not in ANY_INTERFACE:
        names.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    exact: list[str] = []
    origins: list[str] = []
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        if parts.hostname:
            names.append(f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname)
        if parts.netloc:
            exact.append(parts.netloc)
            origins.append(f"{parts.scheme}://{parts.netloc}")
    elif settings.host in ANY_INTERFACE:
        log.warning("MCP DNS-rebinding protection is off: the service listens on every interface; set RAG_PUBLIC_URL to turn it on")
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = list(dict.fromkeys(names))
    hosts = [*names, *(f"{name}:*" for name in names), *exact]
    origins += [f"{scheme}://{name}{port}" for name in names for scheme in ("http", "https") for port in ("", ":*")]
    return TransportSecuritySettings(allowed_hosts=list(dict.fromkeys(hosts)), allowed_origins=list(dict.fromkeys(origins)))


# --- Host and Origin -------------------------------------------------------------------------


class HostAllowList:
    """421 for a request whose Host is not a name this service is reached by (DNS rebinding), on every route.

    `security` is `transport_security(settings)`, the same rule /mcp applies:
    loopback names on any port, a concrete RAG_HOST, the host of
    RAG_PUBLIC_URL; off when bound to every interface without RAG_PUBLIC_URL.
    """

    def __init__(self, app, security: TransportSecuritySettings):
        self.app = app
        self.enabled = security.enable_dns_rebinding_protection
        self.exact = frozenset(security.allowed_hosts)
        self.any_port = tuple(h[:-1] for h in security.allowed_hosts if h.endswith(":*"))  # "localhost:" prefixes

    def allowed(self, host: str) -> bool:
        host = host.lower()
        if host in self.exact:
            return True
        return any(host.startswith(prefix) and host[len(prefix):].isdigit() for prefix in self.any_port)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or not self.enabled:
            return await self.app(scope, receive, send)
        host = (header(scope, b"host") or b"").decode("latin-1")
        if self.allowed(host):
            return await self.app(scope, receive, send)
        log.warning("refused a request for a host this service does not serve (possible DNS rebinding)")
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await drain(scope, receive)
        await send_json(send, 421, "this server does not answer for that host name (set RAG_PUBLIC_URL to the name clients use)")


class OriginCheck:
    """403 for a state-changing request (POST, PUT, PATCH, DELETE) from a foreign page.

    A browser sends `Origin` on cross-site POSTs, including `no-cors` fetches and
    form posts whose responses it never lets the page read: the request itself
    would still reload the index or run a query. Allowed: no Origin (curl,
    scripts, server-to-server clients), the request's own origin (the page at /),
    the origin of RAG_PUBLIC_URL (the page behind a proxy that rewrites Host),
    and the origins in RAG_CORS_ORIGINS. `Origin: null` (sandboxed frames, file
    pages) is foreign.
    """

    def __init__(self, app, cors_origins: list[str] = (), public_url: str | None = None):
        self.app = app
        trusted = list(cors_origins)
        if public_url:
            parts = urlsplit(public_url)
            trusted.append(f"{parts.scheme}://{parts.netloc}")
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in trusted)

    def allowed(self, scope, origin: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.cors_origins or "*" in self.cors_origins:
            return True
        # same origin: the page's host:port is the Host it sent this request to (the scheme is not compared,
        # since behind a TLS proxy the server sees http; a foreign Host is refused by HostAllowList anyway)
        netloc = urlsplit(origin).netloc
        host = (header(scope, b"host") or b"").decode("latin-1").lower()
        return bool(netloc) and netloc == host

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in STATE_CHANGING:
            return await self.app(scope, receive, send)
        origin = header(scope, b"origin")
        if origin is None or self.allowed(scope, origin.decode("latin-1")):
            return await self.app(scope, receive, send)
        await drain(scope, receive)
        await send_json(send, 403, "cross-site request refused: this origin may not send POST/PUT/PATCH/DELETE here")


# --- API key ---------------------------------------------------------------------------------


class ApiKeyAuth:
    """Every route but /health and /ready needs `Authorization: Bearer <key>` or `X-API-Key: <key>`.

    Wrong guesses are limited whether or not the general rate limit is on: each
    401 takes a token from the client's key-guess bucket (`guesses_per_minute`),
    and a client whose bucket is empty gets 429 for every request, with the
    right key or not, until it refills (so a guess that happens to be right
    is not confirmed either). `buckets`: the workers' shared buckets under `rag serve --workers N`
    (api.worker_share), so the limit is one for all of them; else this process's own.
    """

    def __init__(self, app, api_key: str, guesses_per_minute: int = 10, buckets=None):
        self.app = app
        self._digest = hashlib.sha256(api_key.encode()).digest()
        self.guesses = buckets if buckets is not None else TokenBuckets(guesses_per_minute)

    def _authorized(self, scope) -> bool:
        return any(hmac.compare_digest(hashlib.sha256(p).digest(), self._digest) for p in self._presented(scope))

    @staticmethod
    def _presented(scope) -> list[bytes]:
        """The keys a request carries: `Authorization: Bearer <key>` and `X-API-Key: <key>`."""
        presented = []
        authorization = header(scope, b"authorization")
        if authorization:
            scheme, _, credentials = authorization.partition(b" ")
            if scheme.lower() == b"bearer":
                presented.append(credentials.strip())
        api_key = header(scope, b"x-api-key")
        if api_key:
            presented.append(api_key.strip())
        return presented  # compared as digests: constant time, and independent of the key's length

    def _holds_key(self, scope, client: str) -> bool:
        """On an open path: does the request carry the right key? A wrong one costs a guess, as anywhere, and
        with no guess left the key is not even compared (an open path must not confirm a guess either)."""
        if not self._presented(scope) or self.guesses.empty(client):
            return False
        if self._authorized(scope):
            return True
        self.guesses.take(client)
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        client = client_address(scope)
        if scope.get("path") in OPEN_PATHS:  # open to all; only its holder learns what the key protects (`holds_api_key`)
            scope.setdefault("state", {})[KEY_HOLDER] = self._holds_key(scope, client)
            return await self.app(scope, receive, send)
        wait = self.guesses.empty(client)
        if wait:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            retry_after = max(1, math.ceil(wait))
            await drain(scope, receive)
            return await send_json(
                send, 429, f"too many wrong API keys from this address; retry after {retry_after} s",
                [(b"retry-after", str(retry_after).encode())],
            )
        if self._authorized(scope):
            return await self.app(scope, receive, send)
        self.guesses.take(client)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await drain(scope, receive)
        await send_json(
            send,
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            [(b"www-authenticate", b'Bearer realm="ask-the-document"')],
        )


def holds_api_key(request: Request, server: ServerSettings) -> bool:
    """Whether this request may see what the API key protects: always with no key set; else only with the key
    (checked by `ApiKeyAuth`, also on the open paths, where it never refuses)."""
    return not server.api_key or bool(request.scope.get("state", {}).get(KEY_HOLDER))


# --- administration --------------------------------------------------------------------------


def local_or_key(what: str):
    """A route dependency for what changes the server (reloads, writes): with an API key set, the key (already
    checked by `ApiKeyAuth`); without one, a client on this machine only (403 naming `what`)."""

    def require(request: Request, server: ServerSettings = Depends(get_server_settings)) -> None:
        client = (request.client.host if request.client else "") or ""
        if not server.api_key and client not in LOOPBACK:
            raise HTTPException(403, f"{what} is allowed from this machine only (or set RAG_API_KEY)")

    return require


require_admin = local_or_key("reload")  # admin routes
