"""What a caller may choose per image (``/segment``'s query parameters), validated in one place whichever way
it arrives: here, an S3 Batch Operations job's ``userArguments``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from handler.engine.pipeline import SegmentOptions
from handler.engine.results import MaskFormat
from handler.errors import InvalidRequest


class RequestOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    masks: MaskFormat = Field("rle", description="mask encoding: COCO RLE, polygons, or none")
    confidence: float | None = Field(None, ge=0.0, le=1.0, description="score threshold (default SEG_CONFIDENCE)")
    classes: str | None = Field(None, description="keep only these COCO class names, comma-separated")
    overlay: bool | None = Field(None, description="the overlay PNG too (S3: written unless this is false)")

    @field_validator("classes")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None

    @property
    def class_list(self) -> list[str] | None:
        return self.classes.split(",") if self.classes else None

    def segment_options(self) -> SegmentOptions:
        return SegmentOptions(confidence=self.confidence, classes=self.class_list)

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
