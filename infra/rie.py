"""Run the image's exact entrypoint under AWS's Lambda Runtime Interface Emulator, without Docker.

The no-Docker twin of ``sam local invoke -e EVENT.json``. The emulator is the ``aws-lambda-rie`` binary
that the ``aws-sam-cli`` wheel ships (``samcli/local/rapid/aws-lambda-rie-<arch>``, the one SAM mounts
into the container); it runs on the host here. The runtime it starts is the Dockerfile's own
``ENTRYPOINT`` + ``CMD`` (``python -m awslambdaric handler.lambda_function.lambda_handler``, ``python``
being this interpreter), in the repository root, with the function's environment from template.yaml.

    from infra.rie import invoke
    report = invoke([event], repeat=3, env={"SEG_MODEL_PATH": "..."})
    report.ok, report.responses, report.cold_seconds, report.warm_seconds

How the emulator answers (checked with the shipped binary): a handler that raises still gives HTTP 200
with ``{"errorType", "errorMessage", ...}`` as the body; an init failure (the handler module raising at
import, reported by awslambdaric to ``/runtime/init/error``) gives HTTP 502 with that error as the body,
and the runtime is started again for the next event. A function that runs past its timeout (template.yaml's
``Timeout``; the init phase counts against it) gives HTTP 200 with the bare JSON string ``"Task timed out
after N seconds"`` as the body; the report calls that ``Sandbox.Timedout`` (Lambda's errorType for it), and
the next event finds a fresh runtime (cold). Both processes are stopped by pid, whatever happens:
the emulator's process group with SIGTERM then SIGKILL, and the runtime (its own process group) too.
Never run ``aws-lambda-rie --help``: it takes "--help" for the runtime command and serves forever.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.image_spec import DOCKERFILE, FUNCTION_ID, REPO_ROOT, TEMPLATE, function_spec, runtime_command
from infra.processes import (
    InvokeError,
    Running,
    descendants,
    find_rie,
    free_ports,
    pid_alive,
    signal_group,
    signal_pid,
    watch,
)

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
# The image's own ENV that matters on this host too (the Dockerfile sets it; tests/system/test_packaging.py
# checks they agree): one malloc arena, so the allocator tuning holds on the threads that run the model.
IMAGE_ENV = {"MALLOC_ARENA_MAX": "1"}
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
_INIT_FAILED = re.compile(r"INIT RTDONE\(status: error\)|Init failed error=")
_TIMED_OUT = re.compile(r"Task timed out after [0-9.]+ seconds")
TIMED_OUT = "Sandbox.Timedout"  # Lambda's errorType for a function that ran past its timeout


class _Done(Exception):
    """Stop invoking (time budget spent, or the runtime cannot start)."""


@dataclass
class Invocation:
    index: int  # 0-based, over all events x repeats
    event_index: int
    status: int  # HTTP status from the emulator (502 on an init failure)
    body: Any  # the parsed JSON response (or the raw text when it is not JSON)
    seconds: float  # wall time of the POST, as a client sees it
    cold: bool  # the runtime was (re)started for this one
    error: str | None = None  # "errorType: errorMessage" when the function failed

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class InvokeReport:
    command: list[str]  # the runtime command the emulator ran
    rie: str  # the emulator binary
    invocations: list[Invocation] = field(default_factory=list)
    init_error: str | None = None  # "errorType: errorMessage" from /runtime/init/error
    init_ms: float | None = None  # the emulator's INIT REPORT duration of the first start
    environment: dict[str, str] = field(default_factory=dict)  # what template.yaml contributed
    unresolved_environment: list[str] = field(default_factory=list)
    logs: str = ""  # emulator + runtime output (stdout and stderr together)
    pids: list[int] = field(default_factory=list)  # every process started (emulator and runtimes), all stopped
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.init_error is None and bool(self.invocations) and all(i.ok for i in self.invocations)

    @property
    def responses(self) -> list[Any]:
        return [invocation.body for invocation in self.invocations]

    @property
    def error(self) -> str | None:
        """The first failure, for a one-line message (None when everything succeeded)."""
        if self.init_error:
            return f"init failed: {self.init_error}"
        for invocation in self.invocations:
            if invocation.error:
                return f"invocation {invocation.index} failed: {invocation.error}"
        return None if self.invocations else "no invocation ran"

    @property
    def cold_seconds(self) -> float | None:
        return self.invocations[0].seconds if self.invocations else None

    @property
    def warm_seconds(self) -> list[float]:
        return [invocation.seconds for invocation in self.invocations if not invocation.cold]

    def timings(self) -> dict[str, Any]:
        warm = sorted(self.warm_seconds)
        return {
            "cold_s": self.cold_seconds,
            "init_ms": self.init_ms,
            "warm_s": warm and {"n": len(warm), "min": warm[0], "median": warm[len(warm) // 2], "max": warm[-1]},
        }


def _error_of(body: Any) -> str | None:
    if isinstance(body, dict) and "errorType" in body:
        return f"{body.get('errorType')}: {body.get('errorMessage')}"
    if isinstance(body, str) and _TIMED_OUT.fullmatch(body.strip()):  # the emulator's answer to a timeout
        return f"{TIMED_OUT}: {body.strip()}"
    return None


def _wait_listening(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InvokeError(f"the emulator exited with status {process.returncode} before listening")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise InvokeError(f"the emulator did not listen on 127.0.0.1:{port} in time")


def _post(url: str, payload: bytes, timeout: float) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=payload, method="POST", headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (our loopback URL)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:  # 502 on an init failure, with the error as the body
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TimeoutError from None
        raise


def _stop(process: subprocess.Popen[bytes], runtime_pids: set[int], grace: float) -> None:
    """SIGTERM the emulator's group (it SIGKILLs its runtime), then SIGKILL whatever is left."""
    runtime_pids.update(descendants(process.pid))
    if process.poll() is None:
        signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=grace)
    signal_group(process.pid, signal.SIGKILL)  # stragglers left in the emulator's group
    deadline = time.monotonic() + grace
    for pid in runtime_pids:
        if pid_alive(pid):
            signal_group(pid, signal.SIGKILL)  # the runtime runs in a process group of its own
            signal_pid(pid, signal.SIGKILL)
    while any(pid_alive(pid) for pid in runtime_pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def invoke(
    events: list[dict[str, Any]],
    repeat: int = 1,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
    *,
    command: list[str] | None = None,
    cwd: Path | str | None = None,
    dockerfile: Path = DOCKERFILE,
    template: Path | None = TEMPLATE,
    parameters: dict[str, str] | None = None,
    function_id: str = FUNCTION_ID,
    startup_timeout: float = 15.0,
    stop_grace: float = 5.0,
    during: Callable[[Running], None] | None = None,
) -> InvokeReport:
    """Run each event ``repeat`` times (events in order, then again) through one emulator and runtime.

    ``env`` is added last and wins over the caller's environment, which wins over template.yaml's
    function Environment (``function_id``'s; parameters at their defaults, or ``parameters``). ``command`` replaces the
    CMD (e.g. ``["tests_module.handler"]``); ``cwd`` is the runtime's working directory (the image's
    /var/task; default the repository root). ``timeout`` bounds the whole call: when it runs out the
    current invocation gets an error and the processes are stopped. Raises InvokeError only when the
    emulator cannot be run at all; function failures are in the report (``report.ok``, ``report.error``).
    ``during`` runs in a thread beside each invocation (``Running``), waited for once it has its answer.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    deadline = time.monotonic() + timeout
    rie = find_rie()
    argv = runtime_command(dockerfile, template, command)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    spec = function_spec(template, function_id, parameters, region) if template is not None else None
    run_env = dict(IMAGE_ENV)
    run_env.update(spec.environment if spec else {})
    run_env.update(os.environ)
    run_env.update(env or {})
    run_env.setdefault("AWS_REGION", region)
    run_env.setdefault("AWS_DEFAULT_REGION", region)
    if spec and spec.memory_size:
        run_env.setdefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(spec.memory_size))
    if spec and spec.timeout:
        run_env.setdefault("AWS_LAMBDA_FUNCTION_TIMEOUT", str(spec.timeout))  # the emulator enforces it
    workdir = Path(cwd) if cwd is not None else REPO_ROOT
    run_env.setdefault("LAMBDA_TASK_ROOT", str(workdir))
    run_env.pop("AWS_LAMBDA_RUNTIME_API", None)  # the emulator sets it for its runtime

    report = InvokeReport(
        command=argv,
        rie=str(rie),
        environment=dict(spec.environment) if spec else {},
        unresolved_environment=sorted(spec.unresolved) if spec else [],
    )
    emulator_port, runtime_port = free_ports(2)
    url = f"http://127.0.0.1:{emulator_port}{INVOKE_PATH}"
    # coreutils timeout is a safety net: the emulator dies even if this Python process is killed.
    rie_argv = [
        "timeout",
        "--kill-after=5",
        str(max(1, int(timeout + stop_grace + 5))),
        str(rie),
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{emulator_port}",
        "--runtime-api-address",
        f"127.0.0.1:{runtime_port}",
        *argv,
    ]
    runtime_pids: set[int] = set()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            rie_argv,
            cwd=workdir,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
        report.pids.append(process.pid)
        try:
            _wait_listening(emulator_port, process, min(deadline, time.monotonic() + startup_timeout))
            report.pids.extend(descendants(process.pid))
            cold = True
            index = 0
            for _round in range(repeat):
                for event_index, event in enumerate(events):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _Done
                    started = time.monotonic()
                    watcher = watch(during, log, process.pid)
                    try:
                        status, raw = _post(url, json.dumps(event).encode(), remaining)
                    except TimeoutError:
                        message = f"Timeout: no answer within the {timeout:g} s budget"
                        elapsed = time.monotonic() - started
                        report.invocations.append(Invocation(index, event_index, 0, None, elapsed, cold, message))
                        raise _Done from None
                    except (urllib.error.URLError, ConnectionError) as exc:
                        raise InvokeError(f"cannot reach the emulator: {exc}") from None
                    finally:
                        if watcher is not None:
                            watcher.join(timeout=stop_grace)
                    seconds = time.monotonic() - started
                    runtime_pids.update(descendants(process.pid))
                    text = raw.decode("utf-8", "replace")
                    try:
                        body: Any = json.loads(text) if text else None
                    except json.JSONDecodeError:
                        body = text
                    error = _error_of(body)
                    if status != 200 and error is None:
                        error = f"HTTP {status}: {text[:500]}"
                    report.invocations.append(Invocation(index, event_index, status, body, seconds, cold, error))
                    index += 1
                    if status != 200:
                        # An init failure answers 502; the emulator would start the runtime again
                        # for the next event, and it would fail the same way: stop here.
                        raise _Done
                    # After a timeout the emulator kills the runtime; the next event starts a new one.
                    cold = error is not None and error.startswith(TIMED_OUT)
        except _Done:
            pass
        finally:
            _stop(process, runtime_pids, stop_grace)
            report.pids.extend(pid for pid in sorted(runtime_pids) if pid not in report.pids)
            report.stopped = not any(pid_alive(pid) for pid in report.pids)
            log.seek(0)
            report.logs = log.read().decode("utf-8", "replace")
    if _INIT_FAILED.search(report.logs) and report.invocations and report.invocations[-1].status != 200:
        report.init_error = report.invocations[-1].error
    match = _INIT_REPORT.search(report.logs)
    report.init_ms = float(match.group(1)) if match else None
    return report
