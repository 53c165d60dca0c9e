import io

import numpy as np
import pytest
from imaging import encode, gradient, png_header_only, with_exif_orientation
from PIL import Image, ImageFile

from handler.core import errors
from handler.engine import images

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 10_000_000}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF", "AVIF"])
def test_each_supported_format_decodes_to_rgb_uint8(fmt):
    rgb = images.decode(encode(gradient(64, 48), fmt), **LIMITS)
    assert rgb.shape == (48, 64, 3)
    assert rgb.dtype == np.uint8
    if fmt in ("PNG", "BMP", "TIFF"):  # lossless formats come back exactly
        assert np.array_equal(rgb, np.asarray(gradient(64, 48)))


def test_format_is_sniffed_from_the_bytes_not_a_name():
    # PNG bytes are decoded as PNG whatever the caller calls them; nothing here takes a name.
    assert images.decode(encode(gradient(), "PNG"), **LIMITS).shape == (48, 64, 3)


def test_exif_orientation_is_applied():
    upright = gradient(64, 48)
    rotated = upright.transpose(Image.Transpose.ROTATE_90)  # 48 x 64 as stored
    # Orientation 6 = "rotate 90 CW to display": stored image rotated 90 CCW shows upright.
    rgb = images.decode(with_exif_orientation(rotated, 6), **LIMITS)
    assert rgb.shape == (48, 64, 3)
    assert np.abs(rgb.astype(int) - np.asarray(upright, dtype=int)).mean() < 8


def test_alpha_is_dropped_and_grey_expanded():
    rgba = gradient().convert("RGBA")
    assert images.decode(encode(rgba, "PNG"), **LIMITS).shape == (48, 64, 3)
    grey = gradient().convert("L")
    rgb = images.decode(encode(grey, "PNG"), **LIMITS)
    assert rgb.shape == (48, 64, 3)
    assert np.array_equal(rgb[:, :, 0], rgb[:, :, 2])


def test_sixteen_bit_grey_is_scaled_not_clipped():
    ramp = (np.linspace(0, 65535, 64)[None, :].repeat(8, 0)).astype(np.uint16)
    rgb = images.decode(encode(Image.fromarray(ramp), "PNG"), **LIMITS)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert 100 < rgb[0, 32, 0] < 160  # mid-grey stays mid-grey


def test_wide_grey_is_scaled_band_by_band_with_the_same_values():
    """16-bit PNG/TIFF grey (and 32-bit) go to 8 bits in bands of rows: every band, every edge value alike."""
    values = np.array([[0, 1, 256, 257, 32767, 65534, 65535, 514]], np.uint16).repeat(5, 0)
    for kind in ("PNG", "TIFF"):
        rgb = images.decode(encode(Image.fromarray(values), kind), **LIMITS)
        assert rgb[:, :, 0].tolist() == [[0, 0, 0, 1, 127, 254, 255, 2]] * 5, kind
        assert np.array_equal(rgb[:, :, 0], rgb[:, :, 2])
    wide = np.array([[-5, 0, 70000, 65535, 300]], np.int32).repeat(3, 0)
    assert images._wide_grey_to_rgb(wide, band_pixels=1)[:, :, 1].tolist() == [[0, 0, 255, 255, 1]] * 3
    dark = np.array([[0, 17, 255]], np.uint16)  # nothing above 255: kept as it is
    assert images._wide_grey_to_rgb(dark)[0, :, 0].tolist() == [0, 17, 255]


def test_cmyk_jpeg_is_converted():
    assert images.decode(encode(gradient().convert("CMYK"), "JPEG"), **LIMITS).shape == (48, 64, 3)


def test_one_pixel_image():
    assert images.decode(encode(gradient(1, 1), "PNG"), **LIMITS).shape == (1, 1, 3)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", errors.EmptyImage),
        (b"hello, this is text", errors.NotAnImage),
        (b"<html><body>hi</body></html>", errors.NotAnImage),
        (encode(gradient(), "GIF"), errors.NotAnImage),
        (encode(gradient(256, 256), "JPEG")[:400], errors.CorruptImage),
        (encode(gradient(256, 256), "PNG")[:200], errors.CorruptImage),
        (png_header_only(50_000, 50_000), errors.TooManyPixels),
    ],
    ids=["empty", "text", "html", "gif", "truncated-jpeg", "truncated-png", "decompression-bomb"],
)
def test_bad_images_raise_typed_errors(data, error):
    with pytest.raises(error) as caught:
        images.decode(data, **LIMITS)
    assert caught.value.message
    assert 400 <= caught.value.status < 500


def test_byte_limit_is_checked_and_named():
    data = encode(gradient(), "PNG")
    with pytest.raises(errors.ImageTooLarge, match=f"limit is {len(data) - 1} bytes"):
        images.decode(data, max_bytes=len(data) - 1, max_pixels=10_000_000)


def test_pixel_limit_is_checked_before_decoding(monkeypatch):
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1))
    with pytest.raises(errors.TooManyPixels):
        images.decode(encode(gradient(100, 100), "PNG"), max_bytes=10_000_000, max_pixels=9_999)
    assert loads == []


def test_a_sliver_of_an_image_is_refused_before_decoding():
    # The model would scale a 1x5000 image's short side to 0 px and fail (tests/test_hostile_inputs.py).
    assert images.decode(encode(gradient(100, 1), "PNG"), **LIMITS).shape == (1, 100, 3)
    for width, height in ((101, 1), (1, 5000)):
        with pytest.raises(errors.UnsupportedImage, match=f"{width}x{height}"):
            images.decode(png_header_only(width, height), **LIMITS)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_are_sniffed_decoded_and_turned_upright(fmt):
    """iPhones save HEIC; both formats are encoded here (pillow-heif, Pillow's AVIF plugin) with an EXIF
    orientation of 6 ("rotate 90 CW to display"): the decoded array is the upright picture."""
    upright = gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(upright.transpose(Image.Transpose.ROTATE_90), fmt, exif=exif.tobytes(), quality=90)
    assert data[4:8] == b"ftyp"  # an ISO-BMFF container, whatever the caller calls it
    rgb = images.decode(data, **LIMITS)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - np.asarray(upright, dtype=int)).mean() < 8


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF", "AVIF"])
def test_limits_are_checked_before_decoding_each_format(monkeypatch, fmt):
    data = encode(gradient(100, 100), fmt)
    with Image.open(io.BytesIO(data)) as probe:
        plugin = type(probe)
    loads = []
    for cls in {plugin, ImageFile.ImageFile}:
        monkeypatch.setattr(cls, "load", lambda self: loads.append(1))
    with pytest.raises(errors.TooManyPixels, match="100x100 = 10000 pixels"):
        images.decode(data, max_bytes=10_000_000, max_pixels=9_999)
    with pytest.raises(errors.ImageTooLarge):
        images.decode(data, max_bytes=len(data) - 1, max_pixels=10_000_000)
    assert loads == []


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_truncated_heic_and_avif_are_typed_errors(fmt):
    data = encode(gradient(256, 256), fmt, quality=90)
    for cut in (40, len(data) // 2, len(data) - 10):
        with pytest.raises((errors.CorruptImage, errors.NotAnImage)) as caught:
            images.decode(data[:cut], **LIMITS)
        assert "HEIC" in caught.value.message or "truncated or corrupt" in caught.value.message
