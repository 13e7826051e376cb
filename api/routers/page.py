"""The web page at / and the API docs at /docs, both served from this process: nothing from a CDN.

The page is one file, api/static/index.html; what it must know of this server is filled in once per app
from the settings (`page_config`): the retrieval modes, the default mode and `top_k`, the `top_k` cap, and
which document is the bundled article (the page shows that article's example question only when the
corpus is that article alone; any other corpus gets a neutral placeholder). The values go in as JSON in a
`<script type="application/json">` block, escaped so no value can close it.

Swagger UI's files come from the `swagger-ui-bundle` package and are served
under /docs/assets (FastAPI's self-hosting recipe), so /docs works offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from rag.config import MODES, Settings
from rag.encoding.model import names_default_model

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
CONFIG_SLOT = "__PAGE_CONFIG__"  # in index.html's <script id="page-config">
# The article that ships in seeds/, and a question it answers: the page's placeholder for it alone.
BUNDLED_DOCUMENT = "permanent-revolution-1917-and-today"
BUNDLED_EXAMPLE = "Who revised the theory of permanent revolution?"


def page_config(settings: Settings) -> dict:
    """What the page takes from the server instead of hard-coding it."""
    return {
        "modes": list(MODES),
        "default_mode": settings.default_mode.value,
        "default_top_k": settings.default_top_k,
        "max_top_k": settings.max_top_k,
        "bundled": {"document": BUNDLED_DOCUMENT, "example": BUNDLED_EXAMPLE},
        # the "Stricter check" box: ticked when every question is verified anyway, offered when a question may ask
        # (the verifier exists for the default model only: rag.encoding.verifier.for_model)
        "verifier": {"default": settings.verifier,
                     "on_request": names_default_model(settings.model) and (settings.verifier or settings.verify_on_request)},
    }


def render_page(settings: Settings) -> str:
    """index.html with `page_config` in its config block (`<` escaped: no value can end the script element)."""
    config = json.dumps(page_config(settings), ensure_ascii=False).replace("<", "\\u003c")
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace(CONFIG_SLOT, config, 1)


def install(app: FastAPI) -> None:
    """Add the page, /docs (offline Swagger UI) and its assets to `app` (created with docs_url=None)."""
    routes = APIRouter(include_in_schema=False)
    html = render_page(app.state.settings)

    @routes.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(html)

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
