"""Operations: GET /health, GET /ready, GET /metrics: is it alive, is it ready, how is it doing.

Open to monitoring (/health and /ready need no key, api.security.OPEN_PATHS). What the key protects stays
behind it there too: with RAG_API_KEY set, /ready gives everyone the count of skipped files, and their paths
and reasons only to a request carrying the key (api.security.holds_api_key). Reloading the index is
administration and has a router of its own, behind its auth (api.routers.admin).
"""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api import schemas
from api.deps import get_admission, get_metrics, get_server_settings
from api.limits import Admission
from api.observability import PROMETHEUS_CONTENT_TYPE, Metrics
from api.security import holds_api_key
from api.settings import ServerSettings


def router() -> APIRouter:
    routes = APIRouter(tags=["ops"])

    @routes.get("/health", response_model=schemas.Health)
    async def health() -> schemas.Health:
        """The process is alive (it may still be loading)."""
        return schemas.Health(status="ok")

    @routes.get("/ready", response_model=schemas.Ready, responses={503: schemas.ERROR})
    async def ready(
        request: Request,
        admission: Admission = Depends(get_admission),
        server: ServerSettings = Depends(get_server_settings),
    ):
        """Model and index are loaded: the index id and passage count, the files not indexed, and the load
        (saturated: new queries get 503).

        With an API key set, the skipped files' paths and reasons are listed only for a request carrying the
        key; anyone gets their count."""
        service = request.app.state.service
        if service is None:
            return JSONResponse({"error": "loading", "detail": None}, status_code=503)
        load = schemas.Load(**dataclasses.asdict(admission.load()))
        info = service.snapshot.info()
        info["skipped_count"] = len(info["skipped"])
        if not holds_api_key(request, server):
            info["skipped"] = None
        return schemas.Ready(status="ready", load=load, **info)

    @routes.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}},
    )
    async def get_metrics_text(metrics: Metrics = Depends(get_metrics)) -> Response:
        """Request counts and latencies by route, retrieval stage latencies, index size and version."""
        return Response(metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    return routes
