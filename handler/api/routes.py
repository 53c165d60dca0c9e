"""The HTTP API: ``POST /segment``, ``POST /segmentapi`` (the ancestor's contract), ``GET /healthz``, the page.

The same app runs under uvicorn (``python -m handler serve``) and in Lambda behind Mangum.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

import handler.api.errors as api_errors
from handler import __version__
from handler.api.deps import AdmissionDep, LoadedSegmenterDep, SegmenterDep, SettingsDep, resolve
from handler.api.docs_pages import ASSETS_PATH as DOCS_ASSETS_PATH
from handler.api.docs_pages import assets as docs_assets
from handler.api.docs_pages import router as docs_router
from handler.api.jobs import router as jobs_router
from handler.api.limits import binary_budget, ensure_fits, too_large
from handler.api.models import (
    ERROR_RESPONSES,
    ErrorResponse,
    HealthResponse,
    SeedResponse,
    SegmentJSONRequest,
    SegmentQuery,
    SegmentResponse,
)
from handler.api.openapi import model_openapi
from handler.api.page import STATIC_DIR, SecurityHeaders, router
from handler.api.uploads import IMAGE_FIELD, ImageSource, image_source, multipart_image, read_allowed
from handler.core import metrics
from handler.core.deadline import LambdaContext
from handler.core.errors import InvalidRequest, ModelUnavailable
from handler.core.logs import logger
from handler.core.settings import Settings, get_settings
from handler.engine import (
    CutoutWriter,
    CutoutZip,
    Outputs,
    RequestOptions,
    SegmentedImage,
    Segmenter,
    ZipTooLarge,
    get_segmenter,
    segment_bytes,
)

Render = Callable[[SegmentedImage], Response]

MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {IMAGE_FIELD: {"type": "string", "format": "binary"}},
    "required": [IMAGE_FIELD],
}
SEGMENT_BODY = {
    "required": True,
    "description": "the image: a multipart file field `image`, a raw image body, or JSON",
    "content": {
        "multipart/form-data": {"schema": MULTIPART_SCHEMA},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": SegmentJSONRequest.model_json_schema()},
    },
}


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
api_errors.install(app)
app.add_middleware(SecurityHeaders)
app.add_middleware(LocalMetrics)
app.include_router(router)
app.include_router(jobs_router)
app.include_router(docs_router)
app.mount(DOCS_ASSETS_PATH, docs_assets, name="docs-assets")  # under /static/, so before it
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@dataclass(frozen=True)
class SegmentWork:
    """One request's blocking work (S3 read, decode, model, encoding), run in a worker thread."""

    source: ImageSource
    options: RequestOptions
    render: Render
    context: LambdaContext | None  # Mangum puts the Lambda context in the ASGI scope; None elsewhere
    outputs: Outputs  # what the render needs made from each mask while the model's objects are pasted

    def __call__(self, segmenter: Segmenter, settings: Settings) -> Response:
        data = self.source if isinstance(self.source, bytes) else read_allowed(self.source, settings)
        try:
            segmented = segment_bytes(data, segmenter, settings, self.options, self.context, self.outputs)
        except ZipTooLarge as exc:
            raise too_large(f"over {exc.size} bytes of zip with {exc.objects} cut-outs in it") from None
        result = segmented.result
        logger.info("segmented", extra={"objects": len(result), "timings_ms": result.timings_ms})
        metrics.record_image("http", result)
        response = ensure_fits(self.render(segmented))
        response.headers["X-Image-SHA256"] = hashlib.sha256(data).hexdigest()
        return response


def _json_body(segmented: SegmentedImage) -> dict[str, Any]:
    """The result as JSON, with the overlay PNG (base64) when it was drawn."""
    body = segmented.result.to_json()
    if segmented.result.overlay_png is not None:
        body["overlay_png_base64"] = base64.b64encode(segmented.result.overlay_png).decode()
    return body


def _json(segmented: SegmentedImage) -> Response:
    return JSONResponse(_json_body(segmented))


def _zip(archive: CutoutZip) -> Render:
    """The cut-outs the request's ``CutoutWriter`` put in ``archive`` while the masks were in hand, and
    ``result.json`` (what format=json answers) last."""

    def render(segmented: SegmentedImage) -> Response:
        disposition = {"Content-Disposition": 'attachment; filename="cutouts.zip"'}
        return Response(archive.finish(_json_body(segmented)), media_type="application/zip", headers=disposition)

    return render


