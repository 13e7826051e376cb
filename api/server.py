"""Running the HTTP server: the socket, uvicorn, and the process signals.

The server concerns the library never sees: binding the port (a taken port is
one line naming it and how to pick another, not a traceback), graceful
shutdown, keep-alive, and SIGHUP = reload the index without dropping a request.

- SIGTERM/SIGINT: stop accepting, let requests in flight finish (up to
  SHUTDOWN_GRACE_SECONDS), exit.
- Keep-alive: idle connections live longer than common clients keep them
  (httpx 5 s, aiohttp 15 s), so a client never reuses a connection the server
  is closing at that instant (its request would be reset).
- The protocol is uvicorn's httptools one (llhttp, the C parser Node.js uses)
  on uvloop (uvicorn's default loop once uvloop is installed, as it is here),
  not its pure-Python h11 one on asyncio: measured over HTTP, same
  code, alternating, c16 throughput +10-13% and its p99 -20% (docs/performance.md).
- Slow and idle clients (`GuardedProtocol`, uvicorn's httptools protocol with
  these additions): a connection that has not sent a complete request head
  within `header_timeout_seconds` is closed (the parser itself has no such timeout,
  so a slowloris client could hold a connection forever); beyond
  `max_connections` open connections a new one gets a 503 and is closed at
  once, and the file limit is raised to the hard limit, so idle crowds cannot
  make `accept()` fail; one client address may hold only its share of the cap
  (api.connections, RAG_MAX_CONNECTIONS_PER_CLIENT, a quarter by default): past
  it, its next connection gets the same 503 while other clients are still
  served; and once SIGTERM arrives an idle keep-alive connection lingers
  SHUTDOWN_LINGER_SECONDS instead of being cut, so a request sent on it at
  that instant is served (with `Connection: close`) rather than reset.
- The request head: one still incomplete past MAX_HEAD_BYTES gets a 400 and
  is closed (`GuardedProtocol.data_received`: llhttp bounds nothing), and at most
  MAX_PIPELINED requests wait behind the one being answered (llhttp parses on while
  a response is in flight; past it the connection is closed); a complete one is checked by api.middleware
  (at most MAX_HEADERS lines and MAX_HEADER_BYTES, else 431).
- The Host allow-list (DNS rebinding, api.security.HostAllowList) covers every
  route here (`create_app(check_host=True)`), with the names of
  api.security.transport_security.
- SIGHUP reloads the index on a thread of its own (api.routers.admin): the
  handler returns at once, and the service coalesces it with any reload running.
- A `rag.watch.Watcher` follows a newer build on disk in every serving process (a
  second server or `rag index` rebuilt the index: it moves to it within a poll), and
  with `rag serve --watch` (RAG_WATCH=true) also re-indexes when files in seeds/ change
  (debounced); started once the index is loaded (the lifespan's startup), stopped when
  shutdown starts (`with_watcher`).
- `rag serve --workers N` (`serve_workers`): N processes behind one socket, all serving
  one index built beforehand; they never build (RAG_AUTO_BUILD=false in each), share
  the memory-mapped sentence vectors, and SIGHUP replaces them one at a time (SIGHUPs
  that arrive during a replacement coalesce into one more, `coalescing_supervisor`).
  Each worker has the head timeout, connection cap and per-client share of `rag serve`
  (`WorkerProtocol`), counted per worker. The rate limit and the key-guess limit are one
  for all the workers, and `POST /admin/reload` reaches every worker (api.worker_share: a
  store in a private runtime folder the supervisor creates and removes, RAG_WORKERS_DIR;
  each worker records the index it serves and reloads on SIGUSR1, `worker_app`).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import signal
import socket
import threading

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.connections import ConnectionShare, share_of
from api.settings import ServerSettings
from rag.config import Settings
from rag.errors import RagError

SHUTDOWN_GRACE_SECONDS = 10
SHUTDOWN_LINGER_SECONDS = 1.0
KEEP_ALIVE_SECONDS = 20
MAX_HEAD_BYTES = 16 * 1024  # request line and headers
MAX_PIPELINED = 16  # requests queued behind the one being answered on a connection; past it the connection is closed
FILES_RESERVED = 128  # file descriptors kept for the index, the model, logs and the listening socket
log = logging.getLogger(__name__)


class PortInUse(RagError):
    """The port is taken by another process."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or PortInUse with a hint."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP, and
    # with Nagle on, a response's headers and body wait ~40 ms for the client's delayed ACK at every request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


OVERLOADED_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: 62\r\n\r\n"
    b'{"error": "too many open connections; retry", "detail": null}\n'
)


