"""What the processes of `rag serve --workers N` share: one rate limit, one key-guess limit, one reload.

Owns the workers' shared store: a SQLite file (stdlib) in a private runtime folder that the supervisor
creates (`RuntimeFolder`: `tempfile.mkdtemp`, mode 0700, removed at exit) and names to its workers in
RAG_WORKERS_DIR (`api.settings.ServerSettings.workers_dir`). A single `rag serve` never has one and keeps
the in-memory `api.limits.TokenBuckets`.

- `SharedBuckets`: `TokenBuckets`' interface (`take(client, n)`, `empty(client)`, `capacity`, at most
  `max_clients` clients, least recently seen dropped) over one table every worker reads and writes in
  `BEGIN IMMEDIATE` transactions, so N workers at 10/min let 10 requests a minute through, not 10 N.
  WAL journal, synchronous=OFF (the data lives as long as the server; a crash loses nothing that
  matters), one connection per bucket set and process. A call costs tens of microseconds
  (RELIABILITY.md has the figure).
- `Workers`: each worker's record (pid, its start time, the index id it serves, updated after every
  reload). `bring_to(index_id)` signals the live siblings that serve another index (SIGUSR1, which a
  worker answers with `api.routers.admin.reload_in_background`) and waits, bounded, until they report
  it; a record whose process is gone (or whose pid now names another process) is dropped, never waited for.

Failure policy: the supervisor creates the store before any worker starts, and a store that cannot be
created stops `rag serve --workers` with one line (`SharedStoreError`). Past that point nothing about the
store turns a request into a 500 or stops a worker (a worker that fails to load stops uvicorn's supervisor,
or aborts a SIGHUP's replacement): a worker that cannot open it (`buckets_for`, `open_workers`) logs a warning and keeps its own
in-memory buckets (and its reloads reach only itself); one whose store fails later (corrupted, removed,
locked past the timeout) counts in its own buckets, logs a warning, and tries the store again after
`RETRY_SECONDS`. The limits are then per worker, never off.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from api.limits import TokenBuckets
from rag.errors import RagError

log = logging.getLogger(__name__)

WORKERS_DIR_ENV = "RAG_WORKERS_DIR"  # ServerSettings.workers_dir: set by the supervisor for its workers only
STORE_NAME = "share.sqlite3"
BUSY_TIMEOUT_SECONDS = 2.0  # how long a call waits for another worker's transaction (each takes microseconds)
RETRY_SECONDS = 5.0  # after a failure, the worker's own buckets are used this long before the store is tried again
RELOAD_REACH_SECONDS = 30.0  # how long a reload waits for its siblings to serve the new index
RELOAD_SIGNAL = signal.SIGUSR1  # a worker's "reload the index" (SIGHUP to the supervisor replaces the workers)
POLL_SECONDS = 0.05

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (kind TEXT NOT NULL, client TEXT NOT NULL, tokens REAL NOT NULL, last REAL NOT NULL,
                                    PRIMARY KEY (kind, client)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS buckets_by_age ON buckets (kind, last);
CREATE TABLE IF NOT EXISTS bucket_counts (kind TEXT PRIMARY KEY, clients INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workers (pid INTEGER PRIMARY KEY, started TEXT NOT NULL, index_id TEXT NOT NULL, updated REAL NOT NULL);
"""


