"""``GET /healthz``: the model loaded (or 503 when it cannot load), the version and the page's defaults."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from handler import __version__
from handler.api.deps import LoadedSegmenterDep, SettingsDep
from handler.api.errors import error_response
from handler.api.models import ErrorResponse, HealthResponse
from handler.core.errors import ModelUnavailable

router = APIRouter()


@router.get(
    "/healthz",
    response_model=HealthResponse,
    responses={503: {"model": ErrorResponse, "description": "the model cannot be loaded"}},
)
def healthz(settings: SettingsDep, segmenter: LoadedSegmenterDep) -> Any:
    """Model loaded (name, backbone, classes, the weights file's sha256, load time), version, and the defaults
    the page uses."""
    if segmenter is None:
        return error_response(ModelUnavailable("the model cannot be loaded; see the logs"))
    return {
        "status": "ok",
        "version": __version__,
        "model": {
            "loaded": True,
            "name": segmenter.model_name,
            "sha256": segmenter.model_sha256,
            "load_ms": segmenter.load_ms,
            "backbone": segmenter.backbone,
            "classes": len(segmenter.class_names),
            "class_names": list(segmenter.class_names),
        },
        "defaults": {
            "confidence": settings.confidence,
            "detection_speed": settings.detection_speed,
            "max_image_bytes": settings.max_image_bytes,
            "jobs": bool(settings.jobs_bucket),
        },
    }
