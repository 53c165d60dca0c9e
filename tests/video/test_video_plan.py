"""The chunk plan of a distributed run: frame ranges with a one-frame overlap, lengths from the measured pace."""

from __future__ import annotations

import json

import pytest

from handler.core import measured
from handler.video.plan import Chunk, chunk_length, frames_within, plan_chunks, seconds_per_frame


def test_chunks_cover_every_frame_once_and_overlap_by_one():
    chunks = plan_chunks(10, 4)
    assert [(c.start, c.stop, c.read_from) for c in chunks] == [(0, 4, 0), (4, 8, 3), (8, None, 7)]
    covered = [i for c in chunks for i in range(c.start, 10 if c.stop is None else c.stop)]
    assert covered == list(range(10))
    assert [Chunk.from_json(json.loads(json.dumps(c.to_json()))) for c in chunks] == chunks


def test_one_chunk_when_the_clip_is_short():
    assert plan_chunks(3, 300) == [Chunk(0, 0, None, 0)]


@pytest.mark.parametrize(("frames", "length"), [(0, 4), (4, 0)])
def test_nothing_to_plan_is_refused(frames, length):
    with pytest.raises(ValueError):
        plan_chunks(frames, length)


def test_a_chunk_fits_a_third_of_the_timeout_with_its_overlap_frame():
    assert frames_within(300, 2.0, 300) == 49  # 100 s at 2 s a frame, one of them the overlap
    assert frames_within(300, 0.01, 300) == 300  # the cap
    assert frames_within(300, 500.0, 300) == 1  # never none
    assert frames_within(300, None, 120) == 120  # nothing measured: the cap


def test_the_pace_comes_from_the_nearest_measured_size_at_or_above(monkeypatch):
    table = {"seconds_per_frame": {"normal": {"640x360": 1.0, "1280x720": 3.0}, "rapid": {"640x360": 0.5}}}
    monkeypatch.setattr(measured, "_all", lambda: {"video": table})
    assert seconds_per_frame(320, 240, "normal") == 1.0
    assert seconds_per_frame(960, 540, "normal") == 3.0
    assert seconds_per_frame(2560, 1440, "normal") == pytest.approx(12.0)  # the largest, scaled by pixels
    assert seconds_per_frame(640, 360, "fast") == 1.0  # unmeasured speed: normal's
    assert chunk_length(1280, 720, "normal", 300, 300) == 32


def test_no_video_section_means_the_cap(monkeypatch):
    monkeypatch.setattr(measured, "_all", lambda: {})
    assert seconds_per_frame(640, 360, "normal") is None
    assert chunk_length(640, 360, "normal", 300, 77) == 77
