"""The web page at / and the API docs at /docs, both served from this process: nothing from a CDN.

Swagger UI's files come from the `swagger-ui-bundle` package and are served
under /docs/assets (FastAPI's self-hosting recipe), so /docs works offline.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)


def install(app: FastAPI) -> None:
    """Add the page, /docs (offline Swagger UI) and its assets to `app` (created with docs_url=None)."""
    routes = APIRouter(include_in_schema=False)

    @routes.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @routes.get("/docs")
    async def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} — API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    app.include_router(routes)
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_DIR), name="swagger-assets")
