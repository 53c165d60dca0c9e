"""What the routes, the middleware and the schema depend on, as FastAPI dependencies: settings, the segmenter,
admission. Each is one ``Annotated`` type, so ``app.dependency_overrides`` (what tests set, in one place) reaches
every user of it: the routes through FastAPI, the middleware and ``/openapi.json`` through ``resolve``, which
they call because they run outside a route's dependency resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from handler.api.admission import Admission, get_admission
from handler.core.errors import ModelFileError
from handler.core.logs import logger
from handler.core.settings import Settings, get_settings
from handler.engine import Segmenter, get_segmenter

T = TypeVar("T")


def resolve(app: Any, dependency: Callable[[], T]) -> T:
    """What a dependency without parameters gives in ``app``: its override when one is set."""
    overrides = getattr(app, "dependency_overrides", {})
    return overrides.get(dependency, dependency)()


def loaded_segmenter(request: Request) -> Segmenter | None:
    """The segmenter, or None when the weights cannot be loaded (what ``/healthz`` reports as 503)."""
    try:
        return resolve(request.app, get_segmenter)
    except ModelFileError as exc:
        logger.error("model unavailable", extra={"reason": str(exc)})
        return None


SettingsDep = Annotated[Settings, Depends(get_settings)]
SegmenterDep = Annotated[Segmenter, Depends(get_segmenter)]
LoadedSegmenterDep = Annotated[Segmenter | None, Depends(loaded_segmenter)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]
