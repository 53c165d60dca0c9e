"""Every knob of the service, read once from the environment (prefix ``SEG_``)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from handler.core.catalogue import DEFAULT_BACKBONE, Backbone, weights
from handler.core.cpus import available_cpus

REPO_ROOT = Path(__file__).resolve().parents[2]  # handler/core/settings.py -> the checkout
MODELS_DIR = REPO_ROOT / ".cache" / "models"
# The weights' sha256 that the image build checks (``fetch-model`` writes it when absent).
SHA256_PIN_FILE = REPO_ROOT / "infra" / "model.sha256"

DetectionSpeed = Literal["normal", "fast", "rapid"]
# Which side(s) lambda_function imports at init: each deployed function serves one (template.yaml sets it).
Serves = Literal["all", "http", "s3"]


def default_model_path(backbone: Backbone) -> Path:
    """Where ``fetch-model --backbone B`` puts PixelLib's release file, and where the service looks by default."""
    return MODELS_DIR / weights(backbone).file


def blank_is_none(value: object) -> object:
    """The one blank-to-None rule (settings and request options): a string is stripped, and unset when empty."""
    return (value.strip() or None) if isinstance(value, str) else value


# GET /jobs/{id} inlines a result stored up to this size, a larger one only through result_url. Lambda answers
# at most 6 MB, and the body goes into Mangum's JSON envelope as an escaped string (each quote or backslash
# doubled), so 1 MiB of stored JSON stays under about 2.1 MB of response whatever its characters.
MAX_INLINE_RESULT_BYTES = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEG_", extra="ignore")

    model_path: Path = Field(
        default_model_path(DEFAULT_BACKBONE),
        description="PointRend weights (.pkl, PixelLib format), or a folder holding the backbone's release file",
    )
    model_sha256: str | None = Field(None, description="when set, the weights must have this sha256")
    model_backbone: Backbone = Field(
        "resnet50", description="PixelLib's network_backbone: resnet50 (R50-FPN) or resnet101 (X-101-32x8d-FPN)"
    )
    class_names: str | None = Field(
        None,
        description="a model with its own classes: a file (one name per line) or a comma-separated list, in the "
        "checkpoint's class order; unset: COCO's 80 names",
    )
    confidence: float = Field(0.5, ge=0.0, le=1.0)
    detection_speed: DetectionSpeed = "normal"
    torch_threads: int = Field(
        "auto",  # type: ignore[assignment]  # resolved to a number by _threads_follow_the_cpus
        ge=1,
        validate_default=True,
        description="torch's intra-op threads and the per-object pool: auto (the CPUs the process may use: "
        "affinity and cgroup quota) or a number, which wins",
    )
    max_image_bytes: int = Field(6 * 1024 * 1024, ge=1)
    # 8064 x 6048, the iPhone's 48 MP: the largest size bench/scale.py measured inside the memory and time bounds
    # with 100 objects (docs/performance.md).
    max_pixels: int = Field(8064 * 6048, ge=1)
    overlay_max_side: int = Field(
        2048, ge=16, description="the overlay picture's long side at most (px): bounds its memory and the response"
    )
    serves: Serves = Field(
        "all",
        description="what lambda_function imports at init: http (the API function), s3 (the worker) or all",
    )
    input_prefix: str = "uploads/"
    output_bucket: str | None = None
    output_prefix: str = "results/"
    metrics: bool | None = Field(
        None,
        description="CloudWatch EMF metrics on stdout: by default in Lambda only; true: the local server too; "
        "false: never",
    )
    # A backfill of another bucket (S3 Batch Operations): its objects under this prefix are segmented too,
    # results beside them under output_prefix. Blank: none.
    backfill_bucket: str | None = None
    backfill_prefix: str = ""
    allow_s3_uri: bool = Field(
        False, description='read {"s3_uri": ...} requests at all (the template: only with IAM or JWT auth)'
    )
    # What an s3_uri may name: "bucket" (all of it) or "bucket/prefix/" entries. In the environment:
    # comma-separated (a,b/uploads/) or a JSON list.
    allowed_buckets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jobs_bucket: str | None = Field(None, description="where POST /jobs uploads go; unset: /jobs answers 503")
    upload_expiry_s: int = Field(900, ge=60, le=7 * 24 * 3600, description="life of a job's presigned POST")
    result_url_expiry_s: int = Field(
        600, ge=60, le=7 * 24 * 3600, description="life of a job's result_url and overlay_url"
    )
    inline_result_bytes: int = Field(
        MAX_INLINE_RESULT_BYTES,
        ge=0,
        le=MAX_INLINE_RESULT_BYTES,
        description="GET /jobs/{id} inlines a result up to this size (0: never; at most 1 MiB, to fit Lambda's 6 MB)",
    )
    # The worker's asynchronous-invocation settings, as template.yaml gives them (WorkerTimeout,
    # MaximumRetryAttempts, MaximumEventAgeInSeconds): GET /jobs/{id} derives from them when a job with no
    # outcome is stalled (handler/jobstore.py, retry_window_s).
    worker_timeout_s: int = Field(300, ge=1, le=900)
    worker_max_retries: int = Field(2, ge=0, le=2)
    worker_max_event_age_s: int = Field(3600, ge=60, le=6 * 3600)
    # Video (docs/video.md#limits): a clip over any of these is refused before its first frame is segmented.
    video_max_bytes: int = Field(2 * 1024**3, ge=1, description="largest video file or upload, bytes")
    video_max_frames: int = Field(108_000, ge=1, description="most frames in a video (the container's count)")
    video_max_seconds: float = Field(3600.0, gt=0, description="longest video, seconds")
    video_max_pixels: int = Field(3840 * 2160, ge=1, description="most pixels in one displayed frame")
    video_chunk_frames: int = Field(300, ge=1, description="most frames in one chunk of a distributed run")
    video_state_machine_arn: str | None = Field(
        None, description="the video state machine (template.yaml) a video upload starts; unset: videos are refused"
    )

    @field_validator("torch_threads", mode="before")
    @classmethod
    def _threads_follow_the_cpus(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
            return available_cpus()
        return value

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("backfill_bucket", "jobs_bucket", "class_names", "model_sha256", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return blank_is_none(value)

    @property
    def class_name_list(self) -> tuple[str, ...] | None:
        """``SEG_CLASS_NAMES`` as names: the file's non-blank lines if it names a file, else split on commas."""
        if self.class_names is None:
            return None
        path = Path(self.class_names).expanduser()
        text = path.read_text(encoding="utf-8") if path.is_file() else self.class_names.replace(",", "\n")
        return tuple(name.strip() for name in text.splitlines() if name.strip())

    @field_validator("model_sha256")
    @classmethod
    def _sha256_in_lower_case(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @model_validator(mode="after")
    def _model_path_follows_backbone(self) -> Settings:
        if "model_path" not in self.model_fields_set:
            self.model_path = default_model_path(self.model_backbone)
        elif self.model_path.is_dir():  # the image's /opt/model/: the catalogue names the file
            self.model_path = self.model_path / weights(self.model_backbone).file
        return self

    @model_validator(mode="after")
    def _outputs_apart_from_inputs(self) -> Settings:
        # With neither, every upload would look like the function's own output and be skipped forever.
        if not self.output_bucket and not self.output_prefix:
            raise ValueError("SEG_OUTPUT_PREFIX may be empty only with a separate SEG_OUTPUT_BUCKET")
        problems = prefix_conflicts(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def prefix_conflicts(settings: Settings) -> list[str]:
    """Input and output prefixes that contain one another in one bucket: a setup that cannot work.

    Inputs under the output prefix are all skipped as "an output" (nothing is ever segmented); outputs
    under the input prefix trigger the worker on every result it writes. With SEG_OUTPUT_BUCKET the
    outputs go to another bucket, except a job's when that bucket is also SEG_JOBS_BUCKET.
    """
    same_bucket = not settings.output_bucket or settings.output_bucket == settings.jobs_bucket
    problems = []
    inputs, outputs = settings.input_prefix, settings.output_prefix
    if same_bucket and (inputs.startswith(outputs) or outputs.startswith(inputs)):
        outer, inner = (outputs, inputs) if inputs.startswith(outputs) else (inputs, outputs)
        problems.append(
            f"SEG_INPUT_PREFIX={inputs!r} and SEG_OUTPUT_PREFIX={outputs!r} contain one another in the same bucket "
            f"({inner!r} lies under {outer!r}): "
            + (
                "every upload would be skipped as an output of this function"
                if outer == outputs
                else "every result written would trigger the function again"
            )
            + "; choose prefixes apart (uploads/ and results/) or set SEG_OUTPUT_BUCKET to another bucket"
        )
    backfill = settings.backfill_prefix
    if settings.backfill_bucket and not settings.output_bucket and backfill.startswith(outputs):
        problems.append(
            f"SEG_BACKFILL_PREFIX={backfill!r} lies under SEG_OUTPUT_PREFIX={outputs!r} in "
            f"{settings.backfill_bucket!r}: every object a backfill names would be skipped as an output"
        )
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
