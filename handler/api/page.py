"""The upload page (plain files in ``handler/api/static/``) and the security headers on every response."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handler.api.deps import resolve
from handler.core import storage
from handler.core.settings import Settings, get_settings

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page loads only its own files: no inline script, no CDN. Overlay and preview images are blob: URLs.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


# Swagger UI at /docs (docs_pages.py) runs only this app's scripts too; its CSS inlines its icons as data: SVGs.
DOCS_CSP = {"/docs": PAGE_CSP.replace("img-src 'self' blob:", "img-src 'self' data:")}


@lru_cache(maxsize=8)
def page_csp(jobs_origin: str | None) -> str:
    """With jobs, the page also uploads to the jobs bucket's origin and shows the overlay from it (a video's
    overlay plays from it too: ``media-src``)."""
    if not jobs_origin:
        return PAGE_CSP
    return (
        PAGE_CSP.replace("img-src 'self' blob:", f"img-src 'self' blob: {jobs_origin}")
        .replace("connect-src 'self'", f"connect-src 'self' {jobs_origin}")
        .replace("object-src 'none'", f"media-src 'self' {jobs_origin}; object-src 'none'")
    )


def jobs_origin(settings: Settings) -> str | None:
    return storage.bucket_origin(settings.jobs_bucket) if settings.jobs_bucket else None


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def security_headers(path: str, settings: Settings) -> dict[str, str]:
    """The headers every answer to ``path`` carries (the one place they are made): the middleware's, and an
    error ``lambda_http`` answers without the app."""
    # "/" is the one HTML page that connects anywhere (with jobs, to the bucket's origin)
    csp = page_csp(jobs_origin(settings)) if path == "/" else DOCS_CSP.get(path, PAGE_CSP)
    return {**SECURITY_HEADERS, "Content-Security-Policy": csp}


router = APIRouter()


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


class SecurityHeaders:
    """Pure ASGI middleware (no buffering, works the same under uvicorn and Mangum); the settings come through
    the app's dependency overrides (``deps.resolve``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"], resolve(scope.get("app"), get_settings))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [
                    (name.lower().encode(), value.encode())
                    for name, value in extra.items()
                    if name.lower().encode() not in present
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
