"""The HTTP API's request and response schemas: what /docs and /openapi.json publish."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from handler.engine import RequestOptions


class Strict(BaseModel):
    """Unknown keys are errors: the published schema is the whole contract."""

    model_config = ConfigDict(extra="forbid")


class SegmentJSONRequest(Strict):
    """``POST /segment`` with ``Content-Type: application/json``: exactly one of the two fields."""

    image_base64: str | None = Field(None, description="the image file's bytes, base64-encoded")
    s3_uri: str | None = Field(
        None,
        description="s3://bucket/key of the image, when the server reads s3_uri at all (SEG_ALLOW_S3_URI) and the "
        "object lies under one of its SEG_ALLOWED_BUCKETS",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SegmentJSONRequest:
        if (self.image_base64 is None) == (self.s3_uri is None):
            raise ValueError("give exactly one of image_base64 and s3_uri")
        return self


class SegmentQuery(RequestOptions):
    """``POST /segment``'s query parameters: the options every entry point shares, and the answer's format."""

    # Unknown query parameters stay ignored, as before. The field is named as the parameter (no alias), so
    # that a validation error names ``query.format``, what the client sent.
    model_config = ConfigDict(frozen=True, extra="ignore")

    format: Literal["json", "png", "cutouts"] = Field(
        "json",
        description="png: the overlay image; cutouts: a zip of one RGBA PNG per object (NN-<class>.png, in result "
        "order) and result.json (this JSON)",
    )
    overlay_max_side: int | None = Field(
        None, ge=16, description="the overlay's long side at most, px (default and maximum: SEG_OVERLAY_MAX_SIDE)"
    )


class ImageSize(Strict):
    width: int
    height: int


class RLEMask(Strict):
    """COCO compressed RLE, as ``pycocotools.mask.decode`` reads it."""

    size: list[int] = Field(description="[height, width]")
    counts: str


class ModelInfo(Strict):
    name: str = Field(description="pointrend_resnet50 or pointrend_resnet101 (the architecture)")
    sha256: str | None = Field(description="sha256 of the weights file")
    backbone: str = Field(description="PixelLib's network_backbone: resnet50 or resnet101 (X-101-32x8d-FPN)")
    classes: list[str] = Field(description="the model's class names, in class_ids order")


class SeedResponse(Strict):
    """The ancestor PixelLibAPI's ``/segmentapi`` body: these keys and no others."""

    boxes: list[list[int]] = Field(description="[x1, y1, x2, y2] per object, pixels, truncated to int")
    class_ids: list[int] = Field(description="0-based index into the model's class names (COCO's 80 by default)")
    class_names: list[str]
    mask_shape: list[int] = Field(description="[height, width, number of objects]")
    object_counts: dict[str, int] = Field(description="objects per class name")
    scores: list[int] = Field(description="confidence per object, 0-100, truncated to int")


class SegmentResponse(Strict):
    """``POST /segment``: the seed keys at the model's full precision, plus the schema version, image size,
    masks, model and timings."""

    schema_version: int = Field(description="the result schema's version: 2 (float boxes, scores 0-1)")
    image: ImageSize
    boxes: list[list[float]] = Field(description="[x1, y1, x2, y2] per object, pixels, the model's floats")
    class_ids: list[int] = Field(description="0-based index into the model's class names (COCO's 80 by default)")
    class_names: list[str]
    mask_shape: list[int] = Field(description="[height, width, number of objects]")
    object_counts: dict[str, int] = Field(description="objects per class name")
    scores: list[float] = Field(description="confidence per object, the model's float 0-1")
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
    sha256: str | None = Field(description="sha256 of the weights file that was loaded")
    load_ms: float
    backbone: str = Field(description="resnet50 (R50-FPN) or resnet101 (X-101-32x8d-FPN)")
    classes: int = Field(description="how many classes the model knows")
    class_names: list[str] = Field(description="their names, in class_ids order (what `classes=` accepts)")


class HealthDefaults(Strict):
    """The server's defaults, for clients such as the upload page."""

    confidence: float
    detection_speed: str
    max_image_bytes: int
    jobs: bool = Field(description="whether POST /jobs is available (SEG_JOBS_BUCKET is set)")


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
        (403, "s3_uri sent to a server that does not read s3_uri"),
        (404, "s3_uri names no object this server may read (missing or not allowed: one answer)"),
        (413, "request body, image bytes or pixels above the limit, or a result over the 6 MB a response carries"),
        (415, "not an image, or an unsupported Content-Type"),
        (422, "corrupt or unusable image (e.g. one side over 100 times the other), or invalid parameters"),
        (503, "too many requests in progress; retry"),
    )
}


class JobRequest(RequestOptions):
    """``POST /jobs``: every field optional; the options are those ``/segment`` takes as query parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str | None = Field(None, max_length=1024, description="the file's name; only [A-Za-z0-9._-] are kept")
    content_type: str | None = Field(
        None,
        pattern=r"^(image|video)/[A-Za-z0-9.+-]+$",
        description="default: guessed from filename, else image/jpeg (the service reads the bytes, not this); "
        "a video/ type makes a video job (docs/video.md)",
    )


class JobUpload(Strict):
    url: str = Field(description="POST a multipart form here: every field below, then the file as field `file`")
    fields: dict[str, str]


class JobCreated(Strict):
    job_id: str = Field(description="32 lowercase hex digits (128 random bits): the job's only key; keep it secret")
    status: Literal["waiting_for_upload"]
    upload: JobUpload
    expires_in: int = Field(description="seconds the upload form stays valid")
    max_bytes: int = Field(description="the largest file the upload accepts")
    status_url: str


class CutoutLink(Strict):
    name: str = Field(description="NN-<class>.png: the object's index in the result, zero-padded, and its class")
    url: str = Field(description="a short-lived GET URL of the RGBA PNG")


class VideoProgress(Strict):
    frames_done: int
    frames_total: int = Field(description="the container's frame count, as probed")
    chunks_done: int
    chunks: int


class JobStatus(Strict):
    job_id: str
    status: Literal["waiting_for_upload", "processing", "done", "failed"]
    result: dict[str, Any] | None = Field(
        None,
        description="when done and the stored result is at most 1 MiB: what /segment returns, plus `source` "
        "(a larger one: follow `result_url`)",
    )
    result_url: str | None = Field(None, description="when done: a short-lived GET URL of the result JSON")
    result_bytes: int | None = Field(None, description="when done: the size of the result JSON")
    overlay_url: str | None = Field(None, description="when done and an overlay was asked for: a short-lived GET URL")
    cutouts: list[CutoutLink] | None = Field(
        None, description="when done and cut-outs were asked for: one per object, in result order"
    )
    error: ErrorDetail | None = Field(None, description="when failed")
    progress: VideoProgress | None = Field(None, description="a video job while processing: frames done of total")
    video_url: str | None = Field(None, description="a video job when done: a short-lived GET URL of its overlay")
