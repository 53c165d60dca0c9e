"""Moto's Step Functions executor for the distributed video test: its own venv, its server, our worker behind it.

``ensure_venv()`` makes ``.cache/moto-sfn-venv`` (pinned moto and antlr4-python3-runtime 4.13, which our venv
cannot hold: omegaconf pins 4.9) once, remembering the pins in a stamp file; ``WorkerShim`` serves
``lambda_handler`` over HTTP in the calling process; ``MotoSfnServer`` runs ``infra/moto_sfn_server.py`` in
that venv, forwarding every Lambda invocation to the shim. ``make moto-sfn`` (a step of ``make test``) calls
``ensure_venv`` ahead of the tests.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".cache" / "moto-sfn-venv"
PINS = ("moto[server,s3,stepfunctions]==5.1.16", "antlr4-python3-runtime==4.13.2")
SERVER_SCRIPT = Path(__file__).with_name("moto_sfn_server.py")
START_TIMEOUT_S = 60


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """The venv's python, made (or remade when the pins changed) with pip from the usual index."""
    stamp = VENV / "pins.txt"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == "\n".join(PINS) and venv_python().exists():
        return venv_python()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(venv_python()), "-m", "pip", "install", "-q", *PINS], check=True)
    stamp.write_text("\n".join(PINS), encoding="utf-8")
    return venv_python()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Invoke = Callable[[dict[str, Any]], Any]


class WorkerShim:
    """``POST /`` with an event: ``invoke(event)``'s answer, or Lambda's error payload (``errorType``,
    ``errorMessage``) with ``x-amz-function-error: Unhandled``. One invocation at a time, as one copy of the
    worker runs one. ``invocations`` lists every event received, in order."""

    def __init__(self, invoke: Invoke) -> None:
        self.invoke = invoke
        self.invocations: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        shim = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                event = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with shim.lock:
                    shim.invocations.append(event)
                    try:
                        body, failed = json.dumps(shim.invoke(event)).encode(), False
                    except Exception as exc:
                        error = {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
                        body, failed = json.dumps(error).encode(), True
                        traceback.print_exc()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                if failed:
                    self.send_header("x-amz-function-error", "Unhandled")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> WorkerShim:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class MotoSfnServer:
    """The moto server process (its own venv) on a free port; ``endpoint`` is its URL. Always stopped."""

    def __init__(self, forward_url: str, log: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.command = [str(ensure_venv()), str(SERVER_SCRIPT), str(self.port), forward_url]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoSfnServer:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()  # noqa: S310 (http only)
                return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"moto server did not answer within {START_TIMEOUT_S} s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def definition(substitutions: dict[str, str]) -> str:
    """The deployed definition file with template.yaml's DefinitionSubstitutions applied, as Step Functions does."""
    text = (REPO / "infra" / "video_state_machine.asl.json").read_text(encoding="utf-8")
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", value)
    if "${" in text:
        raise ValueError("a substitution of the definition was not given")
    json.loads(text)
    return text


if __name__ == "__main__":
    print(ensure_venv())
