"""The model: PixelLib's PointRend (R50 or X-101 FPN, COCO's or its own classes), its weights files and the
Segmenter that runs it.

Knows no transport (no HTTP, no S3) and nothing of how results are encoded: RGB array in, ``Detections`` out
(boxes, scores, classes; each mask pasted inside its box when asked for, one at a time).
May import only ``handler.core.settings``, ``handler.core.catalogue``, ``handler.core.errors`` and
``handler.core.allocator``.
"""

from handler.model.checkpoint import Checkpoint, WeightsUnpickler, load_weights, read_checkpoint, read_weights
from handler.model.files import (
    MODEL_URL,
    SHA256_PIN_FILE,
    ChecksumMismatch,
    DownloadError,
    Fetched,
    download_model,
    fetch_model,
    pinned_sha256,
    save_weights,
    sha256_of,
)
from handler.model.optimise import optimise
from handler.model.paste import BAND_PIXELS, MaskCrop, paste_one, postprocess_boxes
from handler.model.pixellib import (
    BACKBONES,
    COCO_CLASS_NAMES,
    MODEL_NAME,
    SPEED_SIZES,
    build_pointrend,
    model_name,
    pixellib_instance,
)
from handler.model.segmenter import Detections, Segmenter, get_segmenter

__all__ = [
    "BACKBONES",
    "BAND_PIXELS",
    "COCO_CLASS_NAMES",
    "MODEL_NAME",
    "MODEL_URL",
    "SHA256_PIN_FILE",
    "SPEED_SIZES",
    "Checkpoint",
    "ChecksumMismatch",
    "Detections",
    "DownloadError",
    "Fetched",
    "MaskCrop",
    "Segmenter",
    "WeightsUnpickler",
    "build_pointrend",
    "download_model",
    "fetch_model",
    "get_segmenter",
    "load_weights",
    "model_name",
    "optimise",
    "paste_one",
    "pinned_sha256",
    "pixellib_instance",
    "postprocess_boxes",
    "read_checkpoint",
    "read_weights",
    "save_weights",
    "sha256_of",
]
