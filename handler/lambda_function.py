"""The Lambda entry point: routes each event to the part that claims it (S3 side first, then HTTP).

Importing this module is the Lambda init phase: the model is loaded here, once per execution environment,
and only the side(s) this function serves are imported (``SEG_SERVES``: the API function needs no S3 event
code, the worker no FastAPI app). Under SnapStart the model is primed before the snapshot and what must not
be shared is renewed after each restore (``handler.snapstart``).
Its path is the image's CMD and the template's ImageConfig: it never moves.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from handler import snapstart
from handler.core import metrics
from handler.core.logs import logger
from handler.core.settings import Serves, get_settings
from handler.engine import get_segmenter


class UnclaimedEvent(ValueError):
    """An event no part claims (not HTTP, not from S3): a wiring mistake, not bad input."""


def load_sources(serves: Serves) -> tuple[ModuleType, ...]:
    """Each source answers "is this event mine?" (``claims``) and handles it; S3/SQS/EventBridge come first
    because Mangum cannot tell them apart ("unable to infer a handler")."""
    sources: list[ModuleType] = []
    if serves in ("all", "s3"):
        from handler import s3

        sources.append(s3)
    if serves in ("all", "http"):
        from handler import api

        sources.append(api)
    return tuple(sources)


SOURCES = load_sources(get_settings().serves)
get_segmenter()
snapstart.register(SOURCES)  # nothing unless AWS_LAMBDA_INITIALIZATION_TYPE is snap-start


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
        f"Batch Operations job (this function serves {get_settings().serves!r}: SEG_SERVES)"
    )
