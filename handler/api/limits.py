"""Lambda's 6 MB response limit, checked before a response leaves (beyond it the caller would get a 5xx).

Mangum hands Lambda the body inside a JSON envelope: text as a JSON string (quotes and non-ASCII escaped),
binary (the PNG) base64-encoded. The size checked is that of the body so carried, plus room for the envelope.
"""

from __future__ import annotations

import base64
import json

from fastapi import Response

from handler.core.errors import ResponseTooLarge

LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024  # synchronous invocations: request and response payloads, each
ENVELOPE_BYTES = 16 * 1024  # statusCode, headers and the rest of Mangum's response around the body
TEXT_TYPES = ("application/json", "text/")


def carried_bytes(response: Response) -> int:
    """The body's size inside the Lambda response payload."""
    media_type = response.headers.get("content-type", "")
    if media_type.startswith(TEXT_TYPES):
        return len(json.dumps(response.body.decode("utf-8")))
    return len(base64.b64encode(response.body))


def binary_budget(limit: int = LAMBDA_RESPONSE_BYTES) -> int:
    """The largest binary body that fits once base64-encoded inside the envelope."""
    return (limit - ENVELOPE_BYTES) // 4 * 3


def too_large(size: str, limit: int = LAMBDA_RESPONSE_BYTES) -> ResponseTooLarge:
    """The 413 for a result of ``size`` (words, e.g. "about 7000000 bytes"), naming the paths that take it."""
    return ResponseTooLarge(
        f"the result would be {size} in the Lambda response, over its {limit}-byte limit. "
        "For large results use the S3 path (upload the image under the input prefix; the result is written "
        "to S3, cut-outs too with the cutouts option) or the jobs flow (POST /jobs), or ask for less: masks=none, "
        "a smaller overlay_max_side, fewer objects (confidence, classes)"
    )


def ensure_fits(response: Response, limit: int = LAMBDA_RESPONSE_BYTES) -> Response:
    """The response, or ``ResponseTooLarge`` (413) saying how to get a result this large."""
    size = carried_bytes(response) + ENVELOPE_BYTES
    if size > limit:
        raise too_large(f"about {size} bytes", limit)
    return response