BAD_HEAD_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: 25\r\n\r\nRequest head is too large"
)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a request-head timeout and size bound, a connection cap and a shutdown
    linger (see above).

    The limits are class attributes, set by `guarded_protocol` from the settings."""

    header_timeout: float = 10.0
    max_connections: int = 512
    share: ConnectionShare = ConnectionShare(share_of(512))  # per client address; one per server (`guarded_protocol`)
    draining: threading.Event = threading.Event()  # the app's: set at shutdown, responses then say Connection: close

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_timer = None
        self._lingering = False
        self._share_host = None
        self._in_head = True  # the parser is reading a request head (or waits for the first one)
        self._head_bytes = 0
        if len(self.connections) > self.max_connections:
            log.warning("refused a connection: %d open, the limit is %d", len(self.connections) - 1, self.max_connections)
            return self._refuse(transport)
        host = self.client[0] if self.client else None
        if not self.share.admit(host):
            log.warning("refused a connection from %s: it holds %d, its share of the limit", host, self.share.per_client)
            return self._refuse(transport)
        self._share_host = host
        self._arm_head_timer()

    def _refuse(self, transport) -> None:
        transport.write(OVERLOADED_RESPONSE)
        transport.close()

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()  # nothing to answer: the client has not finished asking

    # The head's state follows the parser, not the response: llhttp keeps parsing while a response is in flight
    # (a pipelined request is queued), and body bytes that arrive after an early answer are not a head.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()  # the clock starts with the first byte of a request, also on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        if self._lingering and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with Connection: close, then closed
        if len(self.pipeline) > MAX_PIPELINED:  # queued requests hold memory until answered: not without end
            log.warning("closed a connection with more than %d pipelined requests", MAX_PIPELINED)
            self.pipeline.clear()
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # resumes reading, starts the next queued request if any
        if self.pipeline and not self.transport.is_closing():
            self.flow.pause_reading()  # read more only once the queue is empty

    def data_received(self, data: bytes) -> None:
        counting = self._in_head  # a chunk that starts a head after a body is not counted: at most one read
        super().data_received(data)
        if self.transport.is_closing():
            return  # refused by the parser (a 400), or closed
        if counting and self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:  # still no complete head: the parser would buffer without end
                log.warning("refused a request head still incomplete past %d bytes", MAX_HEAD_BYTES)
                self.transport.write(BAD_HEAD_RESPONSE)
                self.transport.close()

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        self.share.release(self._share_host)
        self._share_host = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """SIGTERM: a request in flight finishes with Connection: close; an idle connection lingers briefly, so a
        request sent on it at this instant is still answered, then it is closed."""
        self.draining.set()
        if not self._waiting_for_head():
            self.cycle.keep_alive = False
            return
        self._lingering = True
        self.loop.call_later(SHUTDOWN_LINGER_SECONDS, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self._waiting_for_head():
            super().shutdown()


def guarded_protocol(server_settings: ServerSettings, draining: threading.Event) -> type[GuardedProtocol]:
    """The protocol class with this server's limits, setting `draining` when shutdown starts."""
    return type("GuardedProtocol", (GuardedProtocol,), protocol_limits(server_settings, draining))


class WorkerProtocol(GuardedProtocol):
    """The protocol of each `--workers` process, named by import path (the supervisor pickles its config for the
    spawned workers, a class made by `guarded_protocol` would not survive that); `worker_app` sets its limits from
    the worker's settings before the worker accepts a connection. Each worker counts its own connections."""


def protocol_limits(server_settings: ServerSettings, draining: threading.Event) -> dict:
    """The class attributes of `GuardedProtocol` for these settings."""
    limit = open_file_limit()
    cap = server_settings.max_connections
    if cap > limit - FILES_RESERVED:
        cap = max(1, limit - FILES_RESERVED)
        log.warning("max_connections lowered to %d: the open-file limit is %d", cap, limit)
    share = ConnectionShare(share_of(cap, server_settings.max_connections_per_client), exempt=server_settings.trusted_proxies)
    return {"header_timeout": server_settings.header_timeout_seconds, "max_connections": cap, "share": share, "draining": draining}


def open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (idle connections must not make accept() fail); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def serving_app(settings: Settings, server_settings: ServerSettings, service=None):
    """The app as `rag serve` runs it: `create_app` with the Host allow-list over every route."""
    from api.app import create_app

    return create_app(settings, server_settings, service=service, check_host=True)


def quiet_exit_server(config):
    """A uvicorn server for `config` that exits 0 after a graceful stop (see below); uvicorn is imported lazily."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, exiting with status 0 after a graceful shutdown on SIGTERM/SIGINT instead of
        re-raising the signal, so `make serve` (which execs the server) ends without an error line."""

        def capture_signals(self):
            self._captured_signals = []  # nothing to re-raise: a graceful stop is a normal exit
            return super().capture_signals()

        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return Server(config)


