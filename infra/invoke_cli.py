"""``python -m infra invoke EVENT.json [--repeat N]``: the no-Docker twin of ``sam local invoke -e``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from infra.image_spec import FUNCTION_ID, WORKER_ID
from infra.processes import InvokeError
from infra.rie import invoke


def _function_logs(logs: str) -> str:
    """The function's own output: the emulator's "(rapid)" bookkeeping lines left out."""
    return "\n".join(line for line in logs.splitlines() if "(rapid)" not in line)


def function_for(event: Any) -> str:
    """The template's function that gets this event when deployed: HTTP requests go to the HTTP function,
    everything else (S3, SQS, EventBridge, Batch Operations) to the worker, with its environment and timeout."""
    return FUNCTION_ID if isinstance(event, dict) and "requestContext" in event else WORKER_ID


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
    invoke_options.setdefault("function_id", function_for(event))
    try:
        report = invoke([event], repeat=repeat, env=env, timeout=timeout, **invoke_options)
    except (InvokeError, ValueError) as exc:
        print(f"invoke: {exc}", file=err)
        return 2
    if report.invocations and report.invocations[0].body is not None:
        print(json.dumps(report.invocations[0].body, indent=2), file=out)
    timings = report.timings()
    line = f"invoke ({invoke_options['function_id']}): "
    line += f"cold {timings['cold_s']:.2f} s" if timings["cold_s"] is not None else "no answer"
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
