"""A distributed run put back together: the chunks' JSON lines in frame order with global track ids, and the
overlay video drawn from the decoded frames and those lines (the local command's drawing and writer).

Chunk k > 0 starts with the overlap frame (the last frame of chunk k - 1): ``ChunkLinker`` maps its local ids
onto the global ids already given to that frame, and the line itself is dropped (it was written once, by
chunk k - 1). Lines stream through: memory is one frame's and one line's, whatever the clip's length.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from handler.video.frames import Frame, read_frames
from handler.video.overlay import draw_frame
from handler.video.plan import Chunk
from handler.video.tracks import ChunkLinker
from handler.video.writer import OverlayWriter


class BrokenChunk(ValueError):
    """A chunk's lines do not fit the plan (no overlap frame, frames out of order): nothing is assembled."""


@dataclass
class Assembled:
    frames: int = 0
    objects: int = 0
    tracks: int = 0


def linked_lines(chunks: Iterable[tuple[Chunk, Iterable[dict[str, Any]]]]) -> Iterator[dict[str, Any]]:
    """Every processed frame's line once, in frame order, its ``track_ids`` global."""
    linker = ChunkLinker()
    previous: dict[str, Any] | None = None
    for chunk, lines in chunks:
        overlapping = chunk.read_from < chunk.start
        first = True
        for line in lines:
            if first:
                first = False
                if overlapping:
                    if previous is None or line["frame"] != previous["frame"] or line["frame"] != chunk.read_from:
                        raise BrokenChunk(f"chunk {chunk.index} does not start with frame {chunk.read_from}")
                    linker.start_chunk(previous["track_ids"], line["track_ids"])
                    continue
                linker.start_chunk(None, None)
            if previous is not None and line["frame"] <= previous["frame"]:
                raise BrokenChunk(f"chunk {chunk.index}: frame {line['frame']} after frame {previous['frame']}")
            line["track_ids"] = linker.map(line["track_ids"])
            previous = line
            yield line
        if first and chunk.stop is not None:
            raise BrokenChunk(f"chunk {chunk.index} (frames {chunk.start} to {chunk.stop}) has no lines")


def assemble(
    source: str | Path,
    chunks: Iterable[tuple[Chunk, Iterable[dict[str, Any]]]],
    fps: float,
    lines_out: IO[str],
    overlay_path: Path,
) -> Assembled:
    """Write the linked lines to ``lines_out`` and the overlay video to ``overlay_path`` (frames of ``source``,
    a path or a presigned URL, decoded once in order)."""
    done = Assembled()
    frames: Iterator[Frame] = read_frames(source)
    writer: OverlayWriter | None = None
    tracks: set[int] = set()
    try:
        for line in linked_lines(chunks):
            frame = _frame(frames, line["frame"])
            if writer is None:
                height, width = frame.rgb.shape[:2]
                writer = OverlayWriter(overlay_path, fps, width, height)
            writer.write(draw_frame(frame.rgb, line))
            lines_out.write(json.dumps(line) + "\n")
            done.frames += 1
            done.objects += len(line["track_ids"])
            tracks.update(line["track_ids"])
    finally:
        if writer is not None:
            writer.close()
    done.tracks = len(tracks)
    return done


def _frame(frames: Iterator[Frame], index: int) -> Frame:
    for frame in frames:
        if frame.index == index:
            return frame
        if frame.index > index:
            break
    raise BrokenChunk(f"frame {index} of the lines is not in the video")