class SharedStoreError(RagError):
    """The workers' shared store cannot be created or opened (start-up stops)."""


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the store at `path`, schema in place; `SharedStoreError` naming the path if that fails."""
    try:
        db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
    except sqlite3.Error as exc:
        raise SharedStoreError(f"cannot open the workers' shared store {path}: {exc}") from None
    return db


class RuntimeFolder:
    """The supervisor's private folder (mode 0700) holding the store; `close()` removes it. Context manager."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="rag-workers-"))  # 0700: only this user can read or write it
        try:
            connect(self.store).close()  # created once, before any worker starts: a problem stops the start-up here
        except BaseException:
            self.close()
            raise

    @property
    def store(self) -> Path:
        return self.path / STORE_NAME

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "RuntimeFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def store_in(folder: Path | str) -> Path:
    return Path(folder) / STORE_NAME


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT` (the write lock taken up front, so two workers never both read the old
    tokens), rolled back on any error."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.db.execute("COMMIT")
        else:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass


class SharedBuckets:
    """A token bucket per client, shared by every process that opens the same store with the same `kind`.

    The interface and arithmetic of `api.limits.TokenBuckets`: `per_minute` tokens of burst, refilled at
    per_minute/60 a second, at most `max_clients` clients (least recently seen dropped first). The clock
    must be one all the processes share: `time.monotonic` is (CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, path: Path | str, kind: str, per_minute: int, max_clients: int = 10_000, clock=time.monotonic):
        self.path = Path(path)
        self.kind = kind
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self.clock = clock
        self.local = TokenBuckets(per_minute, max_clients, clock)  # used only while the store fails
        self._failed_until = -math.inf
        self._lock = threading.Lock()  # one connection per instance; calls from several threads take turns
        self._db = connect(self.path)

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM buckets WHERE kind = ?", (self.kind,)).fetchone()
        return int(row[0])

    def take(self, client: str, n: int = 1) -> float:
        """Take n tokens for `client`: 0 if allowed, else seconds until n are available (nothing taken).

        n larger than the bucket can ever hold is `math.inf`."""
        if n > self.capacity:
            return math.inf
        return self._call(client, n)

    def empty(self, client: str) -> float:
        """Seconds until `client` has a whole token again (0 when it has one); takes nothing."""
        return self._call(client, 0)

    def _call(self, client: str, n: int) -> float:
        now = self.clock()
        if now < self._failed_until:
            return self.local.take(client, n) if n else self.local.empty(client)
        try:
            with self._lock, _Transaction(self._db) as db:
                return self._update(db, client, n, now)
        except sqlite3.Error as exc:
            self._failed_until = now + RETRY_SECONDS
            log.warning("the workers' shared %s store %s failed (%s): this worker counts on its own for %.0f s",
                        self.kind, self.path, exc, RETRY_SECONDS)
            return self.local.take(client, n) if n else self.local.empty(client)

    def _update(self, db: sqlite3.Connection, client: str, n: int, now: float) -> float:
        row = db.execute("SELECT tokens, last FROM buckets WHERE kind = ? AND client = ?", (self.kind, client)).fetchone()
        tokens = self.capacity if row is None else min(self.capacity, row[0] + max(0.0, now - row[1]) * self.rate)
        if n:
            wait = 0.0 if tokens >= n else (n - tokens) / self.rate
            if not wait:
                tokens -= n
        else:
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        if row is not None:
            db.execute("UPDATE buckets SET tokens = ?, last = ? WHERE kind = ? AND client = ?", (tokens, now, self.kind, client))
            return wait
        db.execute("INSERT INTO buckets (kind, client, tokens, last) VALUES (?, ?, ?, ?)", (self.kind, client, tokens, now))
        db.execute("INSERT INTO bucket_counts (kind, clients) VALUES (?, 1) "
                   "ON CONFLICT (kind) DO UPDATE SET clients = clients + 1", (self.kind,))
        clients = db.execute("SELECT clients FROM bucket_counts WHERE kind = ?", (self.kind,)).fetchone()[0]
        if clients > self.max_clients:  # drop the least recently seen (never this one: it was seen just now)
            db.execute("DELETE FROM buckets WHERE kind = ? AND client IN "
                       "(SELECT client FROM buckets WHERE kind = ? ORDER BY last LIMIT ?)",
                       (self.kind, self.kind, clients - self.max_clients))
            db.execute("UPDATE bucket_counts SET clients = ? WHERE kind = ?", (self.max_clients, self.kind))
        return wait


def buckets_for(server_settings, kind: str, per_minute: int, max_clients: int = 10_000, clock=time.monotonic):
    """The token buckets of `kind` ("rate", "key_guesses") for a server: shared through the workers' store under
    `rag serve --workers` (server_settings.workers_dir set), else the process's own `TokenBuckets`."""
    folder = getattr(server_settings, "workers_dir", None)
    if folder is not None:
        try:
            return SharedBuckets(store_in(folder), kind, per_minute, max_clients, clock)
        except SharedStoreError as exc:
            log.warning("%s; this worker keeps its own %s buckets", exc, kind)
    return TokenBuckets(per_minute, max_clients, clock)


# --- the workers' records ------------------------------------------------------------------------


def open_workers(folder: Path | str) -> "Workers | None":
    """This worker's `Workers` in the store under `folder`; None (a warning logged: reloads then reach only this
    worker) when the store cannot be opened."""
    try:
        return Workers(store_in(folder))
    except SharedStoreError as exc:
        log.warning("%s; a reload sent to this worker reaches only this worker", exc)
        return None


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), so a reused pid is not taken for the
    worker that had it; "?" where /proc cannot say; None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # fields 3 on, after the name
        return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is gone; field 22 is the start time
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"


class Workers:
    """The live workers and the index each serves, in the shared store; one instance per worker process."""

    def __init__(self, path: Path | str, pid: int | None = None):
        self.path = Path(path)
        self.pid = os.getpid() if pid is None else pid
        self.started = process_started(self.pid) or "?"
        self._lock = threading.Lock()
        self._db = connect(self.path)
        self.recorded: str | None = None

    def record(self, index_id: str) -> None:
        """This worker now serves `index_id` (called after every reload, and by the worker's reporter)."""
        try:
            with self._lock, _Transaction(self._db) as db:
                db.execute("INSERT OR REPLACE INTO workers (pid, started, index_id, updated) VALUES (?, ?, ?, ?)",
                           (self.pid, self.started, index_id, time.time()))
            self.recorded = index_id
        except sqlite3.Error as exc:
            log.warning("cannot record this worker's index in the shared store %s: %s", self.path, exc)

    def forget(self) -> None:
        """This worker is leaving (its shutdown)."""
        try:
            with self._lock, _Transaction(self._db) as db:
                db.execute("DELETE FROM workers WHERE pid = ?", (self.pid,))
        except sqlite3.Error as exc:
            log.warning("cannot remove this worker's record from the shared store %s: %s", self.path, exc)

    def live(self) -> dict[int, str]:
        """pid -> index id of every worker whose process is still the one that recorded it; the others' records
        are deleted (a worker that died never blocks a reload)."""
        with self._lock:
            rows = self._db.execute("SELECT pid, started, index_id FROM workers").fetchall()
            gone = [pid for pid, started, _ in rows if pid != self.pid and process_started(pid) not in (started, "?")]
            if gone:
                try:
                    with _Transaction(self._db) as db:
                        db.executemany("DELETE FROM workers WHERE pid = ?", [(pid,) for pid in gone])
                except sqlite3.Error:
                    pass
        return {pid: index_id for pid, _, index_id in rows if pid not in gone}

    def bring_to(self, index_id: str, timeout: float = RELOAD_REACH_SECONDS) -> dict:
        """Ask every live sibling that serves another index to reload (`RELOAD_SIGNAL`) and wait, at most
        `timeout`, until all serve `index_id`. {"total": live workers, "on_index": those serving it,
        "behind": pids of the others (empty when all made it)}."""
        self.record(index_id)
        try:
            live = self.live()
        except sqlite3.Error as exc:
            log.warning("cannot read the workers' records in %s: %s; only this worker reloaded", self.path, exc)
            return {"total": 1, "on_index": 1, "behind": []}
        for pid, served in live.items():
            if pid != self.pid and served != index_id:
                try:
                    os.kill(pid, RELOAD_SIGNAL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        while True:
            behind = sorted(pid for pid, served in live.items() if served != index_id)
            if not behind or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
            try:
                live = self.live()
            except sqlite3.Error:
                break
        if behind:
            log.warning("reload: %d of %d workers still serve another index after %.0f s: %s",
                        len(behind), len(live), timeout, behind)
        return {"total": len(live), "on_index": len(live) - len(behind), "behind": behind}

    def follow(self, service, stop: threading.Event, interval: float = 1.0) -> threading.Thread:
        """A daemon thread recording the index `service` serves whenever it changes by another way than a
        reload here (the watcher following a newer build), until `stop` is set."""

        def run() -> None:
            while not stop.wait(interval):
                current = service.snapshot.id
                if current != self.recorded:
                    self.record(current)

        thread = threading.Thread(target=run, name="worker-record", daemon=True)
        thread.start()
        return thread
