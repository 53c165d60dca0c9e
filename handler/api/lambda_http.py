"""API Gateway (HTTP API payload 1.0/2.0, REST API) and function URL events into the FastAPI app, via Mangum.

Mangum's own handlers raise whatever a malformed event makes them raise (KeyError, binascii.Error, ...); the
checked ones below read the whole request first, so such an event is one ``MalformedEvent``, answered 400.
``lifespan="off"``: Mangum's default runs the app's startup hook on every invocation.
"""

from __future__ import annotations

import json
from typing import Any

from mangum import Mangum
from mangum.handlers import APIGateway, HTTPGateway
from mangum.types import LambdaConfig, LambdaContext, LambdaEvent, Scope

from handler import metrics
from handler.api.page import PAGE_CSP, SECURITY_HEADERS
from handler.api.routes import app
from handler.errors import MalformedEvent
from handler.logs import logger


class CheckedRequest:
    """Reads the request (scope and body) out of the event at once (a mixin before Mangum's handler class)."""

    def __init__(self, event: LambdaEvent, context: LambdaContext, config: LambdaConfig) -> None:
        super().__init__(event, context, config)  # type: ignore[call-arg]
        try:
            self._scope: Scope = super().scope  # type: ignore[misc]
            self._body: bytes = super().body  # type: ignore[misc]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # binascii.Error: ValueError
            raise MalformedEvent(f"the event is not a well-formed HTTP request: {type(exc).__name__}: {exc}") from exc

    @property
    def scope(self) -> Scope:
        return self._scope

    @property
    def body(self) -> bytes:
        return self._body


class CheckedHTTPGateway(CheckedRequest, HTTPGateway):
    """API Gateway HTTP API (payload 1.0 and 2.0) and function URLs."""


class CheckedAPIGateway(CheckedRequest, APIGateway):
    """API Gateway REST API."""


http_handler = Mangum(app, lifespan="off", custom_handlers=[CheckedHTTPGateway, CheckedAPIGateway])


def claims(event: Any) -> bool:
    """HTTP API (payload 2.0) and function URLs carry ``version``; REST API (1.0) ``resource``."""
    return isinstance(event, dict) and "requestContext" in event and ("version" in event or "resource" in event)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return http_handler(event, context)
    except MalformedEvent as exc:
        logger.warning("malformed http event", extra={"reason": exc.message})
        metrics.record_error("http", exc.code)
        return malformed_event_response(exc)


def malformed_event_response(exc: MalformedEvent) -> dict[str, Any]:
    """The JSON error body every route answers with, in the shape both API Gateway payload versions take."""
    body = {"error": {"code": exc.code, "message": exc.message}}
    headers = {name.lower(): value for name, value in SECURITY_HEADERS.items()}
    headers.update({"content-type": "application/json", "content-security-policy": PAGE_CSP})
    return {"statusCode": exc.status, "headers": headers, "body": json.dumps(body), "isBase64Encoded": False}
