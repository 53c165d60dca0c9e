"""Probe and frame reading on each kind of clip, and the refusals: truncated, corrupt, zero frames, unknown
codec, over each limit (the message names the setting)."""

from __future__ import annotations

import numpy as np
import pytest
from video_clips import H264, HEVC_ROTATED, TRUNCATED, VFR, panned_photo, write_clip

from handler.core.errors import CorruptVideo, EmptyVideo, FrameSizeChanged, UnsupportedVideo, VideoTooLarge
from handler.core.settings import Settings
from handler.video import probe, read_frames
from handler.video.frames import Sampling


def test_h264_mp4():
    info = probe(H264)
    assert (info.frames, info.fps, info.width, info.height, info.rotation) == (30, 30.0, 480, 270, 0)
    assert info.codec == "h264" and info.duration_s == pytest.approx(1.0) and info.size_bytes == H264.stat().st_size
    frames = list(read_frames(H264))
    assert [frame.index for frame in frames] == list(range(30))
    assert [round(frame.time_ms, 1) for frame in frames[:3]] == [0.0, 33.3, 66.7]
    assert frames[0].rgb.shape == (270, 480, 3) and frames[0].rgb.dtype == np.uint8


def test_rotated_hevc_mov_comes_out_upright():
    info = probe(HEVC_ROTATED)
    # Stored 480 wide and 320 high with a 90-degree display rotation: displayed 320 wide, 480 high.
    assert (info.width, info.height, info.frames, info.codec) == (320, 480, 10, "hevc")
    assert info.rotation in (90, 270)
    shapes = {frame.rgb.shape for frame in read_frames(HEVC_ROTATED)}
    assert shapes == {(480, 320, 3)}


def test_variable_frame_rate_times_come_from_the_container():
    times = [frame.time_ms for frame in read_frames(VFR)]
    assert len(times) == 20
    steps = np.round(np.diff(times), 1)
    assert set(steps[:9]) == {33.3}, steps  # the first ten frames 1/30 s apart
    assert set(steps[10:]) == {66.7}, steps  # then 1/15 s: not frame / fps
    assert probe(VFR).frames == 20


def test_range_and_sampling_give_exact_indices():
    frames = list(read_frames(VFR, start=5, stop=17, every=4))
    assert [frame.index for frame in frames] == [5, 9, 13]
    every = {frame.index: frame.time_ms for frame in read_frames(VFR)}
    assert [frame.time_ms for frame in frames] == [every[5], every[9], every[13]]
    assert np.array_equal(frames[1].rgb, next(iter(read_frames(VFR, start=9, stop=10))).rgb)
    assert list(Sampling.from_options(30.0, fps=10).indices(10)) == [0, 3, 6, 9]
    assert list(Sampling(every=2, max_frames=3).indices(30)) == [0, 2, 4]
    assert Sampling(every=3).output_fps(30.0) == 10.0


def test_truncated_mp4_is_refused():
    with pytest.raises(CorruptVideo, match="truncated"):
        probe(TRUNCATED)


def test_corrupt_and_empty_files_are_refused(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptVideo) as refused:
        probe(junk)
    assert refused.value.code == "corrupt_video" and refused.value.status == 422
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(CorruptVideo):
        probe(empty)


def test_zero_frame_video_is_refused(tmp_path):
    import cv2

    path = tmp_path / "none.avi"
    cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)).release()
    assert path.stat().st_size > 0  # a real container, with no frame in it
    with pytest.raises(EmptyVideo, match="no video frames"):
        probe(path)


def test_unknown_codec_is_refused(tmp_path):
    clip = write_clip(tmp_path / "a.avi", panned_photo(3, 64, 48))
    unknown = tmp_path / "unknown.avi"
    unknown.write_bytes(clip.read_bytes().replace(b"MJPG", b"QQQQ"))  # the codec tag of the stream
    with pytest.raises(UnsupportedVideo, match="QQQQ") as refused:
        probe(unknown)
    assert refused.value.status == 415


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("SEG_VIDEO_MAX_BYTES", {"video_max_bytes": 30_000}),
        ("SEG_VIDEO_MAX_FRAMES", {"video_max_frames": 29}),
        ("SEG_VIDEO_MAX_SECONDS", {"video_max_seconds": 0.5}),
        ("SEG_VIDEO_MAX_PIXELS", {"video_max_pixels": 480 * 270 - 1}),
    ],
)
def test_over_a_limit_is_refused_naming_the_setting(setting, value):
    with pytest.raises(VideoTooLarge, match=setting) as refused:
        probe(H264, Settings(**value))
    assert refused.value.status == 413
    probe(H264, Settings(**{name: limit * 2 for name, limit in value.items()}))  # twice the limit: accepted


def test_video_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SEG_VIDEO_MAX_FRAMES", "12")
    monkeypatch.setenv("SEG_VIDEO_CHUNK_FRAMES", "50")
    settings = Settings()
    assert settings.video_max_frames == 12 and settings.video_chunk_frames == 50
    assert settings.video_max_bytes == 2 * 1024**3


def test_a_frame_of_another_size_is_refused():
    from handler.video.frames import _checked_size  # the check read_frames makes on every decoded frame

    size = _checked_size(None, (48, 64, 3), 0)
    assert _checked_size(size, (48, 64, 3), 1) == size
    with pytest.raises(FrameSizeChanged, match="frame 2 is 96x64, the first was 64x48") as refused:
        _checked_size(size, (64, 96, 3), 2)
    assert refused.value.code == "frame_size_changed"
