"""``python -m handler segment`` on videos, end to end on clips made here: one line per frame, an overlay of
the same frame count, rate and size, sampling, never over a file; a frame's line is ``segment`` of it as PNG."""

from __future__ import annotations

import json

import cv2
import pytest
from video_clips import HEVC_ROTATED, TRUNCATED, panned_photo, write_clip

from handler.cli import main
from handler.video import read_frames

PER_RUN = ("timings_ms",)


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def overlay_shape(path) -> tuple[int, float, int, int]:
    """Frames decoded, frame rate, width, height of a written overlay."""
    capture = cv2.VideoCapture(str(path))
    fps, width, height = (
        capture.get(prop) for prop in (cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)
    )
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count, round(fps, 3), int(width), int(height)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Five frames, 160 x 120 at 25 fps, in MP4 (MPEG-4 Part 2: what OpenCV writes to MP4 here)."""
    folder = tmp_path_factory.mktemp("clips")
    return write_clip(folder / "clip.mp4", panned_photo(5, 160, 120), fps=25.0, fourcc="mp4v")


def test_segment_a_clip_end_to_end(tmp_path, clip, segmenter, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(clip), "--out", str(out), "--confidence", "0"]) == 0
    assert "1 segmented" in capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == ["clip.mp4.jsonl", "clip.mp4.webm"]  # nothing partial
    lines = read_lines(out / "clip.mp4.jsonl")
    assert [line["frame"] for line in lines] == [0, 1, 2, 3, 4]
    assert [line["time_ms"] for line in lines] == [0.0, 40.0, 80.0, 120.0, 160.0]
    assert all(len(line["track_ids"]) == len(line["boxes"]) == len(line["masks"]) for line in lines)
    assert sum(len(line["boxes"]) for line in lines) > 0
    assert all(line["image"] == {"width": 160, "height": 120} for line in lines)
    assert overlay_shape(out / "clip.mp4.webm") == (5, 25.0, 160, 120)

    # A frame's line is `segment` of that frame (decoded by OpenCV) saved as PNG.
    frame = list(read_frames(clip))[3]
    png = tmp_path / "frame3.png"
    cv2.imwrite(str(png), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    assert main(["segment", str(png), "--out", str(tmp_path / "png"), "--format", "json", "--confidence", "0"]) == 0
    image = json.loads((tmp_path / "png" / "frame3.png.json").read_text())
    line = lines[3]
    assert {k: v for k, v in line.items() if k not in (*PER_RUN, "frame", "time_ms", "track_ids")} == {
        k: v for k, v in image.items() if k not in (*PER_RUN, "source")
    }

    # Never overwrites: a second run fails for that clip and leaves both files as they were.
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert main(["segment", str(clip), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().out
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize(
    ("flags", "frames", "fps"),
    [
        (["--every", "2"], [0, 2, 4], 12.5),
        (["--fps", "8"], [0, 3], 25 / 3),  # every round(25 / 8) = 3rd frame
        (["--max-frames", "2"], [0, 1], 25.0),
        (["--every", "2", "--max-frames", "2"], [0, 2], 12.5),
    ],
)
def test_sampling_flags(tmp_path, clip, segmenter, flags, frames, fps):
    out = tmp_path / "out"
    assert main(["segment", str(clip), "--out", str(out), "--confidence", "0.99", *flags]) == 0
    assert [line["frame"] for line in read_lines(out / "clip.mp4.jsonl")] == frames
    # The overlay holds the processed frames only, at the source's rate over `every`: the clip's duration.
    assert overlay_shape(out / "clip.mp4.webm") == (len(frames), round(fps, 3), 160, 120)


def test_every_and_fps_together_are_refused(tmp_path, clip):
    with pytest.raises(SystemExit):
        main(["segment", str(clip), "--every", "2", "--fps", "5"])


def test_a_rotated_phone_clip_comes_out_upright(tmp_path, segmenter):
    out = tmp_path / "out"
    assert main(["segment", str(HEVC_ROTATED), "--out", str(out), "--max-frames", "2", "--confidence", "0.99"]) == 0
    lines = read_lines(out / f"{HEVC_ROTATED.name}.jsonl")
    assert [line["image"] for line in lines] == [{"width": 320, "height": 480}] * 2
    assert overlay_shape(out / f"{HEVC_ROTATED.name}.webm") == (2, 25.0, 320, 480)


def test_a_bad_clip_fails_alone_with_a_clear_reason(tmp_path, clip, segmenter, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(TRUNCATED), str(clip), "--out", str(out), "--max-frames", "1", "--confidence", "0.99"])
    summary = capsys.readouterr().out
    assert code == 1
    assert "1 segmented" in summary and "1 failed" in summary
    assert f"FAILED {TRUNCATED}" in summary and "truncated" in summary
    assert sorted(path.name for path in out.rglob("*") if path.is_file()) == ["clip.mp4.jsonl", "clip.mp4.webm"]
