"""Bytes in, validated RGB uint8 ndarray out; everything a hostile upload can do is rejected here."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from handler.core.errors import CorruptImage, EmptyImage, ImageTooLarge, NotAnImage, TooManyPixels, UnsupportedImage

# HEIF/HEIC (iPhones' default) through pillow-heif's Pillow plugin, AVIF through Pillow's own. pillow-heif
# applies the HEIF container's rotation while decoding and resets the EXIF orientation to 1; for the other
# formats ``exif_transpose`` below does it.
pillow_heif.register_heif_opener()
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF", "AVIF"})
FORMAT_NAMES = "JPEG, PNG, WebP, BMP, TIFF, HEIC/HEIF, AVIF"

# The model scales the long side down to at most 333 px (rapid) and the short side with it: beyond this
# ratio the short side would round to 0 px and the resize fails. Real photos and panoramas stay far below.
MAX_ASPECT_RATIO = 100

# Our own pixel limit (checked from the header) replaces Pillow's global bomb guard.
Image.MAX_IMAGE_PIXELS = None


def decode(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decode an uploaded image to an (H, W, 3) uint8 RGB array, upright per its EXIF orientation."""
    if not data:
        raise EmptyImage("the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(SUPPORTED_FORMATS))
    except UnidentifiedImageError:
        raise NotAnImage(f"the data is not an image in a supported format ({FORMAT_NAMES})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptImage(f"the image header cannot be read: {exc}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the image header gives an empty size {width}x{height}")
    if width * height > max_pixels:
        raise TooManyPixels(f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise UnsupportedImage(
            f"the image is {width}x{height}: one side is more than {MAX_ASPECT_RATIO} times the other, "
            "too thin for the model"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise CorruptImage(f"the image data is truncated or corrupt: {exc}") from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _wide_grey_to_rgb(np.asarray(image))
    if image.mode != "RGB":
        image = image.convert("RGB")  # drops alpha, expands grey/palette, converts CMYK/YCbCr
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _wide_grey_to_rgb(grey: np.ndarray, band_pixels: int = 1 << 20) -> np.ndarray:
    """16/32-bit grey scaled to 8 bits rather than clipping everything above 255 to white: 0..65535 to 0..255
    when any value passes 255. Integer arithmetic a band of rows at a time, so no wide copy of the whole image
    is ever made (a float64 one would be 8 bytes a pixel)."""
    divisor = 65535 if grey.size and int(grey.max()) > 255 else 255
    rgb = np.empty((*grey.shape, 3), np.uint8)
    rows = max(1, band_pixels // max(grey.shape[1], 1))
    for start in range(0, grey.shape[0], rows):
        band = np.clip(grey[start : start + rows].astype(np.int64), 0, divisor) * 255 // divisor
        rgb[start : start + rows] = band[:, :, None]
    return rgb
