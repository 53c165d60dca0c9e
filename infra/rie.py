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

import contextlib
import json
import os
import platform
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
TEMPLATE = REPO_ROOT / "template.yaml"
FUNCTION_ID = "SegmentFunction"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
RIE_ENV_VAR = "AWS_LAMBDA_RIE_PATH"  # optional: use this emulator binary instead of the one in aws-sam-cli

# What `sam local invoke` substitutes for pseudo parameters when it resolves template values.
PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "local",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/local/0",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": "",
}

_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
_INIT_FAILED = re.compile(r"INIT RTDONE\(status: error\)|Init failed error=")
_TIMED_OUT = re.compile(r"Task timed out after [0-9.]+ seconds")
TIMED_OUT = "Sandbox.Timedout"  # Lambda's errorType for a function that ran past its timeout


class InvokeError(RuntimeError):
    """The emulator could not be found, started or reached (not an error of the function)."""


class _Done(Exception):
    """Stop invoking (time budget spent, or the runtime cannot start)."""


# ------------------------------------------------------------------------------------------------
# Reading the Dockerfile and template.yaml


def _continued_lines(text: str) -> list[str]:
    """Dockerfile instructions, one per item: comments dropped, backslash continuations joined."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return out


def dockerfile_exec_form(dockerfile: Path = DOCKERFILE) -> tuple[list[str], list[str]]:
    """The final stage's exec-form ENTRYPOINT and CMD, as lists. Shell forms are refused (ValueError)."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for line in _continued_lines(Path(dockerfile).read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":  # a new stage: nothing of the previous one is inherited
            entrypoint, cmd = [], []
        elif keyword in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                value = None
            if not (isinstance(value, list) and all(isinstance(part, str) for part in value)):
                raise ValueError(f"{dockerfile}: {keyword} must be in exec form (a JSON list), got {rest!r}")
            if keyword == "ENTRYPOINT":
                entrypoint, cmd = value, []  # Docker: setting ENTRYPOINT resets an inherited CMD
            else:
                cmd = value
    return entrypoint, cmd


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short forms (!Ref, !Sub, !GetAtt, ...) as their long form."""


def _cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(template: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(Path(template).read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)


@dataclass
class FunctionSpec:
    """What the template says about the function, with parameters at their defaults (or overrides)."""

    environment: dict[str, str]
    unresolved: dict[str, Any]  # variables whose value needs a deployed resource (left out locally)
    image_command: list[str] | None  # ImageConfig.Command (overrides the Dockerfile's CMD)
    image_entrypoint: list[str] | None  # ImageConfig.EntryPoint (overrides the Dockerfile's ENTRYPOINT)
    memory_size: int | None
    timeout: int | None


class _Unresolved(Exception):
    pass


def _resolve(value: Any, names: dict[str, str]) -> str:
    """Resolve Ref/Sub against parameter values and pseudo parameters; anything else is unresolved."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str) and arg in names:
            return names[arg]
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            local = dict(names, **{k: _resolve(v, names) for k, v in extra.items()})

            def substitute(match: re.Match[str]) -> str:
                token = match.group(1)
                if token.startswith("!"):
                    return "${" + token[1:] + "}"
                if token not in local:
                    raise _Unresolved(token)
                return local[token]

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
    raise _Unresolved(repr(value))


