"""The HTTP API's FastAPI app: its routers by family (``segment.py``: ``/segment`` and ``/segmentapi``;
``jobs.py``: ``/jobs``; ``health.py``: ``/healthz``; ``page.py``: the page; ``docs_pages.py``: ``/docs``), the
error handlers, the security headers and the local metrics scope.

The same app runs under uvicorn (``python -m handler serve``) and in Lambda behind Mangum.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from handler import __version__
from handler.api.deps import resolve
from handler.api.docs_pages import ASSETS_PATH as DOCS_ASSETS_PATH
from handler.api.docs_pages import assets as docs_assets
from handler.api.docs_pages import router as docs_router
from handler.api.errors import install as install_error_handlers
from handler.api.health import router as health_router
from handler.api.jobs import router as jobs_router
from handler.api.openapi import model_openapi
from handler.api.page import STATIC_DIR, SecurityHeaders
from handler.api.page import router as page_router
from handler.api.segment import router as segment_router
from handler.core import metrics
from handler.core.settings import get_settings
from handler.engine import get_segmenter


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Under uvicorn, load the model before the first request (Lambda loads it at import instead)."""
    await run_in_threadpool(resolve, app, get_segmenter)
    yield


class LocalMetrics:
    """With ``SEG_METRICS=true``, each request to the local server is a metrics scope (printed at its end);
    in Lambda (Mangum puts ``aws.event`` in the scope) the whole invocation already is one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "aws.event" in scope or not resolve(scope.get("app"), get_settings).metrics:
            await self.app(scope, receive, send)
            return
        with metrics.scope():
            await self.app(scope, receive, send)


app = FastAPI(
    title="PointRend instance segmentation",
    version=__version__,
    description='Errors are `{"error": {"code": ..., "message": ...}}`.',
    lifespan=lifespan,
    docs_url=None,  # served from the package by docs_pages, not from a CDN
    redoc_url=None,
)
app.openapi = model_openapi(app)  # type: ignore[method-assign]  # the model's backbone and class names
install_error_handlers(app)
app.add_middleware(SecurityHeaders)
app.add_middleware(LocalMetrics)
app.include_router(page_router)
app.include_router(jobs_router)
app.include_router(docs_router)
app.include_router(segment_router)
app.include_router(health_router)
app.mount(DOCS_ASSETS_PATH, docs_assets, name="docs-assets")  # under /static/, so before it
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
