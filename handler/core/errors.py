"""Typed errors of the service. Each carries a stable code and the HTTP status it maps to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class CodedError(Exception):
    """A message for people, a stable ``code`` for programs, and the HTTP ``status`` it is answered with."""

    code = "error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServiceError(CodedError):
    """An error caused by the request or its input: never retried, always reported to the user."""

    code = "bad_request"
    status = 400


class EmptyImage(ServiceError):
    code = "empty_image"


class NotAnImage(ServiceError):
    code = "not_an_image"
    status = 415


class CorruptImage(ServiceError):
    code = "corrupt_image"
    status = 422


class UnsupportedImage(ServiceError):
    """A readable image the model cannot take, e.g. one side a sliver of the other."""

    code = "unsupported_image"
    status = 422


class ImageTooLarge(ServiceError):
    code = "image_too_large"
    status = 413


class TooManyPixels(ServiceError):
    code = "too_many_pixels"
    status = 413


class InvalidRequest(ServiceError):
    code = "invalid_request"
    status = 422


class NotAResult(InvalidRequest):
    """A JSON document that is not one of this service's results (an error record, a job record, ...)."""

    code = "not_a_result"


class VideosDisabled(ServiceError):
    """A video upload on a stack whose video state machine is off."""

    code = "videos_disabled"
    status = 422


class Forbidden(ServiceError):
    code = "forbidden"
    status = 403


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class S3UriDisabled(Forbidden):
    code = "s3_uri_disabled"


class JobNotFound(NotFound):
    code = "job_not_found"


class MalformedEvent(ServiceError):
    """A Lambda HTTP event with a field missing or of the wrong type (it never came from API Gateway)."""

    code = "malformed_event"


class ModelFileError(Exception):
    """The weights file is missing or does not match its pinned checksum (a deployment problem)."""


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"
    status = 415


class RequestTooLarge(ServiceError):
    code = "request_too_large"
    status = 413


class ResponseTooLarge(ServiceError):
    code = "response_too_large"
    status = 413


class CorruptVideo(ServiceError):
    """A video OpenCV's FFmpeg cannot open: not a video, truncated (no index) or damaged."""

    code = "corrupt_video"
    status = 422


class EmptyVideo(ServiceError):
    """A video container with no decodable frame."""

    code = "empty_video"
    status = 422


class UnsupportedVideo(ServiceError):
    """A video whose codec OpenCV's FFmpeg cannot decode."""

    code = "unsupported_video"
    status = 415


class VideoTooLarge(ServiceError):
    """A video over one of the video limits (bytes, frames, seconds, pixels); the message names the setting."""

    code = "video_too_large"
    status = 413


class FrameSizeChanged(ServiceError):
    """A video whose frames change size part-way (one overlay video needs one frame size)."""

    code = "frame_size_changed"
    status = 422


class InternalError(CodedError):
    """A bug or an outage, never the client's input (logged with its traceback, answered without it)."""

    code = "internal_error"
    status = 500


class JobsUnavailable(CodedError):
    """``POST /jobs`` on a server without a jobs bucket (``SEG_JOBS_BUCKET``)."""

    code = "jobs_unavailable"
    status = 503


class UploadExpired(ServiceError):
    """A job whose image was never uploaded before its presigned POST expired."""

    code = "upload_expired"
    status = 410


class JobStalled(CodedError):
    """A job whose upload arrived but that no result or error record followed in time."""

    code = "stalled"
    status = 500


class InvocationFailed(CodedError):
    """The worker failed for good on an upload (the failure queue's record); the error record's code names the
    cause: one of the codes below, ``code`` (every retry failed) when the record says no more."""

    code = "retries_exhausted"
    status = 500
    WORKER_BUSY = "worker_busy"  # it could not start within the event's maximum age
    OUT_OF_MEMORY = "out_of_memory"
    TIMED_OUT = "timed_out"
    WORKER_CRASHED = "worker_crashed"  # the runtime stopped (Runtime.* errors)


class RetryableError(CodedError):
    """The input is fine but the service cannot take it now: answered 503 over HTTP, retried for S3."""

    code = "unavailable"
    status = 503


class ServiceBusy(RetryableError):
    """Too many requests in flight on this process; the client may retry shortly."""

    code = "busy"


class StorageUnavailable(RetryableError):
    """S3 throttling, a 5xx or no connection, after botocore's own retries."""

    code = "storage_unavailable"


class ModelUnavailable(RetryableError):
    """The weights cannot be loaded (missing, or not matching their pin): a deployment problem."""

    code = "model_unavailable"


class OutOfTime(RetryableError):
    """Too little time left in this Lambda invocation for one more image."""

    code = "out_of_time"


def describe_validation_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """Pydantic/FastAPI validation errors as one readable line: ``query.confidence: ...; ...``."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"
