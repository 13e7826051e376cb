"""Administration: POST /admin/reload, and the reload SIGHUP asks for (api.server).

Every route here is behind `api.security.require_admin`, a dependency of the whole router: with an API key
set, the key; without one, only requests from this machine (loopback), others get 403.

A reload runs `Service.reload()` on a thread of its own, never one of the query threads: the service
coalesces concurrent calls itself (a caller waits for a reload that started after it arrived; a crowd
shares one), so a crowd of reloads neither queues loads nor starves queries. The old index keeps serving
until the new one is swapped in, and keeps serving if the reload fails (503 naming the failure). Each call
counts in the `reloads` metric (changed / unchanged / failed) and logs "index reloaded" at INFO
(this module's logger, which api.observability's JSON logging sets to INFO).

Under `rag serve --workers N` (`app.state.workers`, an api.worker_share.Workers, set by api.server.worker_app)
every reload records the index this worker now serves, and `POST /admin/reload` then brings the other live
workers to it (signalled, waited for, bounded) before answering; its `workers` field says how many made it.
A reload asked by signal (SIGHUP to a single server, SIGUSR1 to a worker) reloads that process only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future

from fastapi import APIRouter, Depends, FastAPI, Request

from api import schemas
from api.observability import Metrics
from api.security import require_admin
from rag.errors import RagError

log = logging.getLogger(__name__)


def router() -> APIRouter:
    routes = APIRouter(tags=["ops"], dependencies=[Depends(require_admin)])

    @routes.post(
        "/admin/reload", response_model=schemas.ReloadResponse, response_model_exclude_unset=True,  # no "workers" from one process
        summary="Reload the index", responses={403: schemas.ERROR, 503: schemas.ERROR},
    )
    async def admin_reload(request: Request):
        """Re-read the documents and the index on disk (e.g. after `rag index`) and serve it.

        Needs the API key when one is set; without one, only requests from this machine are allowed.
        Concurrent reloads coalesce into one. With several worker processes, every live worker serves the new
        index before the response (`workers` says how many do)."""
        return await asyncio.wrap_future(start_reload(request.app, everywhere=True))

    return routes


def start_reload(app: FastAPI, everywhere: bool = False) -> Future:
    """`reload_index(app, everywhere)` on a daemon thread of its own (it may wait for a running reload or for
    sibling workers; a shutdown never waits for it); a future of its outcome."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(reload_index(app, everywhere))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            future.set_exception(exc)

    threading.Thread(target=run, name="index-reload", daemon=True).start()
    return future


def reload_index(app: FastAPI, everywhere: bool = False) -> dict:
    """Reload the app's service (`Service.reload` coalesces); the old index keeps serving if anything fails.

    In a worker of `rag serve --workers N`, the index now served is recorded, and with `everywhere` the other
    live workers are brought to it (`Workers.bring_to`), reported under "workers"."""
    service = app.state.service
    metrics: Metrics = app.state.metrics
    if service is None:
        raise RagError("the index is not loaded yet")
    previous = service.snapshot.id
    try:
        current = service.reload()
    except Exception as exc:  # the old index keeps serving; the caller gets a 503 with the reason
        metrics.reloads.labels("failed").inc()
        raise RagError(f"reload failed, still serving index {previous}: {exc}") from exc
    changed = current != previous
    metrics.reloads.labels("changed" if changed else "unchanged").inc()
    log.info("index reloaded: %s -> %s", previous, current)
    result = {"index_id": current, "previous": previous, "changed": changed, "skipped": service.snapshot.info()["skipped"]}
    workers = getattr(app.state, "workers", None)
    if workers is not None:
        if everywhere:
            result["workers"] = workers.bring_to(current)
        else:
            workers.record(current)
    return result


def reload_in_background(app: FastAPI) -> Future:
    """What SIGHUP does (and SIGUSR1 to a worker): a reload of this process started at once on its own thread
    (the signal handler never waits); a failure is logged, the old index keeps serving."""
    future = start_reload(app)

    def report(done: Future) -> None:
        if done.exception() is not None:
            log.error("index reload failed, still serving the previous index: %s", done.exception())

    future.add_done_callback(report)
    return future
