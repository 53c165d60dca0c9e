"""``GET /docs``: Swagger UI served from the package, no CDN and no inline code.

Its assets (``swagger-ui-bundle.js``, ``swagger-ui.css``) come from the pinned ``fastapi-offline`` package's
static folder, mounted at ``/static/swagger-ui``; the page is a plain HTML file in ``static/`` whose only other script
is ``static/docs.js``, so it runs under the upload page's strict Content-Security-Policy (``page.DOCS_CSP``
adds data: images, Swagger UI's icons). URLs are relative, so the page also works under an API Gateway stage
path. FastAPI's ReDoc page (``/redoc``) is not served: ReDoc needs inline styles, a blob: worker and loads its
logo from its vendor's CDN whatever its options.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from handler.api.page import STATIC_DIR

ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
# Under /static/: the template's "/static/{proxy+}" route already reaches it.
ASSETS_PATH = "/static/swagger-ui"

router = APIRouter()
assets = StaticFiles(directory=ASSETS_DIR)


@router.get("/docs", include_in_schema=False)
def swagger_ui() -> FileResponse:
    return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")
