"""``POST /segment?format=cutouts``: a zip of result.json and one RGBA PNG per object, on the dense test model
(100 objects on any image), checked against the decoded RLE masks of the JSON answer."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import IMAGES
from cutout_checks import assert_cutouts
from fastapi.testclient import TestClient
from PIL import Image

from handler.api import app
from handler.api.limits import LAMBDA_RESPONSE_BYTES
from handler.engine import decode, get_segmenter

PHOTO = (IMAGES / "astronaut.jpg").read_bytes()  # 320 x 320
# Noise does not compress: 100 cut-outs of it are far over what one response carries.
NOISE = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1536, 2048, 3), dtype=np.uint8))


@pytest.fixture
def dense(dense_segmenter) -> Iterator[None]:
    app.dependency_overrides[get_segmenter] = lambda: dense_segmenter
    yield
    app.dependency_overrides.pop(get_segmenter, None)


def post(client: TestClient, query: str, data: bytes = PHOTO, content_type: str = "image/jpeg") -> Any:
    return client.post(f"/segment?{query}", content=data, headers={"content-type": content_type})


def unzip(response: Any) -> tuple[list[str], dict[str, bytes]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="cutouts.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        return names, {name: archive.read(name) for name in names}


def without_timings(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name != "timings_ms"}


@pytest.fixture(scope="module")
def dense_zip_and_json(client: TestClient, dense_segmenter) -> tuple[list[str], dict[str, bytes], dict[str, Any]]:
    """One dense zip and the JSON answer for the same image and options (the dense model takes a while)."""
    app.dependency_overrides[get_segmenter] = lambda: dense_segmenter
    try:
        names, files = unzip(post(client, "format=cutouts&confidence=0.1"))
        return names, files, post(client, "confidence=0.1").json()
    finally:
        app.dependency_overrides.pop(get_segmenter, None)


def test_the_zip_holds_result_json_and_each_object_cut_out_by_its_decoded_mask(dense_zip_and_json) -> None:
    names, files, answer = dense_zip_and_json
    files = dict(files)
    assert names[-1] == "result.json"  # last: it is complete once every object has been through
    result = json.loads(files.pop("result.json"))
    assert without_timings(result) == without_timings(answer)
    assert len(result["class_names"]) == 100  # the dense model's crowd
    assert names[:-1] == list(files)  # zip order is result order
    assert_cutouts(files, result, decode(PHOTO, max_bytes=10**8, max_pixels=10**8))


def test_cutouts_box_are_the_boxes_pixels_opaque(client: TestClient, dense) -> None:
    _, files = unzip(post(client, "format=cutouts&cutouts=box&confidence=0.1&masks=none&classes=person,car"))
    result = json.loads(files.pop("result.json"))
    assert "masks" not in result and set(result["class_names"]) <= {"person", "car"}
    assert_cutouts(files, result, decode(PHOTO, max_bytes=10**8, max_pixels=10**8), mode="box")


def test_with_overlay_true_result_json_carries_the_overlay_as_the_json_answer_does(client: TestClient) -> None:
    _, files = unzip(post(client, "format=cutouts&confidence=0&overlay=true&overlay_max_side=64"))
    result = json.loads(files["result.json"])
    answer = post(client, "confidence=0&overlay=true&overlay_max_side=64").json()
    assert result["overlay_png_base64"] == answer["overlay_png_base64"]
    assert len(files) == 1 + len(answer["class_names"])


def test_no_objects_is_a_zip_of_result_json_alone(client: TestClient) -> None:
    names, files = unzip(post(client, "format=cutouts&confidence=1"))
    assert names == ["result.json"]
    assert json.loads(files["result.json"])["class_names"] == []


def test_a_zip_over_the_lambda_limit_is_a_413_naming_the_other_paths_and_stops_early(client: TestClient, dense) -> None:
    buffer = io.BytesIO()
    NOISE.save(buffer, "JPEG")
    response = post(client, "format=cutouts&confidence=0.1&masks=none&cutouts=box", buffer.getvalue())
    assert response.status_code == 413, response.headers
    error = response.json()["error"]
    assert error["code"] == "response_too_large"
    assert str(LAMBDA_RESPONSE_BYTES) in error["message"]
    assert "S3" in error["message"] and "POST /jobs" in error["message"] and "cutouts" in error["message"]
    made = int(error["message"].split(" cut-outs in it")[0].split()[-1])
    assert made < 100  # the zip stopped growing, and no more were made, when it crossed the limit


@pytest.mark.parametrize(
    ("query", "where"),
    [("cutouts=box", "format=cutouts"), ("format=cutouts&cutouts=outline", "query.cutouts"), ("format=zip", "format")],
)
def test_bad_cutout_queries_are_422(client: TestClient, query: str, where: str) -> None:
    response = post(client, query)
    assert response.status_code == 422, response.text
    assert where in response.json()["error"]["message"]


def test_openapi_publishes_the_zip_and_the_option(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/segment"]["post"]
    assert "application/zip" in operation["responses"]["200"]["content"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert "cutouts" in str(parameters["format"]["schema"])
    assert {"mask", "box"} <= set(str(parameters["cutouts"]["schema"]).replace("'", " ").split())
    jobs = schema["components"]["schemas"]["JobRequest"]["properties"]
    assert "cutouts" in jobs
