"""Bounds the work in flight on one process, so concurrent requests cannot exhaust its memory."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import ParamSpec, TypeVar

from handler.core.errors import ServiceBusy

P = ParamSpec("P")
R = TypeVar("R")

# One image on the model (it is serialised anyway) and one being decoded or encoded beside it.
RUNNING = 2
# Requests admitted beyond those hold at most their upload in memory while they wait.
WAITING = 6


class Admission:
    """At most ``running`` jobs run at once and ``waiting`` more queue; any further request gets 503.

    Thread-safe and not bound to an event loop: Mangum, uvicorn and TestClient each bring their own.
    """

    def __init__(self, running: int = RUNNING, waiting: int = WAITING) -> None:
        self.capacity = running + waiting
        self._slots = threading.BoundedSemaphore(running)
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        return self._admitted

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Never blocks: either admits the request or raises ``ServiceBusy``."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise ServiceBusy(f"the server is busy ({self.capacity} requests in progress); retry shortly")
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1

    def run(self, job: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``job`` once a slot is free (call from a worker thread: this blocks)."""
        with self._slots:
            return job(*args, **kwargs)


@lru_cache(maxsize=1)
def get_admission() -> Admission:
    return Admission()
