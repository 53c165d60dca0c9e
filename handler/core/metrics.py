"""Service metrics as CloudWatch embedded metric format (EMF) lines on stdout, with Powertools Metrics.

One namespace, ``PointRend``; dimensions ``service``, ``entry_point`` (http | s3 | jobs | batch) and, for
``Errors`` only, ``error_code`` (the stable codes of ``handler.core.errors`` and the HTTP error handlers): a few
dozen series in all. What is recorded, and where:

- ``record_image(entry_point, result)``: ``ImagesSegmented``, ``ObjectsFound``, ``DecodeLatency``,
  ``ModelLatency``, ``TotalLatency`` (ms, from ``result.timings_ms``) and ``ImageMegapixels``.
- ``record_error(entry_point, code)``: ``Errors`` by code; ``busy`` and ``out_of_time`` also count as
  ``Refused`` (the retryable refusals: capacity, not bad input).
- ``ColdStart`` (Powertools' ``capture_cold_start_metric``), through ``invocation`` around the handler, on
  an on-demand init's first invocation; ``Restores`` instead on the first one after a SnapStart restore
  (``mark_restored``, from the after-restore hook): the snapshot's own init never serves a request.

Recording happens only inside a scope: each Lambda invocation (``invocation``), or each local server request
when ``SEG_METRICS=true`` (``scope``); elsewhere (the local server by default, the CLI) the calls are no-ops,
so nothing piles up in memory. Every scope prints what it recorded when it ends, failed or not.
Powertools makes no network call: EMF is a log line that CloudWatch Logs turns into metrics.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol, TypeVar

from aws_lambda_powertools.metrics import EphemeralMetrics, Metrics, MetricUnit
from aws_lambda_powertools.metrics.provider import cold_start
from botocore.exceptions import BotoCoreError, ClientError

from handler.core.settings import get_settings

NAMESPACE = "PointRend"
SERVICE = "pointrend"
EntryPoint = Literal["http", "s3", "jobs", "batch"]
REFUSALS = frozenset({"busy", "out_of_time"})

# Powertools warns when a flush finds no application metrics (a cold start alone, a /healthz request);
# its documentation suggests this filter when that is expected.
warnings.filterwarnings("ignore", "No application metrics to publish*")

F = TypeVar("F", bound=Callable[..., Any])


class Timed(Protocol):
    """What ``record_image`` reads from a result (``handler.engine.Segmentation`` has it)."""

    width: int
    height: int
    timings_ms: dict[str, float]

    def __len__(self) -> int: ...


class Recorder:
    """Metrics waiting to be printed, one Powertools metric set per dimension set (EMF allows one per line)."""

    def __init__(self) -> None:
        self._sets: dict[tuple[tuple[str, str], ...], EphemeralMetrics] = {}
        self._lock = threading.Lock()
        self._scopes = 0

    @property
    def recording(self) -> bool:
        return self._scopes > 0

    def add(self, name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
        if not self.recording:
            return
        key = tuple(sorted(dimensions.items()))
        with self._lock:
            metric_set = self._sets.get(key)
            if metric_set is None:
                metric_set = self._sets[key] = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
                for dimension, value_ in key:
                    metric_set.add_dimension(dimension, value_)
            metric_set.add_metric(name=name, unit=unit, value=value)

    def flush(self) -> None:
        with self._lock:
            pending = list(self._sets.values())
            self._sets.clear()
        for metric_set in pending:
            metric_set.flush_metrics()

    @contextmanager
    def scope(self) -> Iterator[None]:
        with self._lock:
            self._scopes += 1
        try:
            yield
        finally:
            with self._lock:
                self._scopes -= 1
            self.flush()


recorder = Recorder()
scope = recorder.scope
# Powertools' shared instance: only the cold start goes through it (its own decorator handles that flag).
cold_start_metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class _Restored:
    """Set by the after-restore hook, taken by the next invocation (once)."""

    def __init__(self) -> None:
        self._pending = False
        self._lock = threading.Lock()

    def mark(self) -> None:
        with self._lock:
            self._pending = True

    def take(self) -> bool:
        with self._lock:
            pending, self._pending = self._pending, False
            return pending


_restored = _Restored()


def mark_restored() -> None:
    """This environment was restored from a SnapStart snapshot: its next invocation counts as a restore,
    not as a cold start (Powertools' flag, left true by the snapshot's init, is cleared)."""
    cold_start.is_cold_start = False
    _restored.mark()


def record_image(entry_point: EntryPoint, result: Timed) -> None:
    dims = {"entry_point": entry_point}
    recorder.add("ImagesSegmented", MetricUnit.Count, 1, **dims)
    recorder.add("ObjectsFound", MetricUnit.Count, len(result), **dims)
    recorder.add("ImageMegapixels", MetricUnit.NoUnit, result.width * result.height / 1e6, **dims)
    for stage, name in (("decode", "DecodeLatency"), ("model", "ModelLatency"), ("total", "TotalLatency")):
        if stage in result.timings_ms:
            recorder.add(name, MetricUnit.Milliseconds, result.timings_ms[stage], **dims)


def record_error(entry_point: EntryPoint, code: str) -> None:
    recorder.add("Errors", MetricUnit.Count, 1, entry_point=entry_point, error_code=code)
    if code in REFUSALS:
        recorder.add("Refused", MetricUnit.Count, 1, entry_point=entry_point)


def error_code(exc: BaseException) -> str:
    """The stable code of a service error, ``storage_error`` for S3 failures, else ``internal_error``: a
    closed set, so the ``error_code`` dimension stays small."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    return "storage_error" if isinstance(exc, (ClientError, BotoCoreError)) else "internal_error"


def invocation(handler: F) -> F:
    """Wraps ``lambda_handler``: records inside each invocation and prints at its end, failed or not, with
    the ``ColdStart`` metric on an on-demand environment's first one, ``Restores`` on a restored one's.
    ``SEG_METRICS=false``: the handler as it is."""
    if get_settings().metrics is False:
        return handler

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        with scope():
            if _restored.take():  # dimensions as Powertools gives ColdStart: one series per function
                function_name = getattr(context, "function_name", None) or "unknown"
                recorder.add("Restores", MetricUnit.Count, 1, function_name=function_name)
            return handler(event, context)

    return cold_start_metrics.log_metrics(wrapper, capture_cold_start_metric=True)  # type: ignore[return-value]
