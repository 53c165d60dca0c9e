"""A throwaway Lambda handler for tests/test_invoke.py: proves the emulator plumbing without the model.

Run as ``python -m awslambdaric lambda_echo.handler`` with tests/ as the working directory.
"""

from __future__ import annotations

import os
import time

SEEN_ENV = (
    "SEG_CONFIDENCE",
    "SEG_INPUT_PREFIX",
    "SEG_OUTPUT_PREFIX",
    "ECHO_MARK",
    "LAMBDA_TASK_ROOT",
    "MALLOC_ARENA_MAX",
)


def handler(event, context):
    if "raise" in event:
        raise ValueError(event["raise"])
    if "sleep" in event:
        time.sleep(float(event["sleep"]))
    return {
        "event": event,
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "env": {name: os.environ.get(name) for name in SEEN_ENV},
        "remaining_ms": context.get_remaining_time_in_millis(),
        # The invocation's deadline on the wall clock (epoch ms): what the emulator set, whatever the init took.
        "deadline_ms": time.time() * 1000 + context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }
