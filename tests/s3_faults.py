"""S3 failures on demand: an error answered for one key at botocore's send step (``s3_answers``), and a real
HTTP stand-in for S3 that answers every request with a transient error (``TransientS3``), as S3 does when
it throttles (503 SlowDown) or fails inside (500 InternalError): moto cannot be told to."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@contextmanager
def s3_answers(s3: Any, operation: str, key: str, status: int, code: str) -> Iterator[list[str]]:
    """S3 answers ``operation`` on ``key`` with an HTTP ``status`` error, at botocore's send step."""
    failed: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if not unquote(urlsplit(request.url).path).endswith(f"/{key}"):
            return None
        failed.append(key)
        body = f"<Error><Code>{code}</Code><Message>simulated</Message></Error>".encode()
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Body(body))

    event = f"before-send.s3.{operation}"
    s3.meta.events.register(event, answer)
    try:
        yield failed
    finally:
        s3.meta.events.unregister(event, answer)


class TransientS3:
    """A local HTTP server in S3's place: every request gets ``status`` with S3's XML error ``code``."""

    def __init__(self, status: int = 503, code: str = "SlowDown") -> None:
        self.status, self.code, self.requests = status, code, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.requests += 1
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = f"<Error><Code>{owner.code}</Code><Message>simulated</Message></Error>".encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else 0))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = _answer

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> TransientS3:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def s3_at(url: str) -> Iterator[None]:
    """The handler's S3 client pointed at ``url`` (a stand-in, or a port where nothing listens), then back."""
    from handler.core import storage

    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    storage.s3_client.cache_clear()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved
        storage.s3_client.cache_clear()
