"""The HTTP app: FastAPI assembled from one router per feature, over one `rag.service.Service`.

Thin by design (txtai's api-over-library split): routers (api/routers/) turn
requests into `Service` calls through `Depends(get_service)`; shapes and the
configured limits are declared in `api.schemas`; library errors map to status
codes here (`InvalidInput` 422, `NotFound` 404, `Overloaded` 503 + Retry-After,
`RagError` 503), and every
error body is `{"error": "<what is wrong>", "detail": ...}`. The model and
index load once, in the lifespan, off the event loop; queries run in worker
threads so the loop keeps accepting requests while the CPU embeds.

`create_app(settings, server_settings)` builds a fresh app;
`create_app(service=...)` serves an already-open service (tests share one);
`check_host=True` adds the Host allow-list to every route (`rag serve`, api.server).
"""

from __future__ import annotations

import contextlib
import logging

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import schemas
from api.limits import Admission, describe_body_error
from api.mcp_server import mount_mcp
from api.middleware import install_middleware
from api.observability import Metrics
from api.routers import admin, documents, ops, page, query
from api.security import transport_security
from api.settings import ServerSettings, get_server_settings
from api.wording import QUOTED_DATA
from rag.config import Settings, get_settings
from rag.errors import Conflict, InvalidInput, NotFound, Overloaded, RagError
from rag.service import Service

log = logging.getLogger(__name__)

# What any route may answer besides its own codes (see api.middleware, api.limits).
COMMON_RESPONSES = {
    400: {"model": schemas.ErrorResponse, "description": "Body that cannot be parsed (not UTF-8, nested too deeply, ...)"},
    401: {"model": schemas.ErrorResponse, "description": "Missing or wrong API key (only when one is configured)"},
    413: {"model": schemas.ErrorResponse, "description": "Request body too large"},
    422: {"model": schemas.ErrorResponse, "description": "Invalid input; `error` says what is wrong"},
    403: {"model": schemas.ErrorResponse, "description": "A state-changing request from a foreign Origin"},
    429: {"model": schemas.ErrorResponse, "description": "Rate limit or key-guess limit exceeded; see Retry-After"},
    431: {"model": schemas.ErrorResponse, "description": "Too many request headers"},
    503: {"model": schemas.ErrorResponse, "description": "Index not loaded or unusable, or the server is busy (see Retry-After)"},
}


def create_app(
    settings: Settings | None = None, server_settings: ServerSettings | None = None, service: Service | None = None, check_host: bool = False
) -> FastAPI:
    settings = settings or (service.settings if service else get_settings())
    server_settings = server_settings or get_server_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.service is None:
            app.state.service = await anyio.to_thread.run_sync(Service.open, settings)
        async with app.state.mcp_sessions.run():  # MCP at /mcp (api.mcp_server)
            yield

    app = FastAPI(
        title="Ask the document",
        version="0.1.0",
        description="Cited passage retrieval over the documents in seeds/. " + QUOTED_DATA,
        lifespan=lifespan,
        responses=COMMON_RESPONSES,
        docs_url=None,  # served offline by api.routers.page
        redoc_url=None,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.server_settings = server_settings
    app.state.admission = Admission.from_settings(server_settings)  # query work: bounded lanes, 503 when full
    _install_error_handlers(app)
    app.state.metrics = Metrics(lambda: app.state.service, app.state.admission)
    # which Host/Origin names are this service's: computed once (it warns when they cannot be known), for both
    # the Host allow-list and MCP's own check
    app.state.transport_security = transport_security(server_settings)
    # request ids, logs, metrics, Host (with check_host), Origin, CORS, rate limit, API key, admission, body size
    install_middleware(app, server_settings, app.state.metrics, check_host=check_host, security=app.state.transport_security)
    app.include_router(query.router(schemas.request_models(settings)))
    app.include_router(documents.router())
    app.include_router(ops.router())
    app.include_router(admin.router())
    page.install(app)
    app.state.mcp_sessions = mount_mcp(app, settings, server_settings, security=app.state.transport_security)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str, detail: list | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "detail": detail}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_describe(e) for e in exc.errors()]
        sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
        whole_body = any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors())
        if whole_body and sent != "application/json" and not sent.endswith("+json") and not sent.startswith("multipart/"):
            # FastAPI reads a body sent as another type as a string, and says only that it is not an object
            problems.insert(0, f"the body must be JSON sent with Content-Type: application/json (it came as {sent or 'no type'})")
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        return error(422, "; ".join(problems) or "invalid request", detail)

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return error(409, str(exc))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return JSONResponse({"error": str(exc), "detail": None}, status_code=503, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RagError)
    async def unavailable(request: Request, exc: RagError) -> JSONResponse:
        return error(503, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        message = describe_body_error(exc) or message
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}"
        return JSONResponse({"error": message, "detail": None}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _describe(error: dict) -> str:
    """One readable line for a pydantic validation error: where, then what."""
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    where = ".".join(loc) or "body"
    message = error.get("msg", "is invalid")
    if error.get("type") == "json_invalid":
        return f"request body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
    return f"{where}: {message}"
