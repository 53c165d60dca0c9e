"""A real HTTP server in front of another (the API, or moto standing for S3) that answers the first requests
of a kind with errors (429, 503 with ``Retry-After``, S3's 503 SlowDown) and forwards the rest: what a client
meets when API Gateway throttles it or S3 slows it down."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass
class Failure:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Rule:
    """Requests whose ``METHOD path`` matches ``pattern`` get ``failures`` in turn, then are forwarded."""

    pattern: str
    failures: list[Failure]
    seen: int = 0


class FlakyProxy:
    def __init__(self, target: str, rules: list[Rule]) -> None:
        self.target, self.rules = target.rstrip("/"), rules
        self.answered: list[tuple[str, int]] = []  # ("METHOD path", status) of every request, in order
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                failure = owner._failure(f"{self.command} {self.path}")
                if failure is None:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                    forwarded = httpx.request(
                        self.command, owner.target + self.path, headers=headers, content=body, timeout=60
                    )
                    status, payload = forwarded.status_code, forwarded.content
                    answer = {k: v for k, v in forwarded.headers.items() if k.lower() not in HOP_HEADERS}
                    answer.pop("content-encoding", None)  # httpx has decoded the body
                else:
                    status, payload, answer = failure.status, failure.body, failure.headers
                with owner._lock:
                    owner.answered.append((f"{self.command} {self.path}", status))
                self.send_response(status)
                for name, value in answer.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _failure(self, request: str) -> Failure | None:
        with self._lock:
            for rule in self.rules:
                if re.fullmatch(rule.pattern, request) and rule.seen < len(rule.failures):
                    rule.seen += 1
                    return rule.failures[rule.seen - 1]
        return None


@contextmanager
def flaky(target: str, rules: list[Rule]) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(target, rules)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
