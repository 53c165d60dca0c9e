"""Shared fixtures. The model is the random test model in the real file format, loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "tests" / "images"
TEST_MODEL = Path(os.environ.setdefault("SEG_MODEL_PATH", str(REPO / ".cache" / "models" / "test_model.pkl")))
# Tests are about behaviour, not accuracy: the small input size keeps the suite fast on 2 cores.
os.environ.setdefault("SEG_DETECTION_SPEED", "rapid")


@pytest.fixture(scope="session")
def test_model_path() -> Path:
    if not TEST_MODEL.exists():
        from handler.weights import make_test_model

        make_test_model(TEST_MODEL)
    return TEST_MODEL


@pytest.fixture(scope="session")
def segmenter(test_model_path):
    from handler.model import get_segmenter

    return get_segmenter()


@pytest.fixture(scope="session")
def settings(test_model_path):
    from handler.settings import get_settings

    return get_settings()


@pytest.fixture
def photo_bytes() -> bytes:
    return (IMAGES / "astronaut.jpg").read_bytes()


# Moto server (real HTTP) and S3 fixtures: moto_endpoint, s3, bucket.
pytest_plugins = ["moto_fixtures"]
