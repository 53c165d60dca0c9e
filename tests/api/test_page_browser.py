"""The upload page in headless Chromium (Debian's, driven by Playwright) against `python -m handler serve`."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import IMAGES, REPO
from playwright.sync_api import Browser, Page, expect, sync_playwright

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
POSTS: dict[Page, list[str]] = {}  # the URLs each page POSTed to


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(test_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m handler serve`` on a free loopback port, confidence 0 so the random model shows objects."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, "SEG_MODEL_PATH": str(test_model_path), "SEG_CONFIDENCE": "0", "SEG_DETECTION_SPEED": "rapid"}
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
        "request", lambda request: POSTS.setdefault(page, []).append(request.url) if request.method == "POST" else None
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


def assert_page_shows(page: Page, result: dict[str, Any]) -> None:
    expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    (posted,) = POSTS[page]  # one model run per click: the overlay comes inside the JSON
    assert "/segment?" in posted and "overlay=true" in posted and "masks=none" in posted
    expect(page.locator("#error")).to_be_hidden()
    overlay_size = page.eval_on_selector("#overlay", "img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert overlay_size == [True, result["image"]["width"], result["image"]["height"]]
    rows = page.locator("#objects tbody tr")
    expect(rows).to_have_count(len(result["class_names"]))
    for index, (name, score) in enumerate(zip(result["class_names"], result["scores"], strict=True)):
        expect(rows.nth(index).locator("td").nth(1)).to_have_text(name)
        expect(rows.nth(index).locator("td").nth(2)).to_have_text(f"{score}%")
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
