"""The upload page in headless Chromium (Debian's, driven by Playwright) against `python -m handler serve`:
small files in one JSON request, a file over 6 MB through the jobs flow against moto server."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import numpy as np
import pytest
from conftest import IMAGES, REPO, FakeLambdaContext, read_event
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from handler.core import storage

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHOTO = IMAGES / "astronaut.jpg"
SERVER_START_S = 180
RESULT_TIMEOUT_MS = 120_000
POSTS: dict[Page, list[tuple[str, str]]] = {}  # (URL, Content-Type) of each POST a page made
GETS: dict[Page, list[str]] = {}  # the URL of every other request a page made
JOBS_MAX_IMAGE_BYTES = 20 * 1024 * 1024
UPLOAD_WAIT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(test_model_path: Path, log_path: Path, port: int, **settings: str) -> Iterator[str]:
    """``python -m handler serve`` on a loopback ``port``, confidence 0 so the random model shows objects."""
    env = {
        **os.environ,
        "SEG_MODEL_PATH": str(test_model_path),
        "SEG_CONFIDENCE": "0",
        "SEG_DETECTION_SPEED": "rapid",
        **settings,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "handler", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the server did not answer /healthz in {SERVER_START_S} s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(test_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(test_model_path, tmp_path_factory.mktemp("server") / "serve.log", free_port()) as url:
        yield url


@pytest.fixture(scope="module")
def jobs_server(
    test_model_path: Path, tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str
) -> Iterator[tuple[str, str]]:
    """The server with jobs in a moto bucket whose CORS rule lets the page's origin POST to it."""
    bucket = "pointrend-page-jobs"
    port = free_port()
    s3 = storage.s3_client()
    s3.create_bucket(Bucket=bucket)
    origin = f"http://127.0.0.1:{port}"
    rule = {
        "AllowedOrigins": [origin],
        "AllowedMethods": ["POST", "GET"],  # as template.yaml's: GET for a result_url
        "AllowedHeaders": ["*"],
        "MaxAgeSeconds": 600,
    }
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    log_path = tmp_path_factory.mktemp("jobs-server") / "serve.log"
    # No result inlined: the page must follow result_url (small results are inlined; tests/api covers those).
    settings = {
        "SEG_JOBS_BUCKET": bucket,
        "SEG_MAX_IMAGE_BYTES": str(JOBS_MAX_IMAGE_BYTES),
        "SEG_INLINE_RESULT_BYTES": "0",
    }
    with serve(test_model_path, log_path, port, **settings) as url:
        yield url, bucket


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, or apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser: Browser, server: str, width: int, height: int) -> tuple[Page, list[str]]:
    """The page, loaded, with its server defaults applied; the list collects console and page errors."""
    page = browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "request",
        lambda request: POSTS.setdefault(page, []).append((request.url, request.headers.get("content-type", "")))
        if request.method == "POST"
        else GETS.setdefault(page, []).append(request.url),
    )
    page.goto(server)
    expect(page.locator("#confidence-value")).to_have_text("0%")  # from /healthz: SEG_CONFIDENCE=0
    return page, problems


def api_result(server: str) -> dict[str, Any]:
    """What the API itself says about the photo, for comparison with what the page shows."""
    response = httpx.post(
        f"{server}/segment",
        params={"confidence": 0, "masks": "none"},
        files={"image": (PHOTO.name, PHOTO.read_bytes(), "image/jpeg")},
        timeout=120,
    )
    response.raise_for_status()
    return response.json()


