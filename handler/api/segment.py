"""``POST /segment`` and ``POST /segmentapi`` (the ancestor's contract): an image in, its result out (JSON, the
overlay PNG, a zip of cut-outs, or the ancestor's six keys)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from handler.api.deps import AdmissionDep, SegmenterDep, SettingsDep
from handler.api.limits import binary_budget, ensure_fits, too_large
from handler.api.models import ERROR_RESPONSES, SeedResponse, SegmentJSONRequest, SegmentQuery, SegmentResponse
from handler.api.uploads import IMAGE_FIELD, ImageSource, image_source, multipart_image, read_allowed
from handler.core import metrics
from handler.core.deadline import LambdaContext
from handler.core.errors import InvalidRequest
from handler.core.logs import logger
from handler.core.settings import Settings
from handler.engine import (
    CutoutWriter,
    CutoutZip,
    Outputs,
    RequestOptions,
    SegmentedImage,
    Segmenter,
    ZipTooLarge,
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


router = APIRouter()


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


@router.post(
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


@router.post(
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