def function_spec(
    template: Path = TEMPLATE,
    function_id: str = FUNCTION_ID,
    parameters: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> FunctionSpec:
    doc = load_template(template)
    names = dict(PSEUDO_PARAMETERS, **{"AWS::Region": region})
    for name, spec in (doc.get("Parameters") or {}).items():
        if "Default" in spec:
            names[name] = _resolve(spec["Default"], names)
    names.update(parameters or {})
    function = doc["Resources"][function_id]
    props = dict((doc.get("Globals") or {}).get("Function") or {}, **function.get("Properties", {}))
    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    environment: dict[str, str] = {}
    unresolved: dict[str, Any] = {}
    for key, value in variables.items():
        try:
            environment[key] = _resolve(value, names)
        except _Unresolved:
            unresolved[key] = value

    def number(key: str) -> int | None:
        if key not in props:
            return None
        try:
            return int(_resolve(props[key], names))
        except (_Unresolved, ValueError):
            return None

    image_config = props.get("ImageConfig") or {}
    return FunctionSpec(
        environment=environment,
        unresolved=unresolved,
        image_command=image_config.get("Command"),
        image_entrypoint=image_config.get("EntryPoint"),
        memory_size=number("MemorySize"),
        timeout=number("Timeout"),
    )


def runtime_command(
    dockerfile: Path = DOCKERFILE,
    template: Path | None = TEMPLATE,
    command: list[str] | None = None,
    python: str = sys.executable,
) -> list[str]:
    """ENTRYPOINT + CMD as Lambda runs them: template ImageConfig overrides the Dockerfile, ``command``
    overrides CMD (like arguments after the image in ``docker run``); ``python`` becomes this interpreter."""
    entrypoint, cmd = dockerfile_exec_form(dockerfile)
    if template is not None:
        spec = function_spec(template)
        entrypoint = spec.image_entrypoint or entrypoint
        cmd = spec.image_command or cmd
    if command is not None:
        cmd = list(command)
    argv = [*entrypoint, *cmd]
    if not argv:
        raise ValueError(f"{dockerfile} has neither ENTRYPOINT nor CMD")
    if re.fullmatch(r"python(3(\.\d+)?)?", argv[0]):
        argv[0] = python
    return argv


# ------------------------------------------------------------------------------------------------
# The emulator binary, ports, processes


def rie_arch(machine: str | None = None) -> str:
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise InvokeError(f"no Lambda Runtime Interface Emulator for machine type {machine!r}")


def find_rie(machine: str | None = None) -> Path:
    """The emulator binary: $AWS_LAMBDA_RIE_PATH, else the one inside the installed aws-sam-cli wheel.

    Made executable if it is not (a copy in a temporary folder if the file cannot be changed)."""
    override = os.environ.get(RIE_ENV_VAR)
    if override:
        path = Path(override)
    else:
        spec = find_spec("samcli")
        if spec is None or not spec.submodule_search_locations:
            raise InvokeError("aws-sam-cli is not installed: pip install -r requirements-dev.txt")
        package = Path(next(iter(spec.submodule_search_locations)))
        path = package / "local" / "rapid" / f"aws-lambda-rie-{rie_arch(machine)}"
    if not path.is_file():
        raise InvokeError(f"Lambda Runtime Interface Emulator not found at {path}")
    if not os.access(path, os.X_OK):
        try:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError:
            copy = Path(tempfile.mkdtemp(prefix="rie-")) / path.name
            copy.write_bytes(path.read_bytes())
            copy.chmod(0o755)
            path = copy
    return path


def free_ports(count: int = 2) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together while choosing, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, ...
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    children = _children_map()
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# ------------------------------------------------------------------------------------------------
# Invoking


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
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=grace)
    _signal_group(process.pid, signal.SIGKILL)  # stragglers left in the emulator's group
    deadline = time.monotonic() + grace
    for pid in runtime_pids:
        if pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)  # the runtime runs in a process group of its own
            _signal_pid(pid, signal.SIGKILL)
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
    startup_timeout: float = 15.0,
    stop_grace: float = 5.0,
) -> InvokeReport:
    """Run each event ``repeat`` times (events in order, then again) through one emulator and runtime.

    ``env`` is added last and wins over the caller's environment, which wins over template.yaml's
    function Environment (parameters at their defaults, or ``parameters``). ``command`` replaces the
    CMD (e.g. ``["tests_module.handler"]``); ``cwd`` is the runtime's working directory (the image's
    /var/task; default the repository root). ``timeout`` bounds the whole call: when it runs out the
    current invocation gets an error and the processes are stopped. Raises InvokeError only when the
    emulator cannot be run at all; function failures are in the report (``report.ok``, ``report.error``).
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    deadline = time.monotonic() + timeout
    rie = find_rie()
    argv = runtime_command(dockerfile, template, command)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    spec = function_spec(template, parameters=parameters, region=region) if template is not None else None
    run_env = dict(spec.environment) if spec else {}
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
                    try:
                        status, raw = _post(url, json.dumps(event).encode(), remaining)
                    except TimeoutError:
                        message = f"Timeout: no answer within the {timeout:g} s budget"
                        elapsed = time.monotonic() - started
                        report.invocations.append(Invocation(index, event_index, 0, None, elapsed, cold, message))
                        raise _Done from None
                    except (urllib.error.URLError, ConnectionError) as exc:
                        raise InvokeError(f"cannot reach the emulator: {exc}") from None
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


# ------------------------------------------------------------------------------------------------
# `python -m handler invoke EVENT.json [--repeat N]`


def _function_logs(logs: str) -> str:
    """The function's own output: the emulator's "(rapid)" bookkeeping lines left out."""
    return "\n".join(line for line in logs.splitlines() if "(rapid)" not in line)


def invoke_cli(
    event_path: Path | str,
    repeat: int = 1,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
    stdout: Any = None,
    stderr: Any = None,
    **invoke_options: Any,
) -> int:
    """Print the response as JSON on stdout (like ``sam local invoke``), timings and logs on stderr.

    Exit status 0 when every invocation succeeded, 1 when the function failed (handler error or init
    failure; the error is printed with the function's log), 2 when the emulator could not run.
    ``invoke_options`` go to :func:`invoke` (``command``, ``cwd``, ``parameters``, ...)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        event = json.loads(Path(event_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"invoke: cannot read {event_path}: {exc}", file=err)
        return 2
    try:
        report = invoke([event], repeat=repeat, env=env, timeout=timeout, **invoke_options)
    except (InvokeError, ValueError) as exc:
        print(f"invoke: {exc}", file=err)
        return 2
    if report.invocations and report.invocations[0].body is not None:
        print(json.dumps(report.invocations[0].body, indent=2), file=out)
    timings = report.timings()
    line = f"invoke: cold {timings['cold_s']:.2f} s" if timings["cold_s"] is not None else "invoke: no answer"
    if timings["init_ms"] is not None:
        line += f" (init {timings['init_ms'] / 1000:.2f} s)"
    if timings["warm_s"]:
        warm = timings["warm_s"]
        line += f", warm median {warm['median']:.2f} s (min {warm['min']:.2f}, max {warm['max']:.2f}, n={warm['n']})"
    print(line, file=err)
    if report.ok:
        return 0
    print(_function_logs(report.logs)[-6000:], file=err)
    print(f"invoke: {report.error}", file=err)
    return 1
