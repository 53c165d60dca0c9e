"""The Lambda entry point: routes each event to the part that claims it (S3 side first, then HTTP).

Importing this module is the Lambda init phase: the model is loaded here, once per execution environment.
Its path is the image's CMD and the template's ImageConfig: it never moves.
"""

from __future__ import annotations

from typing import Any

from handler import api, metrics, s3
from handler.engine import get_segmenter
from handler.logs import logger

# Each source answers "is this event mine?" (``claims``) and handles it; S3/SQS/EventBridge come first
# because Mangum cannot tell them apart ("unable to infer a handler").
SOURCES = (s3, api)


class UnclaimedEvent(ValueError):
    """An event no part claims (not HTTP, not from S3): a wiring mistake, not bad input."""


get_segmenter()


@metrics.invocation
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(function_request_id=getattr(context, "aws_request_id", None))
    for source in SOURCES:
        if source.claims(event):
            return source.handle(event, context)
    shape = sorted(event)[:8] if isinstance(event, dict) else type(event).__name__
    raise UnclaimedEvent(
        f"no handler for this event (keys {shape}): expected an API Gateway HTTP/REST API, function URL or "
        "Application Load Balancer request, an S3 notification (direct, through SQS or EventBridge) or an S3 "
        "Batch Operations job"
    )