def uvicorn_options(server_settings: ServerSettings) -> dict:
    """What every uvicorn server here shares: shutdown grace, keep-alive, our own logs, and proxy headers."""
    return {
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "log_config": None,
        "access_log": False,
        # X-Forwarded-For is believed only from the proxies named in RAG_TRUSTED_PROXIES (none by default):
        # otherwise any client could pick the address that the rate limit and the logs see.
        "proxy_headers": bool(server_settings.trusted_proxies),
        "forwarded_allow_ips": server_settings.trusted_proxies or None,
    }


def serve(settings: Settings, server_settings: ServerSettings) -> None:
    """Serve the app on server_settings.host:port until SIGTERM/SIGINT."""
    import uvicorn

    from api.observability import configure_json_logging
    from api.routers.admin import reload_in_background

    sock = bind(server_settings.host, server_settings.port)
    configure_json_logging(os.environ.get("RAG_LOG_LEVEL", "WARNING"))  # JSON lines on stderr, one per request
    server_settings = server_settings.model_copy(update={"workers_dir": None})  # one process: its own buckets
    app = serving_app(settings, server_settings)
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_in_background(app))
    config = uvicorn.Config(
        with_watcher(app, server_settings),
        http=guarded_protocol(server_settings, app.state.draining),
        **uvicorn_options(server_settings),
    )
    try:
        quiet_exit_server(config).run(sockets=[sock])
    finally:
        sock.close()


