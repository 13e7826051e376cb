"""Operations: GET /health, GET /ready, GET /metrics, POST /admin/reload.

Reloads coalesce: while one runs (on its own thread), every other request and
SIGHUP gets that same reload's outcome instead of queueing a second one, and
waiting for it holds no worker thread (an awaited future), so a crowd of
reload calls cannot starve queries. The old index keeps serving until the new
one is swapped in, and keeps serving if the reload fails (503 naming it).

`/admin/reload` needs the API key when one is set; without one it is refused
(403) unless the request comes from this machine (loopback).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from concurrent.futures import Future

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from api import schemas
from api.deps import get_admission, get_metrics, get_server_settings
from api.limits import Admission
from api.observability import PROMETHEUS_CONTENT_TYPE, Metrics
from api.settings import ServerSettings
from rag.errors import RagError

log = logging.getLogger(__name__)
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
ERROR = {"model": schemas.ErrorResponse}


def router() -> APIRouter:
    routes = APIRouter(tags=["ops"])

    @routes.get("/health", response_model=schemas.Health)
    async def health() -> schemas.Health:
        """The process is alive (it may still be loading)."""
        return schemas.Health(status="ok")

    @routes.get("/ready", response_model=schemas.Ready, responses={503: ERROR})
    async def ready(request: Request, admission: Admission = Depends(get_admission)):
        """Model and index are loaded: the index id and passage count, and the load (saturated: new queries get 503)."""
        service = request.app.state.service
        if service is None:
            return JSONResponse({"error": "loading", "detail": None}, status_code=503)
        load = schemas.Load(**dataclasses.asdict(admission.load()))
        return schemas.Ready(status="ready", load=load, **service.snapshot.info())

    @routes.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}},
    )
    async def get_metrics_text(metrics: Metrics = Depends(get_metrics)) -> Response:
        """Request counts and latencies by route, retrieval stage latencies, index size and version."""
        return Response(metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    @routes.post("/admin/reload", response_model=schemas.ReloadResponse, summary="Reload the index", responses={403: ERROR, 503: ERROR})
    async def admin_reload(request: Request, server: ServerSettings = Depends(get_server_settings)):
        """Re-read the documents and the index on disk (e.g. after `rag index`) and serve it.

        Needs the API key when one is set; without one, only requests from this machine are allowed.
        Concurrent reloads coalesce into one."""
        client = (request.client.host if request.client else "") or ""
        if not server.api_key and client not in LOOPBACK:
            return JSONResponse(
                {"error": "reload is allowed from this machine only (or set RAG_API_KEY)", "detail": None}, status_code=403
            )
        return await asyncio.wrap_future(reload_coalesced(request.app))

    return routes


def reload_coalesced(app: FastAPI) -> Future:
    """Start a reload on its own thread, or join the one already running; a future of its outcome."""
    with app.state.reload_lock:
        running: Future | None = app.state.reload_future
        if running is not None and not running.done():
            return running
        future: Future = Future()
        app.state.reload_future = future

    def run() -> None:
        try:
            future.set_result(reload_index(app))
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter
            future.set_exception(exc)

    threading.Thread(target=run, name="index-reload", daemon=True).start()
    return future


def reload_index(app: FastAPI) -> dict:
    """Reload the app's service; the old index keeps serving if anything fails."""
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
    return {"index_id": current, "previous": previous, "changed": changed, "skipped": service.snapshot.info()["skipped"]}


def reload_in_background(app: FastAPI) -> Future:
    """What SIGHUP does: a coalesced reload; a failure is logged, the old index keeps serving."""
    future = reload_coalesced(app)

    def report(done: Future) -> None:
        if done.exception() is not None:
            log.error("index reload failed, still serving the previous index: %s", done.exception())

    future.add_done_callback(report)
    return future
