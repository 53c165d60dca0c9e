"""Moto server with its Step Functions executor on, and Lambda invocations forwarded over HTTP to our worker.

Run by the interpreter of its own small venv (``infra/moto_sfn.py`` makes it): moto's ASL parser needs
antlr4-python3-runtime 4.13, and our venv pins 4.9 through omegaconf. Moto's ``LambdaBackend.invoke`` cannot
run an image function; here it is replaced by a POST of the payload to ``FORWARD_URL`` (a shim over
``handler.lambda_function.lambda_handler``, or the Lambda Runtime Interface Emulator), whose
``x-amz-function-error`` header marks a failed invocation as Lambda's does. S3 is served by the same server,
so the Map's ItemReader and the worker read and write the same buckets.

    python infra/moto_sfn_server.py PORT FORWARD_URL

This file imports only moto and the standard library: it runs outside our venv.
"""

from __future__ import annotations

import copy
import os
import sys
import urllib.error
import urllib.request
from typing import Any

INVOKE_TIMEOUT_S = 900  # Lambda's longest
SHARED = ("backend", "executions")  # a state machine's links to the backend and its runs: never copied


def clone_machine(self: Any, memo: dict[int, Any]) -> Any:
    """Moto deep-copies the state machine at each StartExecution, and with it the backend it points to, which
    after one Distributed Map holds its runs' locks (``TypeError: cannot pickle '_thread.RLock'``): every later
    start answered 500. The definition and settings are copied; the backend and the runs are shared."""
    clone = copy.copy(self)
    memo[id(self)] = clone
    for name, value in vars(self).items():
        setattr(clone, name, value if name in SHARED else copy.deepcopy(value, memo))
    return clone


def forwarder(url: str) -> Any:
    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        data = body if isinstance(body, bytes) else str(body or "{}").encode()
        headers = {"content-type": "application/json", "x-function-name": function_name}
        request = urllib.request.Request(url, data=data, method="POST", headers=headers)  # noqa: S310 (http only)
        try:
            with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_S) as response:  # noqa: S310
                payload = response.read()
                error = response.headers.get("x-amz-function-error")
        except urllib.error.HTTPError as failed:  # the shim itself broke: Lambda's "Unhandled"
            payload, error = failed.read(), "Unhandled"
        if error:
            response_headers["x-amz-function-error"] = error
        response_headers["Content-Length"] = str(len(payload))
        return payload

    return invoke


def main(port: str, forward_url: str) -> None:
    os.environ["MOTO_PORT"] = port  # where the executor's own boto3 clients (Lambda, S3) call: this server
    from moto.awslambda.models import LambdaBackend
    from moto.core.config import default_user_config
    from moto.server import main as serve
    from moto.stepfunctions.models import StateMachine

    LambdaBackend.invoke = forwarder(forward_url)  # type: ignore[method-assign]
    StateMachine.__deepcopy__ = clone_machine  # type: ignore[attr-defined]
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    serve(["-H", "127.0.0.1", "-p", port])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
