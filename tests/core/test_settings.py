import os
import subprocess
import sys

import pytest
from conftest import REPO
from pydantic import ValidationError

from handler.core.settings import Settings


def test_environment_is_read_with_the_seg_prefix(monkeypatch):
    monkeypatch.setenv("SEG_CONFIDENCE", "0.25")
    monkeypatch.setenv("SEG_ALLOWED_BUCKETS", "a-bucket, b-bucket,")
    monkeypatch.setenv("SEG_MODEL_SHA256", "  ABCDEF  ")
    settings = Settings()
    assert settings.confidence == 0.25
    assert settings.allowed_buckets == ["a-bucket", "b-bucket"]
    assert settings.model_sha256 == "abcdef"
    monkeypatch.setenv("SEG_ALLOWED_BUCKETS", '["c-bucket"]')  # the form template.yaml uses
    assert Settings().allowed_buckets == ["c-bucket"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("SEG_CONFIDENCE", "1.5"), ("SEG_DETECTION_SPEED", "ludicrous"), ("SEG_TORCH_THREADS", "0")],
)
def test_bad_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("SEG_").lower()):
        Settings()


def test_outputs_cannot_collide_with_inputs():
    with pytest.raises(ValidationError, match="SEG_OUTPUT_PREFIX may be empty only"):
        Settings(output_prefix="")
    assert Settings(output_prefix="", output_bucket="elsewhere").output_prefix == ""


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"input_prefix": "results/in/", "output_prefix": "results/"}, "skipped as an output"),
        ({"input_prefix": "uploads/", "output_prefix": "uploads/results/"}, "trigger the function again"),
        ({"input_prefix": "same/", "output_prefix": "same/"}, "skipped as an output"),
        ({"input_prefix": "", "output_prefix": "results/"}, "trigger the function again"),
        # the jobs' results share the jobs bucket when it is also the output bucket
        ({"input_prefix": "a/", "output_prefix": "a/b/", "output_bucket": "j", "jobs_bucket": "j"}, "trigger"),
    ],
)
def test_prefixes_that_contain_one_another_in_one_bucket_are_refused(changes, named):
    with pytest.raises(ValidationError) as refused:
        Settings(**changes)
    message = str(refused.value)
    assert f"SEG_INPUT_PREFIX={changes['input_prefix']!r}" in message
    assert f"SEG_OUTPUT_PREFIX={changes['output_prefix']!r}" in message
    assert named in message


@pytest.mark.parametrize(
    "changes",
    [
        {"input_prefix": "uploads/", "output_prefix": "results/"},
        {"input_prefix": "up/", "output_prefix": "uploads/"},  # a shared first letter is not containment
        {"input_prefix": "uploads/", "output_prefix": "uploads/results/", "output_bucket": "elsewhere"},
        {"input_prefix": "", "output_prefix": "", "output_bucket": "elsewhere"},
    ],
)
def test_prefixes_apart_or_in_another_bucket_are_accepted(changes):
    assert Settings(**changes).output_prefix == changes["output_prefix"]


def test_a_backfill_prefix_under_the_output_prefix_is_refused():
    with pytest.raises(ValidationError, match="SEG_BACKFILL_PREFIX='results/old/'"):
        Settings(backfill_bucket="archive", backfill_prefix="results/old/")
    assert Settings(backfill_bucket="archive", backfill_prefix="").backfill_prefix == ""


@pytest.mark.parametrize("entry", ["serve", "lambda"])
def test_nested_prefixes_stop_serve_and_the_lambda_init_naming_both(entry, test_model_path):
    env = {**os.environ, "SEG_INPUT_PREFIX": "results/in/", "SEG_OUTPUT_PREFIX": "results/"}
    command = (
        [sys.executable, "-m", "handler", "serve", "--port", "1"]
        if entry == "serve"
        else [sys.executable, "-c", "import handler.lambda_function"]
    )
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode != 0
    assert "SEG_INPUT_PREFIX='results/in/'" in result.stderr and "SEG_OUTPUT_PREFIX='results/'" in result.stderr
    if entry == "serve":  # refused before uvicorn starts or the model loads: one line, no traceback
        assert result.returncode == 2 and "Traceback" not in result.stderr


def test_the_default_model_and_a_model_folder_follow_the_catalogue(tmp_path, monkeypatch):
    """The checkout's .cache/models/ by default; a folder (the image's /opt/model/) holds the backbone's file."""
    monkeypatch.delenv("SEG_MODEL_PATH", raising=False)
    from handler.core.catalogue import weights
    from handler.core.settings import MODELS_DIR, SHA256_PIN_FILE

    assert MODELS_DIR == REPO / ".cache" / "models" and SHA256_PIN_FILE == REPO / "infra" / "model.sha256"
    assert Settings(model_backbone="resnet101").model_path == MODELS_DIR / weights("resnet101").file
    assert Settings(model_path=tmp_path).model_path == tmp_path / "pointrend_resnet50.pkl"
    assert Settings(model_path=tmp_path, model_backbone="resnet101").model_path == tmp_path / "pointrend_resnet101.pkl"