def assert_page_shows(page: Page, result: dict[str, Any], also: str = "") -> None:
    expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    ((posted, content_type),) = POSTS[page]  # one model run per click: the overlay comes inside the JSON
    assert "/segment?" in posted and "overlay=true" in posted and "masks=none" in posted and also in posted
    assert content_type == "application/json"  # {"image_base64"}: what `sam local start-api` passes through
    expect(page.locator("#error")).to_be_hidden()
    overlay_size = page.eval_on_selector("#overlay", "img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert overlay_size == [True, result["image"]["width"], result["image"]["height"]]
    rows = page.locator("#objects tbody tr")
    expect(rows).to_have_count(len(result["class_names"]))
    for index, (name, score) in enumerate(zip(result["class_names"], result["scores"], strict=True)):
        expect(rows.nth(index).locator("td").nth(1)).to_have_text(name)
        shown = rows.nth(index).locator("td").nth(2).inner_text()  # the 0-1 float as a percentage, one decimal
        assert shown.endswith("%") and float(shown[:-1]) == pytest.approx(score * 100, abs=0.051), (shown, score)
    counts = page.locator("#counts li").all_inner_texts()
    assert counts == [f"{name}: {count}" for name, count in result["object_counts"].items()]


def test_upload_shows_the_overlay_and_the_objects(browser: Browser, server: str, tmp_path: Path) -> None:
    result = api_result(server)
    assert result["class_names"], "at confidence 0 the test model finds objects"
    page, problems = open_page(browser, server, 1280, 900)
    page.set_input_files("#file", PHOTO)
    page.click("#submit")
    assert_page_shows(page, result)
    page.screenshot(path=tmp_path / "page.png", full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 0
    assert problems == []


def test_cut_outs_show_as_a_gallery_each_downloadable(browser: Browser, server: str, tmp_path: Path) -> None:
    answer = httpx.post(
        f"{server}/segment",
        params={"confidence": 0, "masks": "none", "format": "cutouts", "overlay": "true"},
        files={"image": (PHOTO.name, PHOTO.read_bytes(), "image/jpeg")},
        timeout=120,
    )
    answer.raise_for_status()
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        pictures = {name: archive.read(name) for name in archive.namelist() if name.endswith(".png")}
        result = json.loads(archive.read("result.json"))
    assert pictures, "at confidence 0 the test model finds objects"
    page, problems = open_page(browser, server, 1280, 900)
    page.set_input_files("#file", PHOTO)
    page.check("#cutouts")
    page.click("#submit")
    assert_page_shows(page, result, "format=cutouts")
    items = page.locator("#gallery li")
    expect(items).to_have_count(len(pictures))
    expect(page.locator("#cutouts-count")).to_contain_text(f"{len(pictures)} object")
    for index, (name, png) in enumerate(pictures.items()):
        item = items.nth(index)
        expect(item.locator("figcaption")).to_have_text(name)
        loaded = item.locator("img").evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
        assert loaded == list(Image.open(io.BytesIO(png)).size)
        with page.expect_download() as download:
            item.locator("a").click()
        assert download.value.suggested_filename == name
        assert Path(download.value.path()).read_bytes() == png
    with page.expect_download() as everything:
        page.click("#cutouts-zip")
    assert everything.value.suggested_filename == "cutouts.zip"
    with zipfile.ZipFile(everything.value.path()) as archive:
        assert [name for name in archive.namelist() if name.endswith(".png")] == list(pictures)
    page.screenshot(path=tmp_path / "gallery.png", full_page=True)
    # Unticked, the next answer is plain JSON and the gallery goes away.
    page.uncheck("#cutouts")
    POSTS[page].clear()
    page.click("#submit")
    expect(page.locator("#cutouts-section")).to_be_hidden(timeout=RESULT_TIMEOUT_MS)
    assert problems == []


def test_an_error_shows_the_message_from_the_server(browser: Browser, server: str, tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("shopping list, not a photo")
    page, _ = open_page(browser, server, 1280, 900)
    page.set_input_files("#file", not_an_image)
    page.click("#submit")
    error = page.locator("#error")
    expect(error).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    expect(error).to_contain_text("not an image")
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#submit")).to_be_enabled()
    page.screenshot(path=tmp_path / "error.png")


def test_phone_width_with_a_dropped_file(browser: Browser, server: str, tmp_path: Path) -> None:
    result = api_result(server)
    page, problems = open_page(browser, server, 390, 844)
    dropped = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "astronaut.jpg", { type: "image/jpeg" }));
            return transfer;
        }""",
        base64.b64encode(PHOTO.read_bytes()).decode(),
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    expect(page.locator("#submit")).to_be_enabled()
    page.click("#submit")
    assert_page_shows(page, result)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    button = page.locator("#submit").bounding_box()
    assert button is not None and button["x"] >= 0 and button["x"] + button["width"] <= 390
    page.screenshot(path=tmp_path / "phone.png", full_page=True)
    assert problems == []


def noise_png(path: Path, width: int, height: int) -> Path:
    """Random pixels do not compress: 3 bytes a pixel, so a PNG of a chosen size."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, compress_level=1)
    return path


def wait_for_upload(s3: Any, bucket: str) -> str:
    deadline = time.monotonic() + UPLOAD_WAIT_S
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="uploads/jobs/").get("Contents", [])
        if listed:
            return listed[0]["Key"]
        time.sleep(0.2)
    pytest.fail(f"nothing was uploaded to s3://{bucket}/uploads/jobs/ in {UPLOAD_WAIT_S} s")


