"""The emulator binary (shipped in the aws-sam-cli wheel), free loopback ports, stopping process trees by pid, and
watching a runtime while it is invoked."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

RIE_ENV_VAR = "AWS_LAMBDA_RIE_PATH"  # optional: use this emulator binary instead of the one in aws-sam-cli


class InvokeError(RuntimeError):
    """The emulator could not be found, started or reached (not an error of the function)."""


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


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@dataclass
class Running:
    """What ``invoke(during=...)`` hands its callback while an invocation is in flight (e.g. a fault test that
    kills the runtime mid-image): the output so far, and the runtime's pids (``python -m awslambdaric``)."""

    logs: Callable[[], str]
    runtime_pids: Callable[[], list[int]]


def watch(during: Callable[[Running], None] | None, log: Any, emulator: int) -> threading.Thread | None:
    """Runs ``during`` in a thread beside an invocation of the emulator whose pid is ``emulator``, its output in
    ``log`` (a file the processes write to)."""
    if during is None:
        return None

    def runtime_pids() -> list[int]:
        # python -m awslambdaric ...: not the emulator, whose own command line ends with the runtime's
        return [pid for pid in descendants(emulator) if _argv(pid)[1:3] == [b"-m", b"awslambdaric"]]

    def logs() -> str:
        return os.pread(log.fileno(), os.fstat(log.fileno()).st_size, 0).decode("utf-8", "replace")

    thread = threading.Thread(target=during, args=(Running(logs, runtime_pids),), daemon=True)
    thread.start()
    return thread


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile
        return []
