"""Every failure of an HTTP request becomes one JSON shape: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from handler import metrics
from handler.errors import RetryableError, ServiceError, describe_validation_errors
from handler.logs import logger

RETRY_AFTER_SECONDS = "2"


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one JSON error body; every error answered goes through here, so it is counted here."""
    metrics.record_error("http", code)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def service_error(request: Request, exc: ServiceError | RetryableError) -> JSONResponse:
    """Errors the service raises on purpose, each with its code and status (retryable ones: 503)."""
    logger.info("request refused", extra={"path": request.url.path, "code": exc.code, "status": exc.status})
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if isinstance(exc, RetryableError) else None
    return error_response(exc.status, exc.code, exc.message, headers)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, "invalid_request", describe_validation_errors(exc.errors()))


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method): same shape, headers such as Allow kept."""
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    message = f"{exc.detail}: {request.method} {request.url.path}"
    return error_response(exc.status_code, code, message, exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug or an outage, never the client's input: logged with its traceback, answered without it."""
    logger.exception("unexpected error", extra={"path": request.url.path})
    return error_response(500, "internal_error", "an unexpected error occurred; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RetryableError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
