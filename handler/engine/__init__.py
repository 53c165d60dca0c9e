"""The engine: uploaded bytes to a result, the one path every entry point takes.

Decodes and checks images, runs the model, encodes results (RLE, polygons, COCO) and draws the overlay, each
mask from its crop (``handler.model.MaskCrop``), never N full-size masks.
Knows no transport: may import ``handler.model`` and the shared modules, never ``api``, ``s3`` or ``cli``.
The one path to the model: ``api``, ``s3`` and ``cli`` reach the loaded segmenter through these re-exports
(``get_segmenter``, ``Segmenter``), never through ``handler.model``.
"""

from handler.engine.images import SUPPORTED_FORMATS, decode
from handler.engine.options import RequestOptions
from handler.engine.overlay import render, render_png
from handler.engine.pipeline import SegmentedImage, SegmentOptions, segment_bytes, segment_rgb
from handler.engine.results import COCO_CATEGORY_IDS, SEED_KEYS, MaskFormat, Segmentation, outer_contours
from handler.engine.rle import crop_rle
from handler.model import MODEL_NAME, MODEL_URL, ChecksumMismatch, DownloadError, Segmenter, fetch_model, get_segmenter

__all__ = [
    "COCO_CATEGORY_IDS",
    "MODEL_NAME",
    "MODEL_URL",
    "SEED_KEYS",
    "SUPPORTED_FORMATS",
    "ChecksumMismatch",
    "DownloadError",
    "MaskFormat",
    "RequestOptions",
    "SegmentOptions",
    "Segmentation",
    "SegmentedImage",
    "Segmenter",
    "crop_rle",
    "decode",
    "fetch_model",
    "get_segmenter",
    "outer_contours",
    "render",
    "render_png",
    "segment_bytes",
    "segment_rgb",
]
