"""Every knob of the service, read once from the environment (prefix ``SEG_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = REPO_ROOT / ".cache" / "models" / "pointrend_resnet50.pkl"

DetectionSpeed = Literal["normal", "fast", "rapid"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEG_", extra="ignore")

    model_path: Path = Field(DEFAULT_MODEL_PATH, description="PointRend weights (.pkl, PixelLib format)")
    model_sha256: str | None = Field(None, description="when set, the weights must have this sha256")
    confidence: float = Field(0.5, ge=0.0, le=1.0)
    detection_speed: DetectionSpeed = "normal"
    torch_threads: int | None = Field(None, ge=1, description="default: torch's own choice")
    max_image_bytes: int = Field(6 * 1024 * 1024, ge=1)
    max_pixels: int = Field(40_000_000, ge=1)
    input_prefix: str = "uploads/"
    output_bucket: str | None = None
    output_prefix: str = "results/"
    allowed_buckets: list[str] = Field(default_factory=list)

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("model_sha256", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
