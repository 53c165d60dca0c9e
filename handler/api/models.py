"""The HTTP API's request and response schemas: what /docs and /openapi.json publish."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Unknown keys are errors: the published schema is the whole contract."""

    model_config = ConfigDict(extra="forbid")


class SegmentJSONRequest(Strict):
    """``POST /segment`` with ``Content-Type: application/json``: exactly one of the two fields."""

    image_base64: str | None = Field(None, description="the image file's bytes, base64-encoded")
    s3_uri: str | None = Field(
        None, description="s3://bucket/key of the image; the bucket must be in SEG_ALLOWED_BUCKETS"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SegmentJSONRequest:
        if (self.image_base64 is None) == (self.s3_uri is None):
            raise ValueError("give exactly one of image_base64 and s3_uri")
        return self


class ImageSize(Strict):
    width: int
    height: int


class RLEMask(Strict):
    """COCO compressed RLE, as ``pycocotools.mask.decode`` reads it."""

    size: list[int] = Field(description="[height, width]")
    counts: str


class ModelInfo(Strict):
    name: str
    sha256: str | None


class SeedResponse(Strict):
    """The ancestor PixelLibAPI's ``/segmentapi`` body: these keys and no others."""

    boxes: list[list[int]] = Field(description="[x1, y1, x2, y2] per object, pixels, truncated to int")
    class_ids: list[int] = Field(description="0-based COCO class index per object")
    class_names: list[str]
    mask_shape: list[int] = Field(description="[height, width, number of objects]")
    object_counts: dict[str, int] = Field(description="objects per class name")
    scores: list[int] = Field(description="confidence per object, 0-100, truncated to int")


class SegmentResponse(SeedResponse):
    """``POST /segment``: the seed keys plus image size, masks, model and timings."""

    image: ImageSize
    masks: list[RLEMask] | None = Field(None, description="with masks=rle (the default), one per object")
    polygons: list[list[list[float]]] | None = Field(
        None, description="with masks=polygons: per object, its outer contours as flat [x1, y1, x2, y2, ...]"
    )
    model: ModelInfo
    timings_ms: dict[str, float]
    overlay_png_base64: str | None = Field(
        None, description="with overlay=true: the overlay PNG (what format=png returns), base64-encoded"
    )


class HealthModel(Strict):
    loaded: bool
    name: str
    sha256: str | None
    load_ms: float


class HealthDefaults(Strict):
    """The server's defaults, for clients such as the upload page."""

    confidence: float
    detection_speed: str
    max_image_bytes: int


class HealthResponse(Strict):
    status: str
    version: str
    model: HealthModel
    defaults: HealthDefaults


class ErrorDetail(Strict):
    code: str = Field(description="stable, machine-readable, e.g. not_an_image")
    message: str = Field(description="for people: what was wrong and, where it helps, the limit")


class ErrorResponse(Strict):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "empty image or malformed request"),
        (403, "s3_uri names a bucket that is not allowed"),
        (404, "s3_uri names an object that does not exist"),
        (413, "request body, image bytes or pixels above the limit"),
        (415, "not an image, or an unsupported Content-Type"),
        (422, "corrupt or unusable image (e.g. one side over 100 times the other), or invalid parameters"),
        (503, "too many requests in progress; retry"),
    )
}
