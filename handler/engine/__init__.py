"""The engine: uploaded bytes to a result, the one path every entry point takes.

Decodes and checks images, runs the model, then pastes one object's mask at a time (``handler.model.MaskCrop``)
and hands it to the consumers the request asked for (``objects``: RLE, polygons, the capped overlay, cut-outs)
before the next: never N full-size masks, never all crops at once.
Knows no transport: may import ``handler.model`` and the shared modules, never ``api``, ``s3`` or ``cli``.
The one path to the model: ``api``, ``s3`` and ``cli`` reach the loaded segmenter through these re-exports
(``get_segmenter``, ``Segmenter``), never through ``handler.model``.
"""

from handler.engine.coco import (
    Categories,
    NotAResult,
    check_frame,
    check_result,
    coco_annotations,
    coco_image,
    coco_source_name,
    frame_name,
    model_classes,
)
from handler.engine.cutouts import (
    LONGEST_NAME,
    OBJECTS_SUFFIX,
    CutoutMode,
    CutoutSink,
    CutoutWriter,
    CutoutZip,
    ZipTooLarge,
    cutout_name,
    cutout_png,
)
from handler.engine.images import SUPPORTED_FORMATS, decode
from handler.engine.objects import ObjectConsumer, Outputs, encode_objects
from handler.engine.options import RequestOptions
from handler.engine.overlay import OverlayDrawer, encode_png, render
from handler.engine.pipeline import SegmentedImage, segment_bytes, segment_rgb
from handler.engine.results import (
    COCO_CATEGORY_IDS,
    SCHEMA_VERSION,
    SEED_KEYS,
    MaskFormat,
    PolygonMasks,
    Segmentation,
    outer_contours,
)
from handler.engine.rle import RleMasks, crop_rle
from handler.model import MODEL_NAME, MODEL_URL, ChecksumMismatch, DownloadError, Segmenter, fetch_model, get_segmenter
from handler.model.test_models import make_test_model

__all__ = [
    "COCO_CATEGORY_IDS",
    "LONGEST_NAME",
    "MODEL_NAME",
    "MODEL_URL",
    "OBJECTS_SUFFIX",
    "SCHEMA_VERSION",
    "SEED_KEYS",
    "SUPPORTED_FORMATS",
    "Categories",
    "ChecksumMismatch",
    "CutoutMode",
    "CutoutSink",
    "CutoutWriter",
    "CutoutZip",
    "DownloadError",
    "MaskFormat",
    "NotAResult",
    "ObjectConsumer",
    "Outputs",
    "OverlayDrawer",
    "PolygonMasks",
    "RequestOptions",
    "RleMasks",
    "Segmentation",
    "SegmentedImage",
    "Segmenter",
    "ZipTooLarge",
    "check_frame",
    "check_result",
    "coco_annotations",
    "coco_image",
    "coco_source_name",
    "crop_rle",
    "cutout_name",
    "cutout_png",
    "decode",
    "encode_objects",
    "encode_png",
    "fetch_model",
    "frame_name",
    "get_segmenter",
    "make_test_model",
    "model_classes",
    "outer_contours",
    "render",
    "segment_bytes",
    "segment_rgb",
]
