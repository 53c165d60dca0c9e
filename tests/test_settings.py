import pytest
from pydantic import ValidationError

from handler.settings import Settings


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


def test_channels_last_option_reaches_the_segmenter(monkeypatch, test_model_path):
    from handler.model import Segmenter

    monkeypatch.setenv("SEG_CHANNELS_LAST", "true")
    settings = Settings()
    assert settings.channels_last is True
    assert Segmenter(settings).channels_last is True
