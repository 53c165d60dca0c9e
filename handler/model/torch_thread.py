"""The one thread that runs the model: every load and forward pass of the process, whichever thread asks.

PyTorch's CPU wheels parallelise with GNU OpenMP, which gives each thread that starts a parallel region a team
of its own. The model is loaded on the main thread (Lambda's init) but HTTP requests run on FastAPI's worker
threads, so a process that served both had two teams: more OpenMP threads than CPUs. libgomp then cuts the
spin-wait between parallel regions from about 300,000 rounds to 100 and sleeps in the kernel instead, and a
forward pass is thousands of short regions: the model ran about 10 % slower on a worker thread than on the
main thread (figures: docs/performance.md). Running every load and forward on this one thread keeps one team
whatever thread the request came on.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

R = TypeVar("R")

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class TorchThread:
    """A daemon thread that runs the callables it is given, one at a time, in the order given."""

    def __init__(self, name: str = "torch") -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    def run(self, function: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """``function(*args, **kwargs)`` on this thread; its result or its exception, in the caller."""
        if threading.current_thread() is self._thread:  # a job that asks for more runs it in place
            return function(*args, **kwargs)
        future: Future[R] = Future()
        self._jobs.put((future, function, args, kwargs))
        return future.result()

    def _serve(self) -> None:
        while True:
            future, function, args, kwargs = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as error:  # handed to the caller, which raises it
                future.set_exception(error)
            del future, function, args, kwargs  # hold nothing of a finished job while waiting for the next


_lock = threading.Lock()
_thread: TorchThread | None = None


def torch_thread() -> TorchThread:
    """The process's one model thread, started on first use."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = TorchThread()
        return _thread


def _forget_in_child() -> None:
    # A forked child has no copy of the parent's threads: it starts its own on first use.
    global _thread, _lock
    _thread, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
