"""Every route of the HTTP API through FastAPI's TestClient, on the real (random) test model."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from conftest import IMAGES
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from imaging import encode, gradient, png_header_only
from PIL import Image
from pycocotools import mask as coco_mask
from s3_faults import TransientS3, s3_answers, s3_at

import handler
from handler.api.admission import Admission, get_admission
from handler.api.models import ErrorResponse, HealthResponse, SeedResponse, SegmentResponse
from handler.core import storage
from handler.core.errors import ServiceBusy
from handler.core.settings import get_settings
from handler.engine.results import SCHEMA_VERSION, SEED_KEYS
from handler.model import COCO_CLASS_NAMES

PHOTO = (IMAGES / "astronaut.jpg").read_bytes()  # 320 x 320


def form(data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg") -> dict[str, Any]:
    return {"files": {"image": (filename, data, content_type)}}


def assert_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = ErrorResponse.model_validate(response.json())
    assert body.error.code == code
    assert body.error.message
    return body.error.message


@pytest.fixture(scope="module")
def astronaut_result(client: TestClient) -> dict[str, Any]:
    """One model call shared by the tests that compare against it (confidence 0: the test model finds objects)."""
    response = client.post("/segment?confidence=0", **form(PHOTO))
    assert response.status_code == 200, response.text
    assert response.headers["x-image-sha256"] == hashlib.sha256(PHOTO).hexdigest()
    return response.json()


# --- POST /segment ---------------------------------------------------------------------------------


def test_segment_multipart_returns_the_schema_with_decodable_rle_masks(astronaut_result: dict[str, Any]) -> None:
    body = SegmentResponse.model_validate(astronaut_result)
    count = len(body.class_names)
    assert count >= 1  # the test model finds the whole image at confidence 0
    assert body.image.width == 320 and body.image.height == 320
    assert body.mask_shape == [320, 320, count]
    assert len(body.boxes) == len(body.class_ids) == len(body.scores) == count
    assert all(0.0 <= score <= 1.0 and type(score) is float for score in body.scores)  # the model's floats
    assert all(type(value) is float for box in body.boxes for value in box)
    assert astronaut_result["schema_version"] == SCHEMA_VERSION
    assert all(COCO_CLASS_NAMES[i] == name for i, name in zip(body.class_ids, body.class_names, strict=True))
    assert sum(body.object_counts.values()) == count
    assert body.masks is not None and len(body.masks) == count
    decoded = coco_mask.decode([mask.model_dump() for mask in body.masks])
    assert decoded.shape == tuple(body.mask_shape)
    # Every confident object has pixels; a faint one (the random model's 1e-9 scores at confidence 0) may be
    # too small to cover a pixel centre, as in stock PixelLib.
    confident = np.array(body.scores) >= 0.5
    assert confident.any() and decoded.any(axis=(0, 1))[confident].all()
    assert body.model.name == "pointrend_resnet50"
    assert {"model", "decode", "total"} <= set(body.timings_ms)


def test_every_body_form_reaches_the_model_with_the_same_bytes(client: TestClient, astronaut_result) -> None:
    digest = hashlib.sha256(PHOTO).hexdigest()
    raw = client.post("/segment?confidence=0&masks=polygons", content=PHOTO, headers={"content-type": "image/jpeg"})
    as_json = client.post("/segment?confidence=0&masks=none", json={"image_base64": base64.b64encode(PHOTO).decode()})
    for response in (raw, as_json):
        assert response.status_code == 200, response.text
        assert response.headers["x-image-sha256"] == digest
        body = SegmentResponse.model_validate(response.json())
        assert body.model_dump(include=set(SEED_KEYS)) == {key: astronaut_result[key] for key in SEED_KEYS}
    polygons = raw.json()["polygons"]
    assert len(polygons) == len(astronaut_result["class_names"]) and "masks" not in raw.json()
    assert all(len(contour) >= 6 and len(contour) % 2 == 0 for contours in polygons for contour in contours)
    assert "masks" not in as_json.json() and "polygons" not in as_json.json()


def test_classes_keeps_only_the_named_classes(client: TestClient, astronaut_result) -> None:
    wanted = astronaut_result["class_names"][0]
    response = client.post(f"/segment?confidence=0&classes={wanted}", **form(PHOTO))
    assert response.status_code == 200, response.text
    expected = [i for i, name in enumerate(astronaut_result["class_names"]) if name == wanted]
    assert response.json()["class_names"] == [wanted] * len(expected)
    assert response.json()["boxes"] == [astronaut_result["boxes"][i] for i in expected]


def test_format_png_returns_the_overlay(client: TestClient) -> None:
    response = client.post("/segment?confidence=0&format=png", **form(PHOTO))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    overlay = Image.open(io.BytesIO(response.content))
    assert overlay.format == "PNG" and overlay.size == (320, 320)
    original = np.asarray(Image.open(io.BytesIO(PHOTO)).convert("RGB"), dtype=np.int16)
    assert np.abs(np.asarray(overlay.convert("RGB"), dtype=np.int16) - original).mean() > 5  # masks drawn

    # What the upload page asks for: the JSON result and the same overlay from one model run.
    both = client.post("/segment?confidence=0&masks=none&overlay=true", **form(PHOTO))
    assert both.status_code == 200, both.text
    body = SegmentResponse.model_validate(both.json())
    assert body.overlay_png_base64 is not None
    assert base64.b64decode(body.overlay_png_base64, validate=True) == response.content
    assert body.class_names and "masks" not in both.json()


def test_overlay_is_opt_in_and_only_for_json(client: TestClient, astronaut_result) -> None:
    assert "overlay_png_base64" not in astronaut_result
    png = client.post("/segment?confidence=1&format=png&overlay=true", **form(PHOTO))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert_error(client.post("/segment?overlay=maybe", **form(PHOTO)), 422, "invalid_request")


def test_s3_uri_reads_an_allowed_bucket(client, configure, s3, bucket) -> None:
    s3.put_object(Bucket=bucket, Key="uploads/astronaut.jpg", Body=PHOTO)
    configure(allow_s3_uri=True, allowed_buckets=[f"{bucket}/uploads/"])
    response = client.post("/segment?masks=none", json={"s3_uri": f"s3://{bucket}/uploads/astronaut.jpg"})
    assert response.status_code == 200, response.text
    assert response.headers["x-image-sha256"] == hashlib.sha256(PHOTO).hexdigest()
    assert response.json()["image"] == {"width": 320, "height": 320}


# --- POST /segmentapi ------------------------------------------------------------------------------


def test_segmentapi_keeps_the_ancestor_contract(client, configure, astronaut_result) -> None:
    configure(confidence=0.0)
    response = client.post("/segmentapi", **form(PHOTO))
    assert response.status_code == 200, response.text
    body = response.json()
    assert tuple(sorted(body)) == SEED_KEYS
    SeedResponse.model_validate(body)
    assert body["boxes"] and all(type(v) is int for box in body["boxes"] for v in box)
    assert all(type(v) is int for v in body["class_ids"] + body["mask_shape"])
    assert all(type(v) is int and 0 <= v <= 100 for v in body["scores"])
    assert all(type(v) is str for v in body["class_names"])
    assert all(type(v) is int for v in body["object_counts"].values())
    # The ancestor's integers are /segment's float32 numbers truncated (scores as percentages).
    full = {key: astronaut_result[key] for key in SEED_KEYS}
    full["boxes"] = np.array(full["boxes"], np.float32).astype(np.int64).tolist()
    full["scores"] = (np.array(full["scores"], np.float32) * 100).astype(np.int64).tolist()
    assert body == full


# /segmentapi's exact answer on the astronaut at confidence 0 with the random test model, recorded before the
# other results moved to full precision: the ancestor's contract must not move by a byte.
SEGMENTAPI_ASTRONAUT = (
    b'{"boxes":[[0,254,320,320],[0,0,320,320],[42,0,81,320]],"class_ids":[38,38,66],'
    b'"class_names":["tennis racket","tennis racket","keyboard"],"mask_shape":[320,320,3],'
    b'"object_counts":{"tennis racket":2,"keyboard":1},"scores":[100,0,0]}'
)


def test_segmentapi_answers_the_same_bytes_as_before(client, configure) -> None:
    configure(confidence=0.0)
    response = client.post("/segmentapi", **form(PHOTO))
    assert response.status_code == 200, response.text
    assert response.content == SEGMENTAPI_ASTRONAUT


def test_segmentapi_takes_only_multipart(client: TestClient) -> None:
    response = client.post("/segmentapi", content=PHOTO, headers={"content-type": "image/jpeg"})
    assert_error(response, 415, "unsupported_media_type")


# --- errors ----------------------------------------------------------------------------------------


def test_400_empty_image(client: TestClient) -> None:
    assert_error(client.post("/segment", **form(b"")), 400, "empty_image")
    assert_error(client.post("/segment", content=b"", headers={"content-type": "image/png"}), 400, "empty_image")


def test_s3_uri_is_refused_unless_the_server_reads_it(client, configure, s3, bucket) -> None:
    s3.put_object(Bucket=bucket, Key="uploads/astronaut.jpg", Body=PHOTO)
    configure(allowed_buckets=[bucket])  # allowed, but SEG_ALLOW_S3_URI is off (the default)
    response = client.post("/segment", json={"s3_uri": f"s3://{bucket}/uploads/astronaut.jpg"})
    assert "SEG_ALLOW_S3_URI" in assert_error(response, 403, "s3_uri_disabled")


def test_a_forbidden_and_a_missing_object_get_the_same_answer(client, configure, s3, bucket) -> None:
    s3.create_bucket(Bucket="private-bucket")
    for where, key in ((bucket, "uploads/a.jpg"), (bucket, "private/a.jpg"), ("private-bucket", "uploads/a.jpg")):
        s3.put_object(Bucket=where, Key=key, Body=PHOTO)
    configure(allow_s3_uri=True, allowed_buckets=[f"{bucket}/uploads/"])
    missing = f"s3://{bucket}/uploads/missing.jpg"
    answers = {
        uri: client.post("/segment", json={"s3_uri": uri})
        for uri in (
            missing,  # allowed, missing
            f"s3://{bucket}/private/a.jpg",  # exists, outside the allowed prefix
            "s3://private-bucket/uploads/a.jpg",  # exists, bucket not allowed
            f"s3://{bucket}/uploads/../private/a.jpg",  # a dot part: never allowed
            f"s3://{bucket}/uploads/./a.jpg",
        )
    }
    assert {(answer.status_code, answer.content) for answer in answers.values()} == {(404, answers[missing].content)}
    assert "SEG_ALLOWED_BUCKETS" in assert_error(answers[missing], 404, "not_found")
    assert client.post("/segment?masks=none", json={"s3_uri": f"s3://{bucket}/uploads/a.jpg"}).status_code == 200


def test_s3_denied_reads_as_missing(client, configure, s3, bucket) -> None:
    s3.put_object(Bucket=bucket, Key="uploads/locked.jpg", Body=PHOTO)
    configure(allow_s3_uri=True, allowed_buckets=[bucket])
    missing = client.post("/segment", json={"s3_uri": f"s3://{bucket}/uploads/none.jpg"})
    with s3_answers(storage.s3_client(), "HeadObject", "uploads/locked.jpg", 403, "AccessDenied") as denied:
        locked = client.post("/segment", json={"s3_uri": f"s3://{bucket}/uploads/locked.jpg"})
    assert denied, "the simulated AccessDenied was never asked for"
    assert (locked.status_code, locked.content) == (missing.status_code, missing.content)
    assert missing.status_code == 404


def test_404_and_405_from_the_router(client: TestClient) -> None:
    assert "/nowhere" in assert_error(client.get("/nowhere"), 404, "not_found")
    response = client.get("/segment")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_413_body_over_the_limit_says_the_limit(client: TestClient, configure) -> None:
    configure(max_image_bytes=3000)
    limit = 3000 * 4 // 3 + 64 * 1024
    big = PHOTO * 4  # about 100 KB: over the body limit for 3000-byte images
    message = assert_error(client.post("/segment", **form(big)), 413, "request_too_large")
    assert str(limit) in message

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    response = client.post("/segment", content=chunked(), headers={"content-type": "image/jpeg"})
    assert "content-length" not in response.request.headers
    assert str(limit) in assert_error(response, 413, "request_too_large")


def test_413_image_bytes_or_pixels_over_the_limit(client: TestClient, configure) -> None:
    configure(max_image_bytes=len(PHOTO) - 1)
    message = assert_error(client.post("/segment", **form(PHOTO)), 413, "image_too_large")
    assert str(len(PHOTO) - 1) in message
    configure(max_pixels=10_000)
    assert_error(client.post("/segment", **form(png_header_only(20_000, 20_000))), 413, "too_many_pixels")


@pytest.mark.parametrize(
    ("content", "content_type", "code"),
    [
        (b"hello", "text/plain", "unsupported_media_type"),
        (b"hello", None, "unsupported_media_type"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "not_an_image"),
        (b"GIF89a" + b"\x00" * 32, "image/gif", "not_an_image"),
    ],
)
def test_415_not_an_image(client: TestClient, content: bytes, content_type: str | None, code: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    assert_error(client.post("/segment", content=content, headers=headers), 415, code)


def test_415_multipart_file_that_is_not_an_image(client: TestClient) -> None:
    assert_error(client.post("/segment", **form(b"just text", "notes.jpg")), 415, "not_an_image")


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("confidence=2", "confidence"),
        ("confidence=abc", "confidence"),
        ("masks=bitmap", "masks"),
        ("format=gif", "format"),
        ("classes=person,unicorn", "unicorn"),
    ],
)
def test_422_invalid_query(client: TestClient, query: str, needle: str) -> None:
    assert needle in assert_error(client.post(f"/segment?{query}", **form(PHOTO)), 422, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"{}",
        b'{"image_base64": "aGk=", "s3_uri": "s3://b/k"}',
        b'{"image_base64": "***"}',
        '{"image_base64": "\u00e9t\u00e9"}'.encode(),  # not ASCII: was a 500
        b'{"s3_uri": "https://example.com/a.jpg"}',
        b'{"s3_uri": "s3://bucket-only"}',
        b'{"image_base64": "aGk=", "extra": 1}',
        b"[]",
    ],
)
def test_422_invalid_json_body(client: TestClient, body: bytes) -> None:
    assert_error(
        client.post("/segment", content=body, headers={"content-type": "application/json"}), 422, "invalid_request"
    )


def test_422_multipart_without_the_image_file(client: TestClient) -> None:
    no_field = client.post("/segment", files={"photo": ("a.jpg", b"x", "image/jpeg")})
    assert "'image'" in assert_error(no_field, 422, "invalid_request")
    as_text = client.post("/segment", data={"image": "not a file"}, files={"other": ("a", b"x", "text/plain")})
    assert "file upload" in assert_error(as_text, 422, "invalid_request")
    no_boundary = client.post("/segment", content=b"--x--", headers={"content-type": "multipart/form-data"})
    assert_error(no_boundary, 422, "invalid_request")
    two = client.post(
        "/segment", files=[("image", ("a.jpg", PHOTO, "image/jpeg")), ("image", ("b.jpg", b"x", "text/plain"))]
    )
    assert "2 fields 'image'" in assert_error(two, 422, "invalid_request")


def test_422_corrupt_image(client: TestClient) -> None:
    truncated = encode(gradient(64, 48), "JPEG")[:300]
    assert_error(client.post("/segment", **form(truncated)), 422, "corrupt_image")


def test_503_when_too_many_requests_are_in_progress(client: TestClient, app_overrides) -> None:
    full = Admission(running=1, waiting=0)
    app_overrides[get_admission] = lambda: full
    with full.admit():
        response = client.post("/segment", **form(PHOTO))
    assert_error(response, 503, "busy")
    assert response.headers["retry-after"]
    assert full.admitted == 0


def test_500_unexpected_error_is_generic_and_logged(client, configure, bucket, caplog) -> None:
    configure(allow_s3_uri=True, allowed_buckets=[bucket])
    # S3 answers an error no retry can fix (an outage would be a 503: test_transient_errors.py)
    with TransientS3(400, "InvalidArgument") as broken, s3_at(broken.url):
        response = client.post("/segment", json={"s3_uri": f"s3://{bucket}/a.jpg"})
    message = assert_error(response, 500, "internal_error")
    assert "Traceback" not in response.text and "127.0.0.1" not in response.text
    assert "logged" in message
    logged = [record for record in caplog.records if record.message == "unexpected error"]
    assert len(logged) == 1 and logged[0].exc_info[0] is ClientError


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.binary(max_size=256),
    content_type=st.sampled_from(
        ["image/jpeg", "image/png", "application/json", "multipart/form-data; boundary=b", "text/plain", ""]
    ),
    query=st.dictionaries(
        st.sampled_from(["masks", "confidence", "classes", "format"]), st.text(max_size=12), max_size=3
    ),
)
def test_bad_input_is_never_a_500(client: TestClient, content: bytes, content_type: str, query: dict) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/segment", params=query, content=content, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    ErrorResponse.model_validate(response.json())


# --- admission -------------------------------------------------------------------------------------


def test_admission_bounds_running_jobs_and_refuses_beyond_the_queue() -> None:
    admission = Admission(running=2, waiting=1)
    release = threading.Event()
    lock = threading.Lock()
    running = peak = 0

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1

    def request() -> None:
        with admission.admit():
            admission.run(job)

    threads = [threading.Thread(target=request) for _ in range(3)]
    for thread in threads:
        thread.start()
    while admission.admitted < 3:
        threading.Event().wait(0.01)
    with pytest.raises(ServiceBusy), admission.admit():
        pass
    release.set()
    for thread in threads:
        thread.join(5)
    assert peak == 2
    assert admission.admitted == 0


# --- GET routes ------------------------------------------------------------------------------------


def test_healthz(client: TestClient, segmenter) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    health = HealthResponse.model_validate(response.json())
    assert health.status == "ok" and health.version == handler.__version__
    assert health.model.loaded and health.model.name == "pointrend_resnet50"
    assert health.model.sha256 == segmenter.model_sha256
    assert health.defaults.max_image_bytes == get_settings().max_image_bytes


def test_openapi_and_docs_publish_the_real_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    segment = spec["paths"]["/segment"]["post"]
    assert set(segment["requestBody"]["content"]) == {"multipart/form-data", "image/*", "application/json"}
    ok = segment["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/SegmentResponse")
    assert "image/png" in ok and "application/zip" in ok
    assert {"400", "403", "404", "413", "415", "422"} <= set(segment["responses"])
    assert {param["name"] for param in segment["parameters"]} == {
        "masks",
        "confidence",
        "classes",
        "format",
        "cutouts",
        "overlay",
        "overlay_max_side",
    }
    overlay = spec["components"]["schemas"]["SegmentResponse"]["properties"]["overlay_png_base64"]
    assert "overlay=true" in overlay["description"]
    seed = spec["components"]["schemas"]["SeedResponse"]
    assert tuple(sorted(seed["properties"])) == SEED_KEYS
    assert "/healthz" in spec["paths"] and "/segmentapi" in spec["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_docs_page_loads_only_files_of_this_app(client: TestClient) -> None:
    """Swagger UI from the package (fastapi-offline's files), nothing from a CDN, no inline script."""
    docs = client.get("/docs")
    html = docs.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(not re.match(r"[a-z]+:|//", source) for source in sources), sources
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="static/swagger-ui/swagger-ui-bundle.js">',
        '<script src="static/docs.js">',
    ]
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "img-src 'self' data:;" in csp
    for source in sources:
        asset = client.get(f"/{source}")
        assert asset.status_code == 200 and len(asset.content) > 100, source
    assert (
        client.get("/static/swagger-ui/swagger-ui-bundle.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    assert client.get("/redoc").status_code == 404


def test_page_has_security_headers_and_no_inline_or_external_code(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    assert html.count("<script") == html.count('<script src="static/') == 1
    assert re.search(r"\son[a-z]+\s*=", html) is None  # no inline event handlers
    assert "<style" not in html and "style=" not in html
    for asset, kind in (
        ("static/app.js", "javascript"),
        ("static/jobs.js", "javascript"),
        ("static/style.css", "text/css"),
    ):
        response = client.get(f"/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "http://" not in response.text and "https://" not in response.text
    assert "http://" not in html and "https://" not in html


def test_json_errors_carry_the_security_headers_too(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in response.headers
