"""Retries of the jobs client's requests (``submit``): 429, 503 and the other 5xx answers are tried again by
tenacity, after the server's ``Retry-After`` or else a capped exponential wait with jitter, each wait announced
on stderr; when the tries run out the last answer is returned.

The API throttles at a few requests a second across all routes (429 from API Gateway), answers 503 when it
is busy, out of time or S3 is (``Retry-After`` says when to come back), and S3 itself answers 503
``SlowDown``: all of these pass if asked again a little later.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt
from tqdm import tqdm

from handler.core import storage

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)  # above any progress bar, not through it


def retry_after(response: httpx.Response) -> float | None:
    """The seconds ``Retry-After`` asks for (a number, or an HTTP date), or None without a usable one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _why(response: httpx.Response) -> str:
    """``503 storage_unavailable``, ``503 SlowDown`` or just ``429``: the status and the server's code."""
    code = ""
    try:
        code = str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        s3_error = storage.xml_error(response.text)
        code = s3_error[0] if s3_error else ""
    return f"{response.status_code} {code}".strip()


def _retryable(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES


@dataclass
class Backoff:
    """Up to ``retries`` more tries after the first, waiting ``first_s``, then twice as long each time (with
    jitter, so that many clients do not come back together), at most ``cap_s``; a ``Retry-After`` is
    honoured instead, up to ``cap_s`` too."""

    retries: int = 6
    first_s: float = 1.0
    cap_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = field(default=_say)

    def delay(self, attempt: int, response: httpx.Response) -> float:
        advised = retry_after(response)
        if advised is not None:
            return min(advised, self.cap_s)
        return min(self.first_s * 2**attempt, self.cap_s) * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, no secret)

    def call(self, what: str, send: Callable[[], httpx.Response]) -> httpx.Response:
        """``send()``'s answer once it is not a retryable one, or the last one when the retries run out."""

        def wait(state: RetryCallState) -> float:
            return self.delay(state.attempt_number - 1, state.outcome.result())  # type: ignore[union-attr]

        def announce(state: RetryCallState) -> None:
            response = state.outcome.result()  # type: ignore[union-attr]
            tries = f"({state.attempt_number} of {self.retries})"
            self.say(f"{what}: {_why(response)}, retrying in {state.upcoming_sleep:.0f} s {tries}")

        retrying = Retrying(
            retry=retry_if_result(_retryable),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait,
            sleep=self.sleep,
            before_sleep=announce,
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )
        return retrying(send)
