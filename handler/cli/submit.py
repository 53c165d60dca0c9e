"""``python -m handler submit``: the client of the jobs flow, for images too large for one request, and videos.

Per file: ``POST /jobs``, the file POSTed straight to S3 with the returned form fields (a progress bar),
``GET /jobs/{job_id}`` with backoff until done or failed (a result too large to inline is fetched from its
``result_url``), then ``<name.ext>.json`` (and ``<name.ext>.png`` with ``--overlay``) in the output folder, named
as ``segment`` names them (``cli/naming.py``: never onto an input or, without ``--overwrite``, a file). Every
request is retried on 429, 503 and other 5xx (``cli/backoff.py``, by tenacity). Failures are collected with their
code and message, never fatal. A video (by its suffix) becomes a video job: ``<name.ext>.jsonl`` and
``<name.ext>.webm`` from its ``result_url`` and ``video_url``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from handler.cli.backoff import Backoff
from handler.cli.naming import OutputPlan, OutputRefused
from handler.cli.report import FilesReport
from handler.core import storage
from handler.core.errors import ImageTooLarge
from handler.video import OVERLAY_SUFFIX, is_video

FIRST_POLL_S = 1.0
MAX_POLL_S = 5.0
BACKOFF = 1.5
REQUEST_TIMEOUT = httpx.Timeout(30.0, write=300.0)  # an upload of tens of MB on a slow line


class JobFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _ProgressFile(io.BufferedReader):
    """The file, advancing a progress bar as httpx reads it into the request body."""

    def __init__(self, path: Path, bar: tqdm) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self.bar = bar

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bar.update(len(chunk))
        return chunk


def _api_error(response: httpx.Response) -> JobFailed:
    """The service's ``{"error": {"code", "message"}}``, or what a proxy in front of it said."""
    try:
        error = response.json()["error"]
        return JobFailed(str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return JobFailed(f"http_{response.status_code}", response.text[:200] or response.reason_phrase)


def _s3_error(response: httpx.Response) -> JobFailed:
    """S3's XML error (``EntityTooLarge``, ``AccessDenied`` for an expired or violated policy, ...)."""
    error = storage.xml_error(response.text)
    if error is None:
        return JobFailed(f"s3_{response.status_code}", response.text[:200])
    return JobFailed(f"s3_{error[0]}", error[1])


class JobsClient:
    def __init__(self, api: str, client: httpx.Client, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api.rstrip("/")
        self.client = client
        self.sleep = sleep
        self.backoff = Backoff(sleep=sleep)

    def create(self, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        path.stat()  # a missing file fails here, before a job is made for it
        body = {"filename": path.name, **options}
        response = self.backoff.call(
            f"create a job for {path.name}", lambda: self.client.post(f"{self.api}/jobs", json=body)
        )
        if response.status_code != 201:
            raise _api_error(response)
        return response.json()

    def upload(self, job: dict[str, Any], path: Path) -> None:
        size = path.stat().st_size
        if size > job["max_bytes"]:  # S3 would refuse it after the whole upload
            raise JobFailed(ImageTooLarge.code, f"the file is {size} bytes; the limit is {job['max_bytes']} bytes")
        upload = job["upload"]

        def send() -> httpx.Response:  # the file from its start again on each try
            bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"upload {path.name}", leave=False)
            with bar, _ProgressFile(path, bar) as body:
                return self.client.post(upload["url"], data=upload["fields"], files={"file": (path.name, body)})

        response = self.backoff.call(f"upload {path.name}", send)
        if response.status_code >= 300:
            raise _s3_error(response)

    def wait(self, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The job once done (or ``JobFailed``), polled after 1 s, then 1.5 times longer each time up to 5 s
        (a poll costs a few S3 reads; a longer wait would only delay the answer)."""
        deadline = time.monotonic() + timeout_s
        delay = FIRST_POLL_S
        url = f"{self.api}{job['status_url']}"
        while True:
            response = self.backoff.call(f"job {job['job_id'][:8]}", lambda: self.client.get(url))
            if response.status_code != 200:
                raise _api_error(response)
            state = response.json()
            if state["status"] == "done":
                return self.with_result(state)
            if state["status"] == "failed":
                raise JobFailed(state["error"]["code"], state["error"]["message"])
            if time.monotonic() + delay > deadline:
                raise JobFailed("timeout", f"still {state['status']} after {timeout_s:.0f} s")
            self.sleep(delay)
            delay = min(delay * BACKOFF, MAX_POLL_S)

    def with_result(self, state: dict[str, Any]) -> dict[str, Any]:
        """The done job with its ``result``: inlined when small, else fetched from ``result_url``. A video job's
        result (JSON Lines) is fetched by ``save_video``."""
        if "result" in state or "video_url" in state:
            return state
        url = state["result_url"]
        response = self.backoff.call(f"result of job {state['job_id'][:8]}", lambda: self.client.get(url))
        if response.status_code != 200:
            raise _s3_error(response)
        return {**state, "result": response.json()}

    def save(self, state: dict[str, Any], path: Path, targets: Sequence[Path]) -> list[Path]:
        """``targets``: the result's path, then the overlay's (``OutputPlan.targets``)."""
        result_path, overlay_path = targets[0], targets[-1]
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(state["result"]))
        written = [result_path]
        if state.get("overlay_url"):
            response = self.backoff.call(f"overlay of {path.name}", lambda: self.client.get(state["overlay_url"]))
            if response.status_code != 200:
                raise _s3_error(response)
            overlay_path.write_bytes(response.content)
            written.append(overlay_path)
        return written

    def save_video(self, state: dict[str, Any], path: Path, targets: Sequence[Path]) -> tuple[list[Path], int]:
        """A video job's JSON Lines and overlay (``targets``: ``.jsonl``, ``.webm``); the written paths and the
        objects counted over every frame."""
        written = []
        for url, target in ((state["result_url"], targets[0]), (state.get("video_url"), targets[-1])):
            if not url:
                continue
            response = self.backoff.call(f"{target.suffix} of {path.name}", lambda url=url: self.client.get(url))
            if response.status_code != 200:
                raise _s3_error(response)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(response.content)
            written.append(target)
        objects = sum(len(json.loads(line)["track_ids"]) for line in targets[0].read_text().splitlines() if line)
        return written, objects


def submit_files(
    api: str,
    paths: Sequence[Path],
    out_dir: Path,
    options: dict[str, Any],
    timeout_s: float = 900.0,
    sleep: Callable[[float], None] = time.sleep,
    overwrite: bool = False,
) -> FilesReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = FilesReport(verb="done")
    paths = list(dict.fromkeys(paths))  # a file named twice is sent once
    plan = OutputPlan(paths, out_dir, overwrite)
    suffixes = (".json", ".png") if options.get("overlay") else (".json",)
    with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
        jobs = JobsClient(api, http, sleep)
        for path in tqdm(paths, unit="image", desc="submit"):
            video = is_video(path)
            try:
                # before the upload: a refusal costs nothing
                targets = plan.targets(path, (".jsonl", OVERLAY_SUFFIX) if video else suffixes)
                job = jobs.create(path, options)
                jobs.upload(job, path)
                state = jobs.wait(job, timeout_s)
                if video:  # a distributed run (docs/video.md): its JSON Lines and overlay video
                    written, objects = jobs.save_video(state, path, targets)
                    report.written += written
                    report.objects += objects
                    report.succeeded += 1
                    continue
                report.written += jobs.save(state, path, targets)
            except (JobFailed, OutputRefused) as exc:
                report.failed[path] = str(exc)  # <code>: <message>
                continue
            except (OSError, httpx.HTTPError) as exc:
                report.failed[path] = f"{type(exc).__name__}: {str(exc) or 'the request failed'}"
                continue
            report.succeeded += 1
            report.objects += len(state["result"]["class_names"])
    return report
