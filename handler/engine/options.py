"""What a caller may choose per image (``/segment``'s query parameters), validated in one place whichever way
it arrives: ``/segment``'s query, a ``POST /jobs`` body, an uploaded object's ``x-amz-meta-*`` metadata (what
a job's presigned POST signs in), an S3 Batch Operations job's ``userArguments``, ``segment``'s flags. The
pipeline takes this type too; the detection speed is not a request option (``SEG_DETECTION_SPEED``; the
command line's ``--speed`` is passed beside it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from handler.core.errors import InvalidRequest
from handler.core.settings import blank_is_none
from handler.engine.cutouts import CutoutMode
from handler.engine.results import MaskFormat

if TYPE_CHECKING:
    from handler.model import Segmenter


class RequestOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    masks: MaskFormat = Field("rle", description="mask encoding: COCO RLE, polygons, or none")
    confidence: float | None = Field(None, ge=0.0, le=1.0, description="score threshold (default SEG_CONFIDENCE)")
    classes: str | None = Field(
        None, description="keep only these of the model's class names (COCO's by default), comma-separated"
    )
    overlay: bool | None = Field(
        None,
        description="the overlay PNG too: in /segment's JSON (base64, one model run), or as a job's overlay_url "
        "(S3: written unless this is false)",
    )

    cutouts: CutoutMode | None = Field(
        None,
        description="cut each object out as an RGBA PNG of its box: mask (transparent outside the mask, PixelLib's "
        "extract_segmented_objects) or box (the box's pixels, opaque, extract_from_box). /segment: with "
        "format=cutouts (default mask); S3 uploads, jobs and backfills: written as <output>.objects/NN-<class>.png",
    )
    # The class names checked against the model once per request (``wanted``), whoever asks first.
    _wanted: tuple[tuple[str, ...], frozenset[str] | None] | None = PrivateAttr(None)

    @field_validator("classes", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return blank_is_none(value)

    @property
    def class_list(self) -> list[str] | None:
        return self.classes.split(",") if self.classes else None

    def wanted(self, segmenter: Segmenter) -> frozenset[str] | None:
        """The class names to keep, checked against the model's (``InvalidRequest`` names the unknown ones);
        None keeps every class. Checked once: the route asks before reading the upload, the pipeline again."""
        known = tuple(segmenter.class_names)
        if self._wanted is None or self._wanted[0] != known:
            self._wanted = (known, segmenter.validate_classes(self.class_list))
        return self._wanted[1]

    def metadata(self) -> dict[str, str]:
        """The options set, as S3 object metadata (``x-amz-meta-<name>`` values are strings)."""
        values = self.model_dump(exclude_none=True)
        return {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in values.items()}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> RequestOptions:
        """The options an object's metadata names; other metadata is not ours and is ignored."""
        known = {name: value for name, value in metadata.items() if name in cls.model_fields}
        return cls.parse(known, "x-amz-meta", prefix="x-amz-meta-")

    @classmethod
    def parse(cls, values: Mapping[str, Any], source: str, prefix: str | None = None) -> RequestOptions:
        """Validate ``values`` (strings are fine: "0.5", "true"); an unknown name or a bad value is an
        ``InvalidRequest`` whose message names each one as ``<prefix><name>`` (prefix: ``<source>.``)."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            prefix = f"{source}." if prefix is None else prefix
            problems = "; ".join(f"{prefix}{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise InvalidRequest(f"invalid {source}: {problems}") from None
