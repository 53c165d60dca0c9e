"""A video's codec read from its container's header without decoding, for a clear error when OpenCV's FFmpeg
refuses a file: a recognised container naming a codec it cannot decode is an unknown codec, not a damaged file."""

from __future__ import annotations

import os
from pathlib import Path

WINDOW = 4 * 1024 * 1024  # the header is at the start (AVI, MP4 with faststart) or the end (MP4's moov)


def declared_codec(path: str | Path) -> str | None:
    """The video codec an AVI (``strh`` of ``vids``) or MP4/MOV (first ``stsd`` entry) declares; None when the
    file is no such container or its header cannot be found (a truncated MP4 has no ``moov``)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            head = file.read(WINDOW)
            file.seek(max(size - WINDOW, len(head)))
            tail = file.read(WINDOW)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        at = head.find(b"vids")
        return _text(head[at + 4 : at + 8]) if at >= 0 else None
    if head[4:8] == b"ftyp" or b"moov" in head[:64]:
        for data in (head, tail):
            at = data.find(b"stsd")
            if at >= 0 and len(data) >= at + 20:
                return _text(data[at + 16 : at + 20])
    return None


def _text(code: bytes) -> str | None:
    text = code.decode("ascii", "replace").strip("\x00 ")
    return text if text.isprintable() and text else None
