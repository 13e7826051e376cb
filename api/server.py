"""Running the HTTP server: the socket, uvicorn, and the process signals.

The server concerns the library never sees: binding the port (a taken port is
one line naming it and how to pick another, not a traceback), graceful
shutdown, keep-alive, and SIGHUP = reload the index without dropping a request.

- SIGTERM/SIGINT: stop accepting, let requests in flight finish (up to
  SHUTDOWN_GRACE_SECONDS), exit.
- Keep-alive: idle connections live longer than common clients keep them
  (httpx 5 s, aiohttp 15 s), so a client never reuses a connection the server
  is closing at that instant (its request would be reset).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket

from api.settings import ServerSettings
from rag.config import Settings
from rag.errors import RagError

SHUTDOWN_GRACE_SECONDS = 10
KEEP_ALIVE_SECONDS = 20
log = logging.getLogger(__name__)


class PortInUse(RagError):
    """The port is taken by another process."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or PortInUse with a hint."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is already in use; pick another with RAG_PORT=8100 make serve (or rag serve --port 8100)"
            ) from None
        raise RagError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, server_settings: ServerSettings) -> None:
    """Serve the app on server_settings.host:port until SIGTERM/SIGINT."""
    import uvicorn

    from api.app import create_app
    from api.observability import configure_json_logging
    from api.routers.ops import reload_in_background

    sock = bind(server_settings.host, server_settings.port)
    configure_json_logging(os.environ.get("RAG_LOG_LEVEL", "WARNING"))  # JSON lines on stderr, one per request
    app = create_app(settings, server_settings)
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_in_background(app))
    config = uvicorn.Config(
        app,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        log_config=None,
        access_log=False,
        # X-Forwarded-For is believed only from the proxies named in RAG_TRUSTED_PROXIES (none by default):
        # otherwise any client could pick the address that the rate limit and the logs see.
        proxy_headers=bool(server_settings.trusted_proxies),
        forwarded_allow_ips=server_settings.trusted_proxies or None,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
