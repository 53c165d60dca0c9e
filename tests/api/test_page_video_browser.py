"""The upload page with a video, in headless Chromium against `python -m handler serve`: the clip goes up as a
job, the distributed run (moto's Step Functions executor, ``tests/video_cloud.py``) segments it, the page
shows the progress in frames and plays the overlay in its <video> element, as long as the clip."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect
from test_page_browser import browser, free_port, serve  # noqa: F401 (browser: the fixture)
from video_cloud import BUCKET, CLIP_FPS, FRAMES, make_clip, running_cloud

pytestmark = [pytest.mark.browser, pytest.mark.slow]

UPLOAD_WAIT_S = 120
RESULT_TIMEOUT_MS = 120_000

PLAY = """async () => {
    const video = document.getElementById("video");
    const loaded = (done) => video.addEventListener("loadedmetadata", done, { once: true });
    if (video.readyState < 1) await new Promise(loaded);
    const ended = new Promise((done) => video.addEventListener("ended", done, { once: true }));
    await video.play();
    await ended;
    return [video.duration, video.currentTime, video.videoWidth, video.videoHeight];
}"""


def test_a_video_job_shows_progress_and_plays_its_overlay(
    browser: Browser,  # noqa: F811
    lambda_handler: Any,
    test_model_path: Path,
    tmp_path: Path,
) -> None:
    with running_cloud(lambda_handler, tmp_path / "moto-sfn.log") as cloud:
        cloud.new_machine("video-page")
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        rule = {"AllowedOrigins": [origin], "AllowedMethods": ["POST", "GET"], "AllowedHeaders": ["*"]}
        cloud.s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [rule]})
        settings = {"SEG_JOBS_BUCKET": BUCKET, "SEG_CONFIDENCE": "0.3"}
        with serve(test_model_path, tmp_path / "serve.log", port, **settings) as url:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url)
            expect(page.locator("#confidence-value")).to_have_text("30%")  # /healthz's defaults are in
            page.evaluate(
                """() => {
                    window.statuses = [];
                    const status = document.getElementById("status");
                    new MutationObserver(() => window.statuses.push(status.textContent))
                        .observe(status, { childList: true, characterData: true, subtree: true });
                }"""
            )
            page.set_input_files("#file", make_clip(tmp_path / "clip.mp4"))
            page.click("#submit")

            deadline = time.monotonic() + UPLOAD_WAIT_S
            uploaded: list[dict[str, Any]] = []
            while not uploaded and time.monotonic() < deadline:
                uploaded = cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/jobs/").get("Contents", [])
                time.sleep(0.2)
            assert uploaded, f"nothing was uploaded in {UPLOAD_WAIT_S} s"
            started = cloud.notify(uploaded[0]["Key"])  # the S3 trigger, in this process
            assert started["outcome"] == "video_started", started
            assert cloud.wait(started["outputs"][0])["status"] == "SUCCEEDED"

            expect(page.locator("#video-result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
            duration, position, width, height = page.evaluate(PLAY)
            assert abs(duration - FRAMES / CLIP_FPS) <= 1 / CLIP_FPS, duration
            assert position > 0 and (width, height) == (160, 120)
            statuses = page.evaluate("window.statuses")
            assert any(f"of {FRAMES} frames" in text for text in statuses), statuses
            expect(page.locator("#error")).to_be_hidden()
            assert problems == []  # a CSP violation (media-src) or a CORS failure would be a console error
