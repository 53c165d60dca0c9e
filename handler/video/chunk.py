"""One chunk of a distributed run: its frame range through the engine, one JSON line per frame.

Lines carry chunk-local track ids (a ``Tracker`` of the chunk's own); the chunk's first line is the overlap
frame when ``read_from < start`` (the assembler links the chunks through it and drops it). Lines are written
as they are made: a chunk's memory is one frame's, whatever its length.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO

from handler.core.settings import DetectionSpeed
from handler.engine import RequestOptions, Segmenter
from handler.video.frames import read_frames
from handler.video.lines import frame_line, segment_frame
from handler.video.plan import Chunk
from handler.video.tracks import Tracker


def run_chunk(
    source: str | Path,
    chunk: Chunk,
    segmenter: Segmenter,
    out: IO[str],
    options: RequestOptions = RequestOptions(),
    on_frame: Callable[[int], None] | None = None,
    detection_speed: DetectionSpeed | None = None,
) -> int:
    """Segment ``chunk``'s frames of ``source`` (a path or a presigned URL) into ``out`` as JSON lines; returns
    the lines written (the overlap frame included). ``on_frame(index)`` runs after each frame (deadline checks)."""
    tracker = Tracker()
    written = 0
    for frame in read_frames(source, chunk.read_from, chunk.stop):
        result = segment_frame(frame.rgb, segmenter, options, detection_speed)
        track_ids = tracker.update(result.masks or [], result.class_ids.tolist())  # as the local command's
        out.write(json.dumps(frame_line(frame.index, frame.time_ms, result, track_ids)) + "\n")
        written += 1
        if on_frame is not None:
            on_frame(frame.index)
    return written
