"""A small Lambda Runtime API of the tests' own, speaking the SnapStart lifecycle to the real ``awslambdaric``.

It serves ``/2018-06-01/runtime/invocation/next`` (one queued event each, with the headers Lambda sends),
takes ``/response`` and ``/error``, ``/init/error``, answers ``/restore/next`` after a pause (where Lambda
would snapshot the environment and later restore a copy) and takes ``/restore/error``. Everything that
happens is appended to ``timeline`` (with ``time.perf_counter()``), beside the runtime's own log lines.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:pointrend:live"


@dataclass
class Invocation:
    request_id: str
    event: Any
    served_at: float = 0.0
    answered_at: float = 0.0
    outcome: str = ""  # "response" | "error"
    body: Any = None

    @property
    def ms(self) -> float:
        return (self.answered_at - self.served_at) * 1000


@dataclass
class RuntimeApi:
    restore_pause_s: float = 1.0
    timeout_s: float = 600.0
    timeline: list[tuple[float, str, Any]] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)
    _pending: queue.Queue[Invocation] = field(default_factory=queue.Queue)
    _done: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, what: str, detail: Any = None) -> None:
        with self._lock:
            self.timeline.append((time.perf_counter(), what, detail))

    def kinds(self) -> list[str]:
        with self._lock:
            return [what for _, what, _ in self.timeline]

    def invoke(self, event: Any, wait_s: float = 600.0) -> Invocation:
        """Queue ``event`` for the runtime and wait for its answer."""
        invocation = Invocation(request_id=str(uuid.uuid4()), event=event)
        self._done[invocation.request_id] = threading.Event()
        self.invocations.append(invocation)
        self._pending.put(invocation)
        if not self._done[invocation.request_id].wait(wait_s):
            raise TimeoutError(f"no answer to invocation {len(self.invocations)} within {wait_s} s")
        return invocation

    def _find(self, request_id: str) -> Invocation:
        return next(item for item in self.invocations if item.request_id == request_id)

    def _answer(self, request_id: str, outcome: str, body: Any) -> None:
        invocation = self._find(request_id)
        invocation.answered_at, invocation.outcome, invocation.body = time.perf_counter(), outcome, body
        self.note(f"invocation/{outcome}", request_id)
        self._done[request_id].set()


def _handler(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> Any:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return raw.decode(errors="replace")

        def do_GET(self) -> None:
            if self.path == f"{PREFIX}/restore/next":
                api.note("restore/next called")
                time.sleep(api.restore_pause_s)  # the snapshot is taken here; a copy resumes later
                api.note("restore/next answered")
                self._send(200)
            elif self.path == f"{PREFIX}/invocation/next":
                try:
                    invocation = api._pending.get(timeout=api.timeout_s)
                except queue.Empty:
                    self._send(500, b'{"errorMessage": "no more events"}')
                    return
                invocation.served_at = time.perf_counter()
                api.note("invocation/next", invocation.request_id)
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 300_000),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
                    "Content-Type": "application/json",
                }
                self._send(200, json.dumps(invocation.event).encode(), headers)
            else:
                self._send(404)

        def do_POST(self) -> None:
            body = self._body()
            path = self.path.removeprefix(PREFIX)
            if path in ("/init/error", "/restore/error"):
                api.note(path.lstrip("/"), body)
                self._send(202, b"{}")
            elif path.startswith("/invocation/") and path.endswith(("/response", "/error")):
                _, _, request_id, outcome = path.split("/")
                self._send(202, b"{}")
                api._answer(request_id, outcome, body)
            else:
                self._send(404)

    return Handler


@contextmanager
def runtime_api(restore_pause_s: float = 1.0) -> Iterator[tuple[RuntimeApi, str]]:
    """The API and its ``host:port`` (the value of ``AWS_LAMBDA_RUNTIME_API``); always shut down."""
    api = RuntimeApi(restore_pause_s=restore_pause_s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"127.0.0.1:{server.server_address[1]}"
    finally:
        api.timeout_s = 0.1
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
