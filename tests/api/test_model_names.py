"""The HTTP API speaks the loaded model's words: /healthz, the OpenAPI schema and the ``classes`` filter use
its backbone and class names (here a model of its own 3 classes, ``make-test-model --classes``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import CUSTOM_CLASSES
from fastapi.testclient import TestClient

from handler.api import app
from handler.api.models import HealthResponse
from handler.engine import get_segmenter


@pytest.fixture
def custom_client(custom_segmenter, app_overrides) -> Iterator[TestClient]:
    app_overrides[get_segmenter] = lambda: custom_segmenter  # /healthz, /segment and the schema alike
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_healthz_reports_backbone_classes_and_file_hash(custom_client, custom_segmenter):
    health = HealthResponse.model_validate(custom_client.get("/healthz").json())
    assert health.model.backbone == "resnet50" and health.model.classes == 3
    assert health.model.class_names == list(CUSTOM_CLASSES)
    assert health.model.sha256 == custom_segmenter.model_sha256 and len(health.model.sha256) == 64


def test_openapi_lists_the_models_class_names(custom_client):
    spec = custom_client.get("/openapi.json").json()
    assert "PointRend resnet50, 3 classes" in spec["info"]["description"]
    (classes,) = [p for p in spec["paths"]["/segment"]["post"]["parameters"] if p["name"] == "classes"]
    assert classes["description"].endswith("cat, dog, bird")


def test_the_classes_filter_takes_the_models_names(custom_client, photo_bytes):
    # The dense test model sees a crowd of its first class ("cat") everywhere.
    response = custom_client.post("/segment?classes=cat&masks=none&confidence=0.5", files={"image": photo_bytes})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["class_names"] == ["cat"] * 100 and body["object_counts"] == {"cat": 100}
    assert body["model"]["classes"] == list(CUSTOM_CLASSES)
    assert custom_client.post("/segment?classes=dog&masks=none", files={"image": photo_bytes}).json()["boxes"] == []
    refused = custom_client.post("/segment?classes=person", files={"image": photo_bytes})
    assert refused.status_code == 422
    assert "the model knows ['cat', 'dog', 'bird']" in refused.json()["error"]["message"]
