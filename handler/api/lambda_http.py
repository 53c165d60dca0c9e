"""API Gateway (HTTP API payload 1.0/2.0, REST API), function URL and Application Load Balancer events into the
FastAPI app, via Mangum.

Mangum's own handlers raise whatever a malformed event makes them raise (KeyError, binascii.Error, ...); the
checked ones below read the whole request first, so such an event is one ``MalformedEvent``, answered 400.
``lifespan="off"``: Mangum's default runs the app's startup hook on every invocation.
"""

from __future__ import annotations

import json
from typing import Any

from mangum import Mangum
from mangum.handlers import ALB, APIGateway, HTTPGateway
from mangum.types import LambdaConfig, LambdaContext, LambdaEvent, Scope

from handler.api.app import app
from handler.api.deps import resolve
from handler.api.errors import error_response
from handler.api.page import security_headers
from handler.core.errors import CodedError, MalformedEvent, ResponseTooLarge
from handler.core.logs import logger
from handler.core.settings import get_settings


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


# An ALB passes a Lambda target at most 1 MB of response JSON (API Gateway: 6 MB, checked by the routes).
ALB_RESPONSE_BYTES = 1024 * 1024


class CheckedALB(CheckedRequest, ALB):
    """Application Load Balancer target group (with or without multi-value headers). Beyond the ALB's 1 MB
    the client would get a bare 502 from the load balancer: it gets our 413 instead."""

    def __call__(self, response: Any) -> dict[str, Any]:
        answer = super().__call__(response)
        size = len(json.dumps(answer))
        if size <= ALB_RESPONSE_BYTES:
            return answer
        return event_error(
            ResponseTooLarge(
                f"the answer would be {size} bytes, over the {ALB_RESPONSE_BYTES}-byte limit of an Application "
                "Load Balancer's Lambda target. Ask for less (masks=none, format=png, a smaller overlay_max_side), "
                "or use the jobs flow (POST /jobs) or the S3 path, whose results are written to S3"
            ),
            self.event,
        )


http_handler = Mangum(app, lifespan="off", custom_handlers=[CheckedALB, CheckedHTTPGateway, CheckedAPIGateway])


def claims(event: Any) -> bool:
    """HTTP API (payload 2.0) and function URLs carry ``version``; REST API (1.0) ``resource``; an ALB
    ``requestContext.elb``."""
    if not isinstance(event, dict) or not isinstance(event.get("requestContext"), dict):
        return False
    return "version" in event or "resource" in event or "elb" in event["requestContext"]


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return http_handler(event, context)
    except MalformedEvent as exc:
        logger.warning("malformed http event", extra={"reason": exc.message})
        return event_error(exc, event)


def event_error(exc: CodedError, event: dict[str, Any]) -> dict[str, Any]:
    """``errors.error_response`` (the one error answer, counted there) with the security headers, in the
    shape every front takes: an ALB target group with multi-value headers reads only ``multiValueHeaders``;
    the others read ``headers``."""
    response = error_response(exc)
    path = event.get("rawPath") or event.get("path") or ""
    headers = {name.lower(): value for name, value in security_headers(path, resolve(app, get_settings)).items()}
    headers.update({name: value for name, value in response.headers.items() if name != "content-length"})
    body = response.body.decode()
    answer: dict[str, Any] = {"statusCode": response.status_code, "body": body, "isBase64Encoded": False}
    if "elb" in event.get("requestContext", {}) and "multiValueHeaders" in event:
        answer["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    else:
        answer["headers"] = headers
    return answer


def _get(path: str) -> int:
    request = {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "prime"}
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "localhost", "user-agent": "prime"},
        "requestContext": {"http": request, "requestId": "snapstart-prime", "stage": "$default", "timeEpoch": 0},
        "isBase64Encoded": False,
    }
    return http_handler(event, None)["statusCode"]


def prime() -> dict[str, Any]:
    """Before a SnapStart snapshot: ``GET /healthz`` and ``GET /`` (the page) through Mangum and the app:
    routing, response models, security headers and, with jobs, the bucket's signed origin."""
    statuses = {path: _get(path) for path in ("/healthz", "/")}
    if set(statuses.values()) != {200}:
        raise RuntimeError(f"priming requests failed: {statuses}")
    return {"primed_paths": statuses}
