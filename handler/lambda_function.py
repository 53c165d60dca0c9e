"""The Lambda entry point: S3/SQS/EventBridge events to ``s3_events``, HTTP events to the FastAPI app.

Importing this module is the Lambda init phase: the model is loaded here, once per execution environment,
and so is the Mangum adapter (``lifespan="off"``: the app's startup hook would run on every invocation).
"""

from __future__ import annotations

import json
from typing import Any

from mangum import Mangum
from mangum.handlers import APIGateway, HTTPGateway
from mangum.types import LambdaConfig, LambdaContext, LambdaEvent, Scope

from handler import s3_events
from handler.api import app
from handler.errors import MalformedEvent
from handler.logs import logger
from handler.model import get_segmenter
from handler.web import PAGE_CSP, SECURITY_HEADERS


class CheckedRequest:
    """Reads the request (scope and body) out of the event at once, so that a malformed event (a field
    missing or of the wrong type, a body that ``isBase64Encoded`` claims is base64 but is not) is one
    ``MalformedEvent`` rather than whatever Mangum would raise half-way (KeyError, binascii.Error, ...)."""

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


get_segmenter()
http = Mangum(app, lifespan="off", custom_handlers=[CheckedHTTPGateway, CheckedAPIGateway])


class UnclaimedEvent(ValueError):
    """An event that is neither an HTTP request nor an S3 notification: a wiring mistake, not bad input."""


def is_http(event: dict[str, Any]) -> bool:
    """API Gateway HTTP API (payload 2.0) and function URLs carry ``version``; REST API (1.0) ``resource``."""
    return "requestContext" in event and ("version" in event or "resource" in event)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(function_request_id=getattr(context, "aws_request_id", None))
    if s3_events.claims(event):
        return s3_events.handle(event, context)
    if isinstance(event, dict) and is_http(event):
        try:
            return http(event, context)
        except MalformedEvent as exc:
            logger.warning("malformed http event", extra={"reason": exc.message})
            return malformed_event_response(exc)
    shape = sorted(event)[:8] if isinstance(event, dict) else type(event).__name__
    raise UnclaimedEvent(
        f"no handler for this event (keys {shape}): expected an API Gateway HTTP/REST API or function URL "
        "request, or an S3 notification (direct, through SQS or EventBridge)"
    )


def malformed_event_response(exc: MalformedEvent) -> dict[str, Any]:
    """The JSON error body every route answers with, in the shape both API Gateway payload versions take."""
    body = {"error": {"code": exc.code, "message": exc.message}}
    headers = {name.lower(): value for name, value in SECURITY_HEADERS.items()}
    headers.update({"content-type": "application/json", "content-security-policy": PAGE_CSP})
    return {"statusCode": exc.status, "headers": headers, "body": json.dumps(body), "isBase64Encoded": False}
