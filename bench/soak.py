"""Soak and concurrency: does the service keep answering every part of a request, without leaking memory or
file descriptors?

Every request exercises everything a mask goes through: the dense test model (``make-test-model --dense``: 100
objects on any image, made if missing), ``masks=polygons&overlay=true`` (each object's mask pasted, traced to
polygons and drawn on the overlay, one object at a time), and every answer is checked: status 200, as many
objects as ``--min-objects``, one polygon list per object, the overlay a PNG. Anything else counts as an error.

1. ``lambda_handler`` in this process, as one warm Lambda container: a small sample HTTP API v2 event from
   events/ (default: the 96x96 multipart upload) with the query above, warm-up invocations, then N sequential
   invocations.
2. ``python -m handler serve`` as a subprocess on a free 127.0.0.1 port: warm-up requests, then M multipart
   POST /segment requests from a pool of W threads (W between 4 and 8: the server's admission control runs
   2 and queues 6, and answers 503 beyond that; a 503 counts as an error here).

For each phase: p50/p95 latency, errors, RSS after warm-up and at the end, open file descriptors
(/proc/<pid>/fd) after warm-up and at the end, RSS after every tenth of the requests, and the growth over the
second half alone (``late_growth_pct``): a leak keeps growing there, a high-water mark levels off. A count of 0
skips its phase. The last line sums both phases:
``soak_errors=<n> rss_growth_pct=<x.xx> p95_ms=<n> objects=<fewest in any answer>`` with the larger growth and
the larger p95 of the two. Target: rss_growth_pct <= 5 with no errors.

Run (the defaults: 300 sequential, 100 concurrent, rapid speed):
    .venv/bin/python bench/soak.py
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
DEFAULT_EVENT = REPO / "events" / "apigw-http-multipart.json"
DEFAULT_MODEL = REPO / ".cache" / "models" / "test_model_dense.pkl"
QUERY = {"masks": "polygons", "overlay": "true"}
SERVER_START_S = 180
LOOPBACK = "127.0.0.1"


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fewest_objects: int = 10**9
    rss_warm_kib: int = 0
    rss_end_kib: int = 0
    fds_warm: int = 0
    fds_end: int = 0
    rss_trace_kib: list[int] = field(default_factory=list)  # after each timed request

    @property
    def rss_growth_pct(self) -> float:
        return (self.rss_end_kib - self.rss_warm_kib) / self.rss_warm_kib * 100

    @property
    def late_growth_pct(self) -> float:
        """Growth over the second half of the run: a leak keeps it up, a high-water mark brings it to ~0."""
        half = self.rss_trace_kib[len(self.rss_trace_kib) // 2]
        return (self.rss_end_kib - half) / half * 100

    def trace(self) -> str:
        """RSS (MiB) after warm-up and after each tenth of the timed requests."""
        count = len(self.rss_trace_kib)
        points = [self.rss_warm_kib] + [self.rss_trace_kib[max(0, count * k // 10 - 1)] for k in range(1, 11)]
        return " ".join(f"{kib / 1024:.0f}" for kib in points)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)

    def report(self) -> str:
        return (
            f"{self.name}: n={len(self.latencies_ms)} p50_ms={statistics.median(self.latencies_ms):.0f} "
            f"p95_ms={self.p95_ms:.0f} max_ms={max(self.latencies_ms):.0f} errors={len(self.errors)} "
            f"rss_warm_mib={self.rss_warm_kib / 1024:.1f} rss_end_mib={self.rss_end_kib / 1024:.1f} "
            f"rss_growth_pct={self.rss_growth_pct:.2f} late_growth_pct={self.late_growth_pct:.2f} "
            f"fds_warm={self.fds_warm} fds_end={self.fds_end} fewest_objects={self.fewest_objects}\n"
            f"  rss_mib after warm-up, then after each tenth: {self.trace()}"
        )


class Context:
    """What the Lambda runtime's context offers the handler: a request id and Lambda's longest deadline (15 min):
    the soak is about leaks, not deadlines (a loaded machine must not turn requests into 503 out_of_time)."""

    function_name = "pointrend"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pointrend"

    def __init__(self, n: int) -> None:
        self.aws_request_id = f"soak-{n:06d}"
        self._deadline = time.monotonic() + 900

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def check_answer(status: int, body: str, min_objects: int, phase: Phase) -> str | None:
    """None when the answer is complete: 200, enough objects, a polygon list per object, a PNG overlay."""
    import base64

    if status != 200:
        return f"{status}: {body[:200]}"
    result = json.loads(body)
    count = len(result.get("class_names", []))
    phase.fewest_objects = min(phase.fewest_objects, count)
    if count < min_objects:
        return f"200 with {count} objects (fewer than {min_objects})"
    if len(result.get("polygons") or []) != count:
        return f"200 with {len(result.get('polygons') or [])} polygon lists for {count} objects"
    if not base64.b64decode(result.get("overlay_png_base64") or "").startswith(b"\x89PNG"):
        return "200 without the overlay PNG"
    return None


def with_query(event: dict) -> dict:
    from urllib.parse import urlencode

    return {**event, "rawQueryString": urlencode(QUERY), "queryStringParameters": dict(QUERY)}


def lambda_phase(event_path: Path, warmup: int, count: int, min_objects: int) -> Phase:
    from handler.lambda_function import lambda_handler  # the init phase: loads the model

    event = with_query(json.loads(event_path.read_text()))
    phase = Phase("lambda_handler sequential")

    def invoke(n: int) -> tuple[float, str | None]:
        started = time.perf_counter()
        answer = lambda_handler(event, Context(n))
        elapsed = (time.perf_counter() - started) * 1000
        return elapsed, check_answer(answer.get("statusCode", 0), answer.get("body", ""), min_objects, phase)

    for n in range(warmup):
        invoke(-n - 1)
    phase.rss_warm_kib, phase.fds_warm = rss_kib(), open_fds()
    for n in range(count):
        elapsed, error = invoke(n)
        phase.latencies_ms.append(elapsed)
        phase.rss_trace_kib.append(rss_kib())
        if error:
            phase.errors.append(error)
    phase.rss_end_kib, phase.fds_end = rss_kib(), open_fds()
    return phase


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def multipart_image(event_path: Path) -> tuple[bytes, str]:
    """The image inside the sample event, to send as a form upload."""
    import base64

    event = json.loads(event_path.read_text())
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
    content_type = event["headers"]["content-type"]
    if not content_type.startswith("multipart/form-data"):
        return body, content_type
    boundary = content_type.split("boundary=", 1)[1].encode()
    part = body.split(b"--" + boundary)[1]
    headers, data = part.split(b"\r\n\r\n", 1)
    kind = next(
        (
            line.split(b":", 1)[1].strip().decode()
            for line in headers.split(b"\r\n")
            if line.lower().startswith(b"content-type")
        ),
        "application/octet-stream",
    )
    return data.removesuffix(b"\r\n"), kind


def serve_phase(event_path: Path, warmup: int, count: int, workers: int, min_objects: int) -> Phase:
    if not 4 <= workers <= 8:
        raise SystemExit("--workers must be 4..8: at least 4 at a time, and within admission (2 running + 6 waiting)")
    image, image_type = multipart_image(event_path)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    log = tempfile.NamedTemporaryFile(prefix="soak-serve-", suffix=".log", delete=False)  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "handler", "serve", "--host", LOOPBACK, "--port", str(port)],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    phase = Phase(f"serve concurrent ({workers} at a time)")
    try:
        with httpx.Client(timeout=900) as client:
            wait_until_healthy(client, url, server, Path(log.name))
            send = request_sender(url, image, image_type, min_objects, phase)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(lambda _: send(client), range(warmup)))
                phase.rss_warm_kib, phase.fds_warm = rss_kib(server.pid), open_fds(server.pid)
                for elapsed, error in pool.map(lambda _: send(client), range(count)):
                    phase.latencies_ms.append(elapsed)
                    phase.rss_trace_kib.append(rss_kib(server.pid))
                    if error:
                        phase.errors.append(error)
            phase.rss_end_kib, phase.fds_end = rss_kib(server.pid), open_fds(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    if server.returncode not in (0, -15):
        print(f"note: the server exited with {server.returncode}; log: {log.name}", file=sys.stderr)
    else:
        os.unlink(log.name)
    return phase


def wait_until_healthy(client: httpx.Client, url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if client.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"the server did not answer /healthz in {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def request_sender(
    url: str, image: bytes, image_type: str, min_objects: int, phase: Phase
) -> Callable[[httpx.Client], tuple[float, str | None]]:
    def send(client: httpx.Client) -> tuple[float, str | None]:
        started = time.perf_counter()
        try:
            response = client.post(f"{url}/segment", params=QUERY, files={"image": ("soak.jpg", image, image_type)})
        except httpx.HTTPError as exc:
            return (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        return elapsed, check_answer(response.status_code, response.text, min_objects, phase)

    return send


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--event", type=Path, default=DEFAULT_EVENT, help="a sample HTTP event (small image)")
    parser.add_argument("--sequential", type=int, default=300, help="lambda_handler invocations")
    parser.add_argument("--concurrent", type=int, default=100, help="requests to the server")
    parser.add_argument("--workers", type=int, default=6, help="requests in flight at once (4..8)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests before each phase")
    parser.add_argument("--min-objects", type=int, default=100, help="objects every answer must have")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    if "SEG_MODEL_PATH" not in os.environ and not DEFAULT_MODEL.exists():
        from handler.model.test_models import make_test_model

        make_test_model(DEFAULT_MODEL, dense=True)
    os.environ.setdefault("SEG_MODEL_PATH", str(DEFAULT_MODEL))
    os.environ.setdefault("SEG_DETECTION_SPEED", "rapid")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # one log line per request would dominate
    print(
        f"model={os.environ['SEG_MODEL_PATH']} speed={os.environ['SEG_DETECTION_SPEED']} event={args.event.name} "
        f"query={QUERY} load={' '.join(f'{value:.1f}' for value in os.getloadavg())}",
        flush=True,
    )

    phases = []
    if args.sequential:
        phases.append(lambda_phase(args.event, args.warmup, args.sequential, args.min_objects))
        print(phases[-1].report(), flush=True)
    if args.concurrent:
        phases.append(serve_phase(args.event, args.warmup, args.concurrent, args.workers, args.min_objects))
        print(phases[-1].report(), flush=True)
    if not phases:
        raise SystemExit("nothing to run: --sequential and --concurrent are both 0")
    for phase in phases:
        for error in phase.errors[:5]:
            print(f"  {phase.name} error: {error}")
    errors = sum(len(phase.errors) for phase in phases)
    growth = max(phase.rss_growth_pct for phase in phases)
    p95 = max(phase.p95_ms for phase in phases)
    fewest = min(phase.fewest_objects for phase in phases)
    print(f"load={' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    print(f"soak_errors={errors} rss_growth_pct={growth:.2f} p95_ms={p95:.0f} objects={fewest}")
    return 0 if errors == 0 and growth < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
