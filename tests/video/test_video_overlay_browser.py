"""The overlay video plays in Chromium: VP8 WebM as ``OverlayWriter`` writes it, frames drawn by ``draw_frame``
(colour by track), its duration and size those of the frames written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from video_clips import panned_photo

from handler.video import OverlayWriter, draw_frame, track_colour

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
PLAY = """() => new Promise((done) => {
  const video = document.getElementById('v');
  const go = () => { video.play(); setTimeout(() => done({duration: video.duration, width: video.videoWidth,
    height: video.videoHeight, time: video.currentTime, error: video.error && video.error.code}), 400); };
  video.onerror = () => done({error: video.error && video.error.code});
  if (video.readyState >= 2) go(); else video.onloadeddata = go;
})"""


def a_line(width: int, height: int, track: int) -> dict:
    grid = np.zeros((height, width), np.uint8, order="F")
    grid[20:60, 30:90] = 1
    rle = mask_utils.encode(grid)
    return {
        "boxes": [[30, 20, 90, 60]],
        "class_names": ["cup"],
        "track_ids": [track],
        "masks": [{"size": rle["size"], "counts": rle["counts"].decode("ascii")}],
    }


def test_draw_frame_colours_by_track_and_leaves_the_frame_alone():
    frame = panned_photo(1, 160, 120)[0]
    before = frame.copy()
    drawn = draw_frame(frame, a_line(160, 120, 7))
    assert np.array_equal(frame, before)  # the decoded frame is not drawn on
    assert not np.array_equal(drawn[40, 60], frame[40, 60])  # inside the mask: blended
    assert np.array_equal(drawn[100, 150], frame[100, 150])  # far outside: untouched
    assert tuple(drawn[20, 31]) == track_colour(7)  # the box's top edge, in the track's colour
    assert track_colour(7) == track_colour(7) != track_colour(8)


def test_the_overlay_plays_in_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, or apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    path = tmp_path / "clip.mp4.webm"
    with OverlayWriter(path, 20.0, 160, 120) as writer:
        for index, frame in enumerate(panned_photo(16, 160, 120)):
            writer.write(draw_frame(frame, a_line(160, 120, 1 + index // 8)))
    (tmp_path / "page.html").write_text(f'<video id="v" muted src="{path.name}"></video>')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto((tmp_path / "page.html").as_uri())
            played = page.evaluate(PLAY)
        finally:
            browser.close()
    assert played["error"] is None
    assert (played["width"], played["height"]) == (160, 120)
    assert played["duration"] == pytest.approx(16 / 20.0, abs=0.06)
    assert played["time"] > 0  # it played
