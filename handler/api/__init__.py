"""The HTTPS side: the FastAPI app (routes, schemas, error handlers, uploads, admission, the page) and the
checked Mangum handlers that turn API Gateway and function URL events into its requests.

May import ``handler.engine`` (the one path to the model) and the shared modules; never ``handler.s3``.
``claims(event)`` / ``handle(event, context)`` are what ``lambda_function`` routes by; ``prime()`` is its
warm-up before a SnapStart snapshot.
"""

from handler.api.app import app
from handler.api.lambda_http import claims, handle, http_handler, prime

__all__ = ["app", "claims", "handle", "http_handler", "prime"]