def test_a_file_over_6_mb_goes_through_the_jobs_flow(
    browser: Browser,
    jobs_server: tuple[str, str],
    lambda_handler: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url, bucket = jobs_server
    big = noise_png(tmp_path / "big.png", 1600, 1400)
    assert big.stat().st_size > 6 * 1024 * 1024
    csp = httpx.get(url).headers["content-security-policy"]
    moto_origin = storage.bucket_origin(bucket)
    assert f"connect-src 'self' {moto_origin};" in csp and f"img-src 'self' blob: {moto_origin};" in csp
    page, problems = open_page(browser, url, 1280, 900)
    page.evaluate(
        """() => {
            window.progressSeen = [];
            const bar = document.getElementById("progress");
            new MutationObserver(() => window.progressSeen.push([bar.hidden, Number(bar.value)]))
                .observe(bar, { attributes: true });
        }"""
    )
    page.set_input_files("#file", big)
    page.check("#cutouts")
    # A phone's uplink rather than loopback, so that the upload reports progress on its way.
    throttle = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 8 * 1024 * 1024}
    page.context.new_cdp_session(page).send("Network.emulateNetworkConditions", throttle)
    page.click("#submit")

    s3 = storage.s3_client()
    key = wait_for_upload(s3, bucket)
    expect(page.locator("#status")).to_contain_text("Segmenting")  # polling: uploaded, not yet processed
    # The S3 trigger, in this process: its settings take images as large as the server's uploads.
    larger = settings.model_copy(update={"max_image_bytes": JOBS_MAX_IMAGE_BYTES})
    monkeypatch.setattr("handler.s3.events.get_settings", lambda: larger)
    event = read_event("s3-post-job.json", **{"pointrend-uploads-example": bucket})
    event["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="/")
    (processed,) = lambda_handler(event, FakeLambdaContext())["objects"]
    assert processed["outcome"] == "segmented", processed

    expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#error")).to_be_hidden()
    result = json.loads(s3.get_object(Bucket=bucket, Key=processed["outputs"][0])["Body"].read())
    expect(page.locator("#objects tbody tr")).to_have_count(len(result["class_names"]))
    overlay = page.eval_on_selector("#overlay", "img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert overlay == [True, 1600, 1400]
    # The cut-outs, shown from their presigned S3 URLs (allowed by the page's img-src).
    assert result["cutouts"]["names"]
    expect(page.locator("#gallery figcaption")).to_have_text(result["cutouts"]["names"])
    sizes = page.eval_on_selector_all("#gallery img", "imgs => Promise.all(imgs.map((img) => img.decode()))")
    assert len(sizes) == len(result["cutouts"]["names"])
    expect(page.locator("#cutouts-zip")).to_be_hidden()
    assert any(address.startswith(moto_origin) and ".json?" in address for address in GETS[page]), GETS[page]
    posted = [address for address, _ in POSTS[page]]
    assert posted[0] == f"{url}/jobs" and posted[1].startswith(moto_origin) and len(posted) == 2
    progress = page.evaluate("window.progressSeen")
    assert [False, 1.0] in progress and any(0 < value < 1 for _, value in progress), progress
    assert progress[-1][0] is True  # hidden again once the upload is done
    assert problems == []  # CSP violations and CORS failures would be console errors


def test_the_job_poller_retries_429_and_503_honouring_retry_after_and_says_so(browser: Browser, server: str) -> None:
    page, problems = open_page(browser, server, 1280, 900)
    job_id = "f" * 32
    answers = [
        (429, {"Retry-After": "1"}, '{"message": "Too Many Requests"}'),
        (503, {"Retry-After": "2"}, '{"error": {"code": "storage_unavailable", "message": "retry"}}'),
        (200, {}, json.dumps({"job_id": job_id, "status": "processing"})),
        (502, {}, '{"message": "Internal Server Error"}'),  # no Retry-After: the backoff's own wait
        (200, {}, json.dumps({"job_id": job_id, "status": "done", "result": {"class_names": []}})),
    ]
    asked: list[str] = []

    def answer(route: Any) -> None:
        asked.append(route.request.url)
        status, headers, body = answers[len(asked) - 1]
        route.fulfill(status=status, headers={"Content-Type": "application/json", **headers}, body=body)

    page.route(f"{server}/jobs/{job_id}", answer)
    outcome = page.evaluate(
        """async (jobId) => {
            const { waitForJob } = await import("/static/jobs.js");
            const statuses = [], waits = [];
            const state = await waitForJob({ job_id: jobId }, (s) => statuses.push(s), (m) => waits.push(m));
            return { state, statuses, waits };
        }""",
        job_id,
    )
    assert outcome["state"]["status"] == "done" and len(asked) == len(answers)
    assert outcome["statuses"] == ["processing"]
    waits = outcome["waits"]
    assert waits[0] == "The server is busy (429); retrying in 1 s (1 of 6)…"
    assert waits[1] == "The server is busy (503); retrying in 2 s (2 of 6)…"
    assert waits[2].startswith("The server is busy (502); retrying in") and len(waits) == 3
    assert all("status of 5" in p or "status of 429" in p for p in problems), problems  # the answers above only


def test_retry_delays_double_to_a_cap_and_follow_retry_after(browser: Browser, server: str) -> None:
    page, _ = open_page(browser, server, 800, 600)
    delays = page.evaluate(
        """async () => {
            const { retryDelayMs } = await import("/static/jobs.js");
            const bare = new Response(null, { status: 503 });
            const after = (value) => new Response(null, { status: 503, headers: { "Retry-After": value } });
            return {
                backoff: [0, 1, 2, 3, 4, 5, 6].map((attempt) => retryDelayMs(bare, attempt)),
                seconds: retryDelayMs(after("7"), 0),
                capped: retryDelayMs(after("600"), 0),
                date: retryDelayMs(after(new Date(Date.now() + 10000).toUTCString()), 0),
            };
        }"""
    )
    for delay, ceiling in zip(delays["backoff"], [1000, 2000, 4000, 8000, 16000, 30000, 30000], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert (delays["seconds"], delays["capped"]) == (7000, 30000)
    assert 8000 <= delays["date"] <= 10000
