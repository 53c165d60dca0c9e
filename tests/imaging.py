"""Image bytes made in tests: every format and every kind of broken input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2), "RGB")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny (invalid for that size) data chunk."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def with_exif_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif, quality=95)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_16bit_rgb(width: int = 64, height: int = 48) -> bytes:
    """A 48-bit (16 bits per channel) RGB PNG, which Pillow cannot write itself."""
    x = np.linspace(0, 65535, width, dtype=np.uint16)[None, :].repeat(height, 0)
    pixels = np.stack([x, x[::-1], np.full_like(x, 30000)], axis=2).astype(">u2")
    rows = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def png_16bit_grey(width: int = 64, height: int = 48) -> bytes:
    ramp = np.linspace(0, 65535, width * height).reshape(height, width).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


def animated(fmt: str, frames: int = 3, size: int = 32) -> bytes:
    """An animated GIF, PNG (APNG) or WebP whose frames differ."""
    images = [gradient(size, size).rotate(90 * n) for n in range(frames)]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=100, loop=0)


def jpeg_with_huge_exif(image: Image.Image, payload_bytes: int = 60_000, orientation: int = 6) -> bytes:
    """A JPEG whose EXIF block is nearly the 64 KB an APP1 segment can hold, with an orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010E] = "x" * payload_bytes  # ImageDescription
    return encode(image, "JPEG", exif=exif.tobytes())


def jpeg_with_corrupt_exif(image: Image.Image) -> bytes:
    """A JPEG whose EXIF block starts as a TIFF header and continues as garbage."""
    return encode(image, "JPEG", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + b"\xff" * 4000)


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "hostile-boundary-1234") -> tuple[bytes, str]:
    """A multipart/form-data body, built by hand so that it can be anything: (body, Content-Type).

    Each part is (field name, filename or None for a text field, data).
    """
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