def _png(segmented: SegmentedImage) -> Response:
    return Response(segmented.result.overlay_png, media_type="image/png")


def _seed_json(segmented: SegmentedImage) -> Response:
    return JSONResponse(segmented.result.to_seed_json())


@app.post(
    "/segment",
    response_model=SegmentResponse,
    responses={
        200: {
            "content": {"image/png": {}, "application/zip": {}},
            "description": "JSON; with format=png the overlay image; with format=cutouts a zip of one RGBA PNG per "
            "object (NN-<class>.png, framed by its mask's extent; cutouts=box: the box rounded outwards, opaque) and "
            "result.json",
        },
        **ERROR_RESPONSES,
    },
    openapi_extra={"requestBody": SEGMENT_BODY},
)
async def segment(
    request: Request,
    options: Annotated[SegmentQuery, Query()],
    settings: SettingsDep,
    segmenter: SegmenterDep,
    admission: AdmissionDep,
) -> Any:
    """Segment an image sent as multipart `image`, a raw `image/*` body, or JSON `image_base64` / `s3_uri`."""
    options.wanted(segmenter)  # a bad query is refused before the upload is read (checked once: kept)
    if options.overlay_max_side is not None and options.overlay_max_side > settings.overlay_max_side:
        raise InvalidRequest(f"overlay_max_side is at most {settings.overlay_max_side} (SEG_OVERLAY_MAX_SIDE)")
    if options.cutouts and options.format != "cutouts":
        raise InvalidRequest(f"cutouts={options.cutouts} applies to format=cutouts (the zip); add format=cutouts")
    side = options.overlay_max_side or settings.overlay_max_side
    outputs = Outputs(masks=options.masks, overlay=bool(options.overlay), overlay_max_side=side)
    render: Render = _json
    if options.format == "png":
        render, outputs = _png, Outputs(masks="none", overlay=True, overlay_max_side=side)
    elif options.format == "cutouts":  # made while each mask is in hand, refused once over what a response carries
        archive = CutoutZip(max_bytes=binary_budget())
        render = _zip(archive)
        outputs = replace(outputs, consumers=[CutoutWriter(archive.add, options.cutouts or "mask")])
    with admission.admit():
        job = SegmentWork(
            await image_source(request, settings),
            options,
            render,
            request.scope.get("aws.context"),
            outputs,
        )
        return await run_in_threadpool(admission.run, job, segmenter, settings)


@app.post(
    "/segmentapi",
    response_model=SeedResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": MULTIPART_SCHEMA}}}},
)
async def segmentapi(
    request: Request,
    settings: SettingsDep,
    segmenter: SegmenterDep,
    admission: AdmissionDep,
) -> Any:
    """The ancestor PixelLibAPI's route: multipart `image` in, its six keys out (scores as ints 0-100)."""
    with admission.admit():
        data = await multipart_image(request, settings)
        job = SegmentWork(
            data,
            RequestOptions(confidence=settings.confidence),
            _seed_json,
            request.scope.get("aws.context"),
            Outputs(masks="none"),
        )
        return await run_in_threadpool(admission.run, job, segmenter, settings)


@app.get(
    "/healthz",
    response_model=HealthResponse,
    responses={503: {"model": ErrorResponse, "description": "the model cannot be loaded"}},
)
def healthz(settings: SettingsDep, segmenter: LoadedSegmenterDep) -> Any:
    """Model loaded (name, backbone, classes, the weights file's sha256, load time), version, and the defaults
    the page uses."""
    if segmenter is None:
        return api_errors.error_response(ModelUnavailable("the model cannot be loaded; see the logs"))
    return {
        "status": "ok",
        "version": __version__,
        "model": {
            "loaded": True,
            "name": segmenter.model_name,
            "sha256": segmenter.model_sha256,
            "load_ms": segmenter.load_ms,
            "backbone": segmenter.backbone,
            "classes": len(segmenter.class_names),
            "class_names": list(segmenter.class_names),
        },
        "defaults": {
            "confidence": settings.confidence,
            "detection_speed": settings.detection_speed,
            "max_image_bytes": settings.max_image_bytes,
            "jobs": bool(settings.jobs_bucket),
        },
    }
