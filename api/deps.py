"""What every route depends on: the service, the settings, the metrics, the admission lanes — one `Depends` each.

Routes never reach into `app.state` themselves. `get_service` answers 503 (via
`RagError`) while the index is still loading in the lifespan. Each is `async def`:
FastAPI runs a plain `def` dependency in the thread pool, a thread hop per
dependency per request for what is one attribute read.
"""

from __future__ import annotations

from fastapi import Request

from api.limits import Admission
from api.observability import Metrics
from api.settings import ServerSettings
from rag.errors import RagError
from rag.service import Service


async def get_service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:  # only while the lifespan is still opening it
        raise RagError("the index is not loaded yet")
    return service


async def get_server_settings(request: Request) -> ServerSettings:
    return request.app.state.server_settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_admission(request: Request) -> Admission:
    return request.app.state.admission