def with_watcher(app, server_settings: ServerSettings, seeds: bool | None = None):
    """`app`, with a watcher (rag.watch) while it serves: it always follows a newer build of the index on disk
    (another server or `rag index` rebuilt it), and re-indexes changed files in seeds/ when `server_settings.watch`
    is on (or `seeds`). Started when the lifespan's startup completes (the index is loaded then), stopped when its
    shutdown begins."""
    seeds = server_settings.watch if seeds is None else seeds
    import anyio

    from rag.watch import Watcher

    async def watched(scope, receive, send):
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)
        watchers: list[Watcher] = []

        async def stop_at_shutdown():
            message = await receive()
            if message["type"] == "lifespan.shutdown" and watchers:
                await anyio.to_thread.run_sync(watchers.pop().stop)
            return message

        async def start_at_startup(message):
            if message["type"] == "lifespan.startup.complete":
                service = app.state.service
                watchers.append(
                    Watcher(service, server_settings.watch_interval_seconds, seeds=seeds, debounce=server_settings.watch_debounce_seconds).start()
                )
                watched = f"{service.settings.seeds_dir} and " if seeds else ""
                log.info("watching %s%s for changes every %.1f s", watched, service.settings.index_dir / "manifest.json",
                         server_settings.watch_interval_seconds)
            await send(message)

        try:
            await app(scope, stop_at_shutdown, start_at_startup)
        finally:
            while watchers:
                watchers.pop().stop()

    return watched


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

    The supervisor makes a private runtime folder (mode 0700, removed when it exits) holding the store
    the workers share (api.worker_share): one rate limit and one key-guess limit for all of them, and
    the record of the index each serves, through which `POST /admin/reload` reaches them all.
    """
    import subprocess
    import sys

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    sock = bind(server_settings.host, server_settings.port)
    try:
        if settings.auto_build:  # `rag index` exits 0 only with the index current
            done = subprocess.run([sys.executable, "-m", "api.cli", "index"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise RagError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "building the index failed")
        else:
            check_index_current(settings)
    except BaseException:
        sock.close()
        raise
    from api.worker_share import WORKERS_DIR_ENV, RuntimeFolder

    try:
        runtime = RuntimeFolder()  # the workers' shared limits and records; a store that cannot be made stops here
    except BaseException:
        sock.close()
        raise
    os.environ.update(  # what each worker reads (spawned processes inherit the environment)
        {"RAG_AUTO_BUILD": "false", "RAG_HOST": server_settings.host, "RAG_PORT": str(server_settings.port),
         WORKERS_DIR_ENV: str(runtime.path)}
    )
    config = uvicorn.Config(
        "api.server:worker_app",
        factory=True,
        workers=workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        http="api.server:WorkerProtocol",  # the head timeout and bound, connection cap and share, in every worker
        **uvicorn_options(server_settings),
    )
    supervisor = coalescing_supervisor(config, [sock])
    try:
        supervisor.run()
    finally:
        sock.close()
        runtime.close()
        os.environ.pop(WORKERS_DIR_ENV, None)
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        raise RagError("a worker could not start (its log above says why); the server stopped")


def coalescing_supervisor(config, sockets):
    """uvicorn's worker supervisor, with signals handled as a service should:

    - SIGHUPs coalesce: however many arrive while the workers are being replaced (the supervisor's loop is busy
      then), they cause one more replacement afterwards, not one each (10 in a second: 2 rounds, not 10).
    - SIGTERM/SIGINT stop a replacement under way at once (uvicorn only reads its signals between rounds, so a
      SIGTERM waited for every queued round): the supervisor then stops its workers within the grace period."""
    from uvicorn.supervisors import Multiprocess
    from uvicorn.supervisors.multiprocess import SIGNALS

    class CoalescingMultiprocess(Multiprocess):
        def __init__(self, config, sockets):
            super().__init__(config, sockets)
            self.coalesced_hups = 0
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._stop_now)

        def _stop_now(self, sig, frame) -> None:
            self.signal_queue.append(sig)
            self.should_exit.set()  # seen by a replacement under way (restart_all checks it)

        def handle_signals(self) -> None:
            pending = []
            while self.signal_queue:
                pending.append(self.signal_queue.pop(0))
            hups = pending.count(signal.SIGHUP)
            if hups > 1:
                self.coalesced_hups += hups - 1
                log.warning("%d SIGHUPs coalesced into one replacement of the workers", hups)
            first_hup = pending.index(signal.SIGHUP) if hups else -1
            for sig in [sig for i, sig in enumerate(pending) if sig != signal.SIGHUP or i == first_hup]:
                handler = getattr(self, f"handle_{SIGNALS[sig].lower()}", None)
                if handler is not None:
                    handler()  # signals arriving meanwhile wait for the next turn of the loop

    return CoalescingMultiprocess(config, sockets)


def check_index_current(settings: Settings) -> None:
    """Refuse to start replicas over a missing or stale index (each would refuse it alone); reads only the manifest."""
    from rag.index.build import on_disk, read_corpus
    from rag.encoding.model import resolve_model

    corpus = read_corpus(settings, retry_transient=False)  # as the replicas will read it: they never build
    manifest, reasons = on_disk(settings, list(corpus.documents), resolve_model(settings.model, settings.encoder_dir))
    if reasons:
        raise RagError(f"index {manifest.get('id')} is stale ({', '.join(reasons)}); run `rag index` first: replicas never build")


def worker_app():
    """The app of one worker process of `serve_workers`: settings from the environment, responses tagged with its pid.

    With the supervisor's runtime folder (RAG_WORKERS_DIR) the limits are the shared ones (api.middleware
    picks them from the settings), and the worker takes part in reloads: SIGUSR1 reloads it, and it records
    the index it serves from start-up to shutdown (`with_worker_record`)."""
    from api.observability import configure_json_logging
    from api.routers.admin import reload_in_background
    from api.worker_share import RELOAD_SIGNAL, open_workers

    configure_json_logging(os.environ.get("RAG_LOG_LEVEL", "WARNING"))
    server_settings = ServerSettings()  # read once from the worker's environment
    app = serving_app(Settings(), server_settings)  # with the Host allow-list, as `rag serve`
    for name, value in protocol_limits(server_settings, app.state.draining).items():
        setattr(WorkerProtocol, name, value)  # this worker's limits, as `rag serve` has them
    watched = with_watcher(app, server_settings, seeds=False)  # every worker follows a newer build on disk
    app.state.workers = open_workers(server_settings.workers_dir) if server_settings.workers_dir is not None else None
    if app.state.workers is not None:
        signal.signal(RELOAD_SIGNAL, lambda signum, frame: reload_in_background(app))  # a sibling's POST /admin/reload
        watched = with_worker_record(watched, app)
    pid = str(os.getpid()).encode()

    async def tagged(scope, receive, send):
        if scope["type"] != "http":
            return await watched(scope, receive, send)

        async def send_tagged(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (WORKER_HEADER, pid)]}
            await send(message)

        await app(scope, receive, send_tagged)

    return tagged


def with_worker_record(asgi, app):
    """`asgi` (a worker's app), recording in the shared store the index the worker serves: once its lifespan
    startup completes (the index is loaded), whenever it changes (`Workers.follow`: the watcher may move it),
    and removing the record when its shutdown starts, so a reload never waits for a worker that is leaving."""

    async def recorded(scope, receive, send):
        if scope["type"] != "lifespan":
            return await asgi(scope, receive, send)
        workers = app.state.workers
        stop = threading.Event()

        async def forget_at_shutdown():
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                stop.set()
                workers.forget()
            return message

        async def record_at_startup(message):
            if message["type"] == "lifespan.startup.complete" and app.state.service is not None:
                workers.record(app.state.service.snapshot.id)
                workers.follow(app.state.service, stop)
            await send(message)

        try:
            await asgi(scope, forget_at_shutdown, record_at_startup)
        finally:
            stop.set()

    return recorded
