"""Running the HTTP server: the socket, uvicorn, and the process signals.

The server concerns the library never sees: binding the port (a taken port is
one line naming it and how to pick another, not a traceback), graceful
shutdown, keep-alive, and SIGHUP = reload the index without dropping a request.

- SIGTERM/SIGINT: stop accepting, let requests in flight finish (up to
  SHUTDOWN_GRACE_SECONDS), exit.
- Keep-alive: idle connections live longer than common clients keep them
  (httpx 5 s, aiohttp 15 s), so a client never reuses a connection the server
  is closing at that instant (its request would be reset).
- `rag serve --workers N` (`serve_workers`): N processes behind one socket, all serving
  one index built beforehand; they never build (RAG_AUTO_BUILD=false in each), share
  the memory-mapped sentence vectors, and SIGHUP replaces them one at a time.
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


# --- several worker processes -------------------------------------------------------------

WORKER_HEADER = b"x-rag-worker"  # the pid of the worker process that answered
WORKER_HEALTHCHECK_SECONDS = 120  # a starting worker loads the model and the index before it answers as ready


def serve_workers(settings: Settings, server_settings: ServerSettings, workers: int) -> None:
    """Serve with `workers` processes on one pre-bound socket (uvicorn's supervisor), all from one index.

    The index is made current once, here, before any worker starts (a `rag index` subprocess when
    RAG_AUTO_BUILD allows building; otherwise it must already be built). Workers are started with
    RAG_AUTO_BUILD=false: a replica never builds, it serves the index on disk or refuses to start.
    They share the memory-mapped sentence vectors through the page cache. SIGHUP replaces the
    workers one by one (each new one ready before its predecessor leaves): the way to serve an
    index rebuilt by `rag index`. Each response names its worker in the X-Rag-Worker header.
    """
    import subprocess
    import sys

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    sock = bind(server_settings.host, server_settings.port)
    try:
        if settings.auto_build:
            done = subprocess.run([sys.executable, "-m", "api.cli", "index"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise RagError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "building the index failed")
        check_index_current(settings)
    except BaseException:
        sock.close()
        raise
    os.environ.update(  # what each worker reads (spawned processes inherit the environment)
        {"RAG_AUTO_BUILD": "false", "RAG_HOST": server_settings.host, "RAG_PORT": str(server_settings.port)}
    )
    config = uvicorn.Config(
        "api.server:worker_app",
        factory=True,
        workers=workers,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        log_config=None,
        access_log=False,
        proxy_headers=bool(server_settings.trusted_proxies),
        forwarded_allow_ips=server_settings.trusted_proxies or None,
    )
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        raise RagError("a worker could not start (its log above says why); the server stopped")


def check_index_current(settings: Settings) -> None:
    """Refuse to start replicas over a missing or stale index (each would refuse it alone); reads only the manifest."""
    from rag.build import IndexConfig
    from rag.documents import load_corpus
    from rag.model import resolve_model
    from rag.store import read_manifest, stale_reasons

    documents = load_corpus(settings.seeds_dir)
    expected = IndexConfig.of(settings, documents, resolve_model(settings.model)).fingerprint()
    manifest = read_manifest(settings.index_dir)
    if reasons := stale_reasons(manifest, expected):
        raise RagError(f"index {manifest.get('id')} is stale ({', '.join(reasons)}); run `rag index` first: replicas never build")


def worker_app():
    """The app of one worker process of `serve_workers`: settings from the environment, responses tagged with its pid."""
    from api.app import create_app
    from api.observability import configure_json_logging

    configure_json_logging(os.environ.get("RAG_LOG_LEVEL", "WARNING"))
    app = create_app(Settings(), ServerSettings())
    pid = str(os.getpid()).encode()

    async def tagged(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_tagged(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (WORKER_HEADER, pid)]}
            await send(message)

        await app(scope, receive, send_tagged)

    return tagged
