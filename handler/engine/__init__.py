"""The engine: uploaded bytes to a result, the one path every entry point takes.

Decodes and checks images, runs the model, encodes results (RLE, polygons, COCO) and draws the overlay, each
mask from its crop (``handler.model.MaskCrop``), never N full-size masks.
Knows no transport: may import ``handler.model`` and the shared modules, never ``api``, ``s3`` or ``cli``.
"""

from handler.engine.images import SUPPORTED_FORMATS, decode
from handler.engine.options import RequestOptions
from handler.engine.overlay import render, render_png
from handler.engine.pipeline import SegmentedImage, SegmentOptions, segment_bytes, segment_rgb
from handler.engine.results import COCO_CATEGORY_IDS, SEED_KEYS, MaskFormat, Segmentation, outer_contours
from handler.engine.rle import crop_rle

__all__ = [
    "COCO_CATEGORY_IDS",
    "SEED_KEYS",
    "SUPPORTED_FORMATS",
    "MaskFormat",
    "RequestOptions",
    "SegmentOptions",
    "Segmentation",
    "SegmentedImage",
    "crop_rle",
    "decode",
    "outer_contours",
    "render",
    "render_png",
    "segment_bytes",
    "segment_rgb",
]
