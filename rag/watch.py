"""Keeping a served snapshot current without anyone calling reload: two cheap pollers on one thread.

- **A newer build** (always, for every process serving an index): when another process (`rag index`, a
  second server, a replica's builder) replaces `index/manifest.json`, the served snapshot is stale. The
  watcher stats the manifest every `interval` seconds; when its signature (inode, size, mtime) changes and
  the build it names is not the one served, it calls `Service.reload()`, which loads the new build (or,
  with auto-build, rebuilds if it no longer matches seeds/). Until then `/ready` keeps naming the old id.
- **Changed documents** (`seeds=True`, `rag serve --watch`): the watcher takes a signature of seeds/ (every
  file's path, size and mtime; no file is read) and reloads once the folder has changed and then stayed
  unchanged for `debounce` seconds, so an editor's save or a copy of many files costs one rebuild.

Polling rather than inotify: the standard library only, the same behaviour on every file system (network
mounts and containers included), and at a few stats a second the cost is nil. A reload that fails is
logged and tried again at the next change; the old snapshot keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from rag.index.store import MANIFEST, read_manifest

log = logging.getLogger(__name__)

MAX_WATCHED_FILES = 200_000  # past this many entries the seeds signature stops growing (and says so once)


def manifest_signature(index_dir: Path) -> tuple | None:
    try:
        st = os.stat(Path(index_dir) / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def seeds_signature(seeds_dir: Path) -> tuple:
    """What changes when a document is added, removed, renamed or edited: (path, size, mtime) of every entry."""
    entries = []
    for root, dirs, files in os.walk(seeds_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            entries.append((os.path.join(root, name), st.st_size, st.st_mtime_ns))
            if len(entries) >= MAX_WATCHED_FILES:
                return tuple(entries)
    return tuple(entries)


class Watcher:
    """Polls on a daemon thread until `stop()`; `check()` runs one round (tests call it directly)."""

    def __init__(self, service, interval: float = 2.0, seeds: bool = False, debounce: float = 1.0):
        self.service = service
        self.interval = interval
        self.debounce = debounce
        self.watch_seeds = seeds
        self.reloads = 0
        self._manifest = manifest_signature(service.settings.index_dir)
        self._seeds = seeds_signature(service.settings.seeds_dir) if seeds else None
        self._seeds_changed_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Watcher":
        self._thread = threading.Thread(target=self._run, name="index-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the watcher die: the next round tries again
                log.exception("index watcher round failed")

    def check(self, now: float | None = None) -> bool:
        """One round; True when it reloaded."""
        now = time.monotonic() if now is None else now
        if self.watch_seeds and self._seeds_due(now):
            return self._reload("documents changed under seeds/")
        signature = manifest_signature(self.service.settings.index_dir)
        if signature is None or signature == self._manifest:
            return False
        self._manifest = signature
        try:
            build = read_manifest(self.service.settings.index_dir).get("build")
        except Exception:  # half-replaced or damaged: the next round looks again
            return False
        if build == self.service.snapshot.index.manifest.get("build"):
            return False
        return self._reload("a newer index build is on disk")

    def _seeds_due(self, now: float) -> bool:
        signature = seeds_signature(self.service.settings.seeds_dir)
        if signature != self._seeds:
            self._seeds, self._seeds_changed_at = signature, now
            return False
        if self._seeds_changed_at is not None and now - self._seeds_changed_at >= self.debounce:
            self._seeds_changed_at = None
            return True
        return False

    def _reload(self, why: str) -> bool:
        before = self.service.snapshot.id
        try:
            now_serving = self.service.reload()
        except Exception as exc:
            log.error("%s, but the reload failed (still serving %s): %s", why, before, exc)
            return False
        self._manifest = manifest_signature(self.service.settings.index_dir)
        self.reloads += 1
        log.info("%s: index %s -> %s", why, before, now_serving)
        return True
