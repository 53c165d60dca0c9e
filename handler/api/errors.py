"""Every failure of an HTTP request becomes one JSON shape: ``{"error": {"code": ..., "message": ...}}``.

``error_response`` is the one place an error answer is made and counted in the metrics, whichever way it
leaves: FastAPI's exception handlers here, ``/healthz`` and ``/jobs``, and ``lambda_http`` (an event Mangum
cannot read, an answer over the ALB's limit), which turns the same response into the Lambda event's shape.
Every code comes from the taxonomy in ``handler.core.errors``; Starlette's own errors (unknown route, wrong
method) keep their HTTP phrase as the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from handler.core import metrics, storage
from handler.core.errors import (
    CodedError,
    InternalError,
    InvalidRequest,
    RetryableError,
    ServiceError,
    StorageUnavailable,
    describe_validation_errors,
)
from handler.core.logs import logger

RETRY_AFTER_SECONDS = "2"
# S3 asks to slow down (SlowDown) or is failing: give it longer than a busy process needs.
STORAGE_RETRY_AFTER_SECONDS = "5"


def error_response(exc: CodedError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one JSON error answer; every error answered goes through here, so it is counted here.
    A retryable error (503) says when to come back unless ``headers`` already do."""
    metrics.record_error("http", exc.code)
    if isinstance(exc, RetryableError):
        headers = {"Retry-After": RETRY_AFTER_SECONDS, **(headers or {})}
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status, headers=headers)


class StarletteError(CodedError):
    """Starlette's own refusals (404 unknown route, 405 wrong method): the HTTP phrase is the code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


async def service_error(request: Request, exc: ServiceError | RetryableError) -> JSONResponse:
    """Errors the service raises on purpose, each with its code and status (retryable ones: 503)."""
    logger.info("request refused", extra={"path": request.url.path, "code": exc.code, "status": exc.status})
    return error_response(exc)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(InvalidRequest(describe_validation_errors(exc.errors())))


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method): same shape, headers such as Allow kept."""
    return error_response(
        StarletteError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}"), exc.headers
    )


async def storage_error(request: Request, exc: Exception) -> Response:
    """S3 throttling, 5xx or no connection (after botocore's retries): 503 with Retry-After, for the client to
    retry; any other S3 error is a bug or a misconfiguration: a 500."""
    if not storage.is_transient(exc):
        return await unexpected_error(request, exc)
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
    logger.warning("storage unavailable", extra={"path": request.url.path, "s3_error": code})
    message = "the storage is busy or unreachable right now; retry after the Retry-After seconds"
    return error_response(StorageUnavailable(message), {"Retry-After": STORAGE_RETRY_AFTER_SECONDS})


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug or an outage, never the client's input: logged with its traceback, answered without it."""
    logger.exception("unexpected error", extra={"path": request.url.path})
    return error_response(InternalError("an unexpected error occurred; it has been logged"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RetryableError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(ClientError, storage_error)
    app.add_exception_handler(BotoCoreError, storage_error)
    app.add_exception_handler(Exception, unexpected_error)
