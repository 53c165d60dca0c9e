"""The Lambda entry point: S3/SQS/EventBridge events to ``s3_events``, HTTP events to the FastAPI app.

Importing this module is the Lambda init phase: the model is loaded here, once per execution environment,
and so is the Mangum adapter (``lifespan="off"``: the app's startup hook would run on every invocation).
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from handler import s3_events
from handler.api import app
from handler.logs import logger
from handler.model import get_segmenter

get_segmenter()
http = Mangum(app, lifespan="off")


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
        return http(event, context)
    shape = sorted(event)[:8] if isinstance(event, dict) else type(event).__name__
    raise UnclaimedEvent(
        f"no handler for this event (keys {shape}): expected an API Gateway HTTP/REST API or function URL "
        "request, or an S3 notification (direct, through SQS or EventBridge)"
    )
