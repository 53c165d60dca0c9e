"""A frame's line is the image result of that frame saved as PNG (same engine path), plus its frame index,
container time and track ids; with the dense test model (100 objects) too."""

from __future__ import annotations

import cv2
import pytest
from video_clips import panned_photo, write_clip

from handler.engine import RequestOptions, segment_bytes
from handler.video import Tracker, frame_line, read_frames, segment_frame

PER_RUN = ("timings_ms",)  # how long it took: the one field that differs between two runs of one image


def image_result(png: bytes, segmenter, settings, options: RequestOptions) -> dict:
    result = segment_bytes(png, segmenter, settings, options, detection_speed="rapid").result.to_json()
    return {key: value for key, value in result.items() if key not in PER_RUN}


def line_fields(line: dict) -> dict:
    return {key: value for key, value in line.items() if key not in (*PER_RUN, "frame", "time_ms", "track_ids")}


@pytest.mark.parametrize("model", ["segmenter", "dense_segmenter"])
def test_a_frames_line_is_the_image_result_of_the_frame_as_png(tmp_path, request, settings, model):
    segmenter = request.getfixturevalue(model)
    # Random weights score almost everything near 0 or 1: a confidence of 0 keeps a few objects.
    options = RequestOptions(confidence=0.0)
    clip = write_clip(tmp_path / "clip.avi", panned_photo(3, 160, 120), fps=12.0)
    frame = next(iter(read_frames(clip, start=2)))
    result = segment_frame(frame.rgb, segmenter, options, "rapid")
    tracks = Tracker().update(result.masks or [], result.class_ids.tolist())
    line = frame_line(frame.index, frame.time_ms, result, tracks)
    assert (line["frame"], line["time_ms"]) == (2, pytest.approx(2000 / 12, abs=0.01))
    assert line["track_ids"] == list(range(1, len(result) + 1))
    ok, png = cv2.imencode(".png", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    assert ok
    expected = image_result(png.tobytes(), segmenter, settings, options)
    assert line_fields(line) == expected
    assert len(expected["masks"]) == len(expected["boxes"]) > 0
    if model == "dense_segmenter":
        assert len(expected["boxes"]) == 100


def test_a_still_scene_keeps_every_track(tmp_path, dense_segmenter):
    options = RequestOptions(confidence=0.05)
    clip = write_clip(tmp_path / "still.avi", panned_photo(1, 96, 64) * 2)
    tracker = Tracker()
    ids = [
        tracker.update(result.masks, result.class_ids.tolist())
        for result in (segment_frame(frame.rgb, dense_segmenter, options, "rapid") for frame in read_frames(clip))
    ]
    assert ids[0] == ids[1] == list(range(1, 101))


def test_a_line_needs_one_track_id_per_object(segmenter):
    result = segment_frame(panned_photo(1, 64, 48)[0], segmenter, RequestOptions(confidence=0.05))
    with pytest.raises(ValueError, match="track ids"):
        frame_line(0, 0.0, result, [*range(len(result)), 99])
