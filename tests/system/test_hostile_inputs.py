"""Hostile inputs through every way in, on the real (random) test model and moto server.

Each HTTP case goes through FastAPI's TestClient and, as an API Gateway HTTP API (payload 2.0) event, through
``lambda_handler`` (Mangum); each malformed API Gateway event through ``lambda_handler``; each S3 case as an
S3 notification (or SQS / EventBridge) against moto. Every case gets its documented answer: the 4xx JSON
error (or 200 for odd but valid input), an error record or a skip for S3, or for an event that names no
object a typed error that says what is wrong. Never a 500, never a traceback in what comes back, no
admission slot left taken, and the next valid request succeeds.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import pytest
from conftest import IMAGES, FakeLambdaContext, read_event
from fastapi.testclient import TestClient
from imaging import (
    animated,
    encode,
    gradient,
    jpeg_with_corrupt_exif,
    jpeg_with_huge_exif,
    multipart,
    png_16bit_grey,
    png_16bit_rgb,
    png_header_only,
)

from handler.api import app
from handler.api.admission import get_admission
from handler.api.models import ErrorResponse, SegmentResponse
from handler.core import storage
from handler.core.settings import get_settings

PHOTO = (IMAGES / "astronaut.jpg").read_bytes()
SMALL = encode(gradient(64, 48), "JPEG")
TRUNCATED = encode(gradient(256, 256), "JPEG")[:400]
MP_IMAGE, MP_TYPE = multipart([("image", "photo.jpg", SMALL)])
TRACES = ("Traceback", 'File "', '.py", line')


@pytest.fixture(scope="module")
def buckets(moto_endpoint: str) -> dict[str, str]:
    """An allowed bucket and another one, each with the photo; the allowed one also holds a text file."""
    s3 = storage.s3_client()
    names = {"allowed": "hostile-allowed", "other": "hostile-other"}
    for name in names.values():
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="photo.jpg", Body=PHOTO)
    s3.put_object(Bucket=names["allowed"], Key="notes.txt", Body=b"a shopping list, not a photo")
    return names


@pytest.fixture
def configure(settings, buckets) -> Iterator[Callable[..., None]]:
    """Settings for one case through the app's dependency (TestClient and lambda_handler alike)."""

    def override(**changes: Any) -> None:
        changes.setdefault("allowed_buckets", [buckets["allowed"]])
        changes.setdefault("allow_s3_uri", True)
        app.dependency_overrides[get_settings] = lambda: settings.model_copy(update=changes)

    yield override
    app.dependency_overrides.clear()


def assert_clean(text: str) -> None:
    for trace in TRACES:
        assert trace not in text, text[:2000]


def assert_answer(status: int, headers: dict[str, str], text: str, expected: int, code: str | None) -> dict:
    """The documented answer: ``expected`` status, JSON, the error ``code`` (or a result), no traceback."""
    assert status == expected, text[:1000]
    assert status < 500
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert_clean(text)
    body = json.loads(text)
    if code is None:
        SegmentResponse.model_validate(body)
    else:
        error = ErrorResponse.model_validate(body).error
        assert error.code == code, error
        assert 0 < len(error.message) < 1000  # says what is wrong without echoing a huge input back
    assert get_admission().admitted == 0  # no admission slot leaked
    return body


# --- HTTP: the same request through TestClient and through lambda_handler ------------------------------


@dataclass(frozen=True)
class Http:
    """One request. ``{allowed}`` / ``{other}`` in the body stand for the moto buckets."""

    id: str
    status: int
    code: str | None  # None: a 200 with the result schema
    body: bytes = b""
    content_type: str | None = None
    query: str = "masks=none"
    method: str = "POST"
    path: str = "/segment"
    headers: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None  # (width, height) a 200 must report


def part(name: str, filename: str | None, data: bytes) -> tuple[str, str | None, bytes]:
    return (name, filename, data)


def json_body(value: Any) -> bytes:
    return json.dumps(value).encode()


LIMITED = {"max_image_bytes": 3000}  # body limit 3000 * 4 // 3 + 64 KiB
LIMIT = 3000 * 4 // 3 + 64 * 1024

HTTP_CASES = [
    # empty, text, HTML
    Http("empty-raw-body", 400, "empty_image", b"", "image/jpeg"),
    Http("empty-multipart-file", 400, "empty_image", *multipart([part("image", "a.jpg", b"")])),
    Http("empty-body-no-content-type", 415, "unsupported_media_type", b""),
    Http("text-plain", 415, "unsupported_media_type", b"hello", "text/plain"),
    Http("html", 415, "unsupported_media_type", b"<html><script>alert(1)</script></html>", "text/html"),
    Http("html-as-jpeg", 415, "not_an_image", b"<html><script>alert(1)</script></html>", "image/jpeg"),
    Http("svg", 415, "not_an_image", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
    # broken, huge, tiny and unusual images
    Http("truncated-jpeg", 422, "corrupt_image", TRUNCATED, "image/jpeg"),
    Http("truncated-png", 422, "corrupt_image", encode(gradient(256, 256), "PNG")[:200], "image/png"),
    Http("png-claims-50000x50000", 413, "too_many_pixels", png_header_only(50_000, 50_000), "image/png"),
    Http("one-pixel", 200, None, encode(gradient(1, 1), "PNG"), "image/png", size=(1, 1)),
    Http("sliver-1x5000", 422, "unsupported_image", encode(gradient(1, 5000), "PNG"), "image/png"),
    Http("png-16-bit-grey", 200, None, png_16bit_grey(), "image/png", size=(64, 48)),
    Http("png-16-bit-rgb", 200, None, png_16bit_rgb(), "image/png", size=(64, 48)),
    Http("cmyk-jpeg", 200, None, encode(gradient().convert("CMYK"), "JPEG"), "image/jpeg", size=(64, 48)),
    Http("animated-gif", 415, "not_an_image", animated("GIF"), "image/gif"),
    Http("animated-png", 200, None, animated("PNG"), "image/png", size=(32, 32)),
    Http("animated-webp", 200, None, animated("WEBP"), "image/webp", size=(32, 32)),
    # orientation 6 of a 64x48 stored image: shown (and segmented) as 48x64
    Http("huge-exif", 200, None, jpeg_with_huge_exif(gradient(64, 48)), "image/jpeg", size=(48, 64)),
    Http("corrupt-exif", 200, None, jpeg_with_corrupt_exif(gradient(64, 48)), "image/jpeg", size=(64, 48)),
    # wrong Content-Type
    Http("png-labelled-jpeg", 200, None, encode(gradient(), "PNG"), "image/jpeg", size=(64, 48)),
    Http("jpeg-labelled-json", 422, "invalid_request", SMALL, "application/json"),
    Http("jpeg-labelled-octet-stream", 415, "unsupported_media_type", SMALL, "application/octet-stream"),
    Http("json-labelled-image", 415, "not_an_image", json_body({"image_base64": "aGk="}), "image/png"),
    Http("jpeg-labelled-multipart", 422, "invalid_request", SMALL, "multipart/form-data; boundary=x"),
    Http("header-name-upper-case", 200, None, SMALL, headers={"CONTENT-TYPE": "image/jpeg"}, size=(64, 48)),
    Http("media-type-upper-case-with-params", 200, None, SMALL, "IMAGE/JPEG; charset=latin-1", size=(64, 48)),
    # multipart
    Http("multipart-without-image", 422, "invalid_request", *multipart([part("photo", "a.jpg", SMALL)])),
    Http("multipart-image-as-text", 422, "invalid_request", *multipart([part("image", None, b"not a file")])),
    Http(
        "multipart-two-image-files",
        422,
        "invalid_request",
        *multipart([part("image", "a.jpg", SMALL), part("image", "b.jpg", SMALL)]),
    ),
    Http(
        "multipart-image-and-another-file",
        200,
        None,
        *multipart([part("other", "notes.txt", b"text"), part("image", "a.jpg", SMALL)]),
        size=(64, 48),
    ),
    Http(
        "multipart-enormous-filename",
        200,
        None,
        *multipart([part("image", "x" * 100_000 + ".jpg", SMALL)]),
        size=(64, 48),
    ),
    Http(
        "multipart-path-filename",
        200,
        None,
        *multipart([part("image", "../../../../etc/cron.d/evil", SMALL)]),
        size=(64, 48),
    ),
    Http("multipart-without-boundary", 422, "invalid_request", b"--x--", "multipart/form-data"),
    Http("multipart-garbage", 422, "invalid_request", b"\x00garbage" * 100, "multipart/form-data; boundary=zz"),
    Http(
        "multipart-too-many-fields",
        422,
        "invalid_request",
        *multipart([part(f"f{n}", None, b"x") for n in range(40)] + [part("image", "a.jpg", SMALL)]),
    ),
    Http(
        "multipart-unknown-charset",
        200,
        None,
        MP_IMAGE,
        MP_TYPE + "; charset=no-such-charset",
        size=(64, 48),
    ),
    # JSON
    Http("base64-invalid", 422, "invalid_request", json_body({"image_base64": "***"}), "application/json"),
    Http("base64-bad-padding", 422, "invalid_request", json_body({"image_base64": "aGk"}), "application/json"),
    Http("base64-not-ascii", 422, "invalid_request", '{"image_base64": "été"}'.encode(), "application/json"),
    Http("json-array", 422, "invalid_request", b'[{"image_base64": "aGk="}]', "application/json"),
    Http("json-string", 422, "invalid_request", b'"aGk="', "application/json"),
    Http("json-number", 422, "invalid_request", b"42", "application/json"),
    Http("json-null", 422, "invalid_request", b"null", "application/json"),
    Http("json-malformed", 422, "invalid_request", b'{"image_base64": ', "application/json"),
    Http("json-deeply-nested", 422, "invalid_request", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    Http("json-utf16", 422, "invalid_request", '{"image_base64": "aGk="}'.encode("utf-16"), "application/json"),
    Http(
        "json-both-fields",
        422,
        "invalid_request",
        b'{"image_base64": "aGk=", "s3_uri": "s3://b/k"}',
        "application/json",
    ),
    Http("json-unknown-field", 422, "invalid_request", b'{"image_base64": "aGk=", "path": "/etc"}', "application/json"),
    # s3_uri
    # a bucket not allowed gets the answer a missing object gets: no way to tell which keys exist
    Http("s3-bucket-not-allowed", 404, "not_found", b'{"s3_uri": "s3://{other}/photo.jpg"}', "application/json"),
    Http(
        "s3-dotdot-out-of-allowed",
        404,
        "not_found",
        b'{"s3_uri": "s3://{allowed}/../{other}/photo.jpg"}',
        "application/json",
    ),
    Http(
        "s3-dotdot-into-allowed",
        404,
        "not_found",
        b'{"s3_uri": "s3://{other}/../{allowed}/photo.jpg"}',
        "application/json",
    ),
    Http(
        "s3-encoded-dotdot",
        404,
        "not_found",
        b'{"s3_uri": "s3://{allowed}/%2e%2e/{other}/photo.jpg"}',
        "application/json",
    ),
    Http("s3-userinfo-trick", 404, "not_found", b'{"s3_uri": "s3://{allowed}@{other}/photo.jpg"}', "application/json"),
    Http("s3-bucket-case", 404, "not_found", b'{"s3_uri": "s3://HOSTILE-ALLOWED/photo.jpg"}', "application/json"),
    Http("s3-file-url", 422, "invalid_request", b'{"s3_uri": "file:///etc/passwd"}', "application/json"),
    Http("s3-http-url", 422, "invalid_request", b'{"s3_uri": "http://169.254.169.254/latest/"}', "application/json"),
    Http("s3-no-bucket", 422, "invalid_request", b'{"s3_uri": "s3:///etc/passwd"}', "application/json"),
    Http("s3-no-key", 422, "invalid_request", b'{"s3_uri": "s3://{allowed}"}', "application/json"),
    Http("s3-huge-uri", 422, "invalid_request", json_body({"s3_uri": "s3://" + "b" * 100_000}), "application/json"),
    Http("s3-missing-object", 404, "not_found", b'{"s3_uri": "s3://{allowed}/nothing.jpg"}', "application/json"),
    Http("s3-object-not-an-image", 415, "not_an_image", b'{"s3_uri": "s3://{allowed}/notes.txt"}', "application/json"),
    Http(
        "s3-object-over-byte-limit",
        413,
        "image_too_large",
        b'{"s3_uri": "s3://{allowed}/photo.jpg"}',
        "application/json",
        settings=LIMITED,
    ),
    # byte limits: the body cap, then the image cap
    Http(
        "body-one-byte-over-the-limit", 413, "request_too_large", b"\xff" * (LIMIT + 1), "image/jpeg", settings=LIMITED
    ),
    Http("body-exactly-the-limit", 413, "image_too_large", b"\xff" * LIMIT, "image/jpeg", settings=LIMITED),
    Http("image-over-byte-limit", 413, "image_too_large", PHOTO, "image/jpeg", settings=LIMITED),
    Http(
        "content-length-claims-10-gb",
        413,
        "request_too_large",
        SMALL,
        "image/jpeg",
        headers={"content-length": "10000000000"},
    ),
    # query, routes, methods
    Http("confidence-nan", 422, "invalid_request", SMALL, "image/jpeg", query="confidence=nan"),
    Http("confidence-huge", 422, "invalid_request", SMALL, "image/jpeg", query="confidence=1e999"),
    Http("unknown-class", 422, "invalid_request", SMALL, "image/jpeg", query="classes=person,%00unicorn"),
    Http("overlay-not-a-bool", 422, "invalid_request", SMALL, "image/jpeg", query="overlay=perhaps"),
    Http("get-segment", 405, "method_not_allowed", method="GET"),
    Http("unknown-route", 404, "not_found", SMALL, "image/jpeg", path="/segment/../../etc/passwd"),
    Http("segmentapi-raw-body", 415, "unsupported_media_type", SMALL, "image/jpeg", path="/segmentapi", query=""),
]


def resolve(case: Http, buckets: dict[str, str]) -> bytes:
    body = case.body
    for name, bucket in buckets.items():
        body = body.replace(f"{{{name}}}".encode(), bucket.encode())
    return body


def request_headers(case: Http, body: bytes) -> dict[str, str]:
    headers = {"content-type": case.content_type} if case.content_type is not None else {}
    return {**headers, **case.headers}


def http_event(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event carrying this request, as API Gateway sends a binary body."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
            "content-length": str(len(body)),
            **headers,
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7"},
            "requestId": "hostile",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 1795774530123,
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def valid_event() -> dict[str, Any]:
    return http_event("POST", "/segment", "masks=none&confidence=1", {"content-type": "image/jpeg"}, SMALL)


def assert_next_request_succeeds(lambda_handler: Callable[..., dict[str, Any]]) -> None:
    """A valid request right after, through the Lambda entry point (one model run per case keeps the suite
    fast; the TestClient path gets its next request from the next case, valid ones included)."""
    app.dependency_overrides.clear()
    answer = lambda_handler(valid_event(), FakeLambdaContext())
    assert_answer(answer["statusCode"], answer["headers"], answer["body"], 200, None)


@pytest.mark.parametrize("case", HTTP_CASES, ids=[case.id for case in HTTP_CASES])
def test_http(case: Http, client: TestClient, lambda_handler, configure, buckets) -> None:
    configure(**case.settings)
    body = resolve(case, buckets)
    headers = request_headers(case, body)
    url = f"{case.path}?{case.query}" if case.query else case.path

    response = client.request(case.method, url, content=body, headers=headers)
    through_client = assert_answer(response.status_code, dict(response.headers), response.text, case.status, case.code)

    answer = lambda_handler(http_event(case.method, case.path, case.query, headers, body), FakeLambdaContext())
    assert answer["isBase64Encoded"] is False
    through_lambda = assert_answer(answer["statusCode"], answer["headers"], answer["body"], case.status, case.code)

    if case.code is None:
        assert through_lambda == {**through_client, "timings_ms": through_lambda["timings_ms"]}
        if case.size:
            assert (through_client["image"]["width"], through_client["image"]["height"]) == case.size
    assert_next_request_succeeds(lambda_handler)


# --- API Gateway events that API Gateway itself would never send -----------------------------------------


def sample(name: str = "apigw-http-multipart.json") -> dict[str, Any]:
    return read_event(name)


def edited(edit: Callable[[dict[str, Any]], Any], name: str = "apigw-http-multipart.json") -> dict[str, Any]:
    event = copy.deepcopy(sample(name))
    edit(event)
    return event


def rename_header(event: dict[str, Any], old: str, new: str) -> None:
    event["headers"][new] = event["headers"].pop(old)


def rest_headers_as_lists(event: dict[str, Any]) -> None:
    event["multiValueHeaders"] = {"Content-Type": [event["headers"].pop("content-type")]}
    event["headers"] = None


EVENT_CASES: list[tuple[str, Callable[[], dict[str, Any]], int, str | None]] = [
    ("headers-missing", lambda: edited(lambda e: e.pop("headers")), 415, "unsupported_media_type"),
    ("headers-null", lambda: edited(lambda e: e.update(headers=None)), 400, "malformed_event"),
    ("header-value-not-a-string", lambda: edited(lambda e: e["headers"].update(accept=5)), 400, "malformed_event"),
    ("request-context-http-missing", lambda: edited(lambda e: e["requestContext"].pop("http")), 400, "malformed_event"),
    (
        "source-ip-missing",
        lambda: edited(lambda e: e["requestContext"]["http"].pop("sourceIp")),
        400,
        "malformed_event",
    ),
    ("body-missing", lambda: edited(lambda e: e.pop("body")), 422, "invalid_request"),
    ("body-a-number", lambda: edited(lambda e: e.update(body=12345)), 400, "malformed_event"),
    (
        "base64-flag-true-body-not-base64",
        lambda: edited(lambda e: e.update(body="~~not base64~~")),
        400,
        "malformed_event",
    ),
    (
        "base64-flag-false-body-base64",
        lambda: edited(lambda e: e.update(isBase64Encoded=False)),
        422,
        "invalid_request",
    ),
    ("base64-flag-missing", lambda: edited(lambda e: e.pop("isBase64Encoded")), 422, "invalid_request"),
    ("header-name-title-case", lambda: edited(lambda e: rename_header(e, "content-type", "Content-Type")), 200, None),
    ("header-name-upper-case", lambda: edited(lambda e: rename_header(e, "content-type", "CONTENT-TYPE")), 200, None),
    ("host-header-two-colons", lambda: edited(lambda e: e["headers"].update(host="a:b:c")), 400, "malformed_event"),
    (
        "query-bad-percent-encoding",
        lambda: edited(lambda e: e.update(rawQueryString="confidence=%ZZ&&=")),
        422,
        "invalid_request",
    ),
    ("version-1-without-path", lambda: edited(lambda e: e.update(version="1.0")), 400, "malformed_event"),
    (
        "rest-without-http-method",
        lambda: edited(lambda e: e.pop("httpMethod"), "apigw-rest-multipart.json"),
        400,
        "malformed_event",
    ),
    ("rest-headers-only-as-lists", lambda: edited(rest_headers_as_lists, "apigw-rest-multipart.json"), 200, None),
]


@pytest.mark.parametrize(("name", "make", "status", "code"), EVENT_CASES, ids=[case[0] for case in EVENT_CASES])
def test_api_gateway_event(name: str, make, status: int, code: str | None, lambda_handler) -> None:
    answer = lambda_handler(make(), FakeLambdaContext())
    assert_answer(answer["statusCode"], answer["headers"], answer["body"], status, code)
    assert_next_request_succeeds(lambda_handler)


# --- S3 uploads --------------------------------------------------------------------------------------


def s3_event(bucket: str, key_in_event: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    event = read_event("s3-put.json")
    record = event["Records"][0]
    record["eventName"] = event_name
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"]["key"] = key_in_event
    return event


def results_for(s3: Any, bucket: str, key: str) -> set[str]:
    stem = "results/" + key.removeprefix("uploads/")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=stem).get("Contents", [])
    return {item["Key"] for item in listed if item["Key"] in {stem + ".json", stem + ".png", stem + ".error.json"}}


def assert_next_upload_succeeds(s3: Any, bucket: str, lambda_handler) -> None:
    s3.put_object(Bucket=bucket, Key="uploads/next.jpg", Body=SMALL)
    answer = lambda_handler(s3_event(bucket, "uploads/next.jpg"), FakeLambdaContext())
    assert [item["outcome"] for item in answer["objects"]] == ["segmented"]
    assert results_for(s3, bucket, "uploads/next.jpg") == {"results/next.jpg.json", "results/next.jpg.png"}


@dataclass(frozen=True)
class Upload:
    """An object put at ``key`` (unless ``data`` is None) and an S3 notification naming it."""

    id: str
    key: str
    data: bytes | None
    outcome: str  # segmented | error_record | skipped
    code: str | None = None  # of the error record
    event_name: str = "ObjectCreated:Put"
    encoded_key: str | None = None  # the key as the event carries it; default: as S3 encodes it


UPLOAD_CASES = [
    Upload("zero-byte-object", "uploads/empty.jpg", b"", "error_record", "empty_image"),
    Upload("text-object", "uploads/notes.jpg", b"not an image", "error_record", "not_an_image"),
    Upload("truncated-jpeg", "uploads/broken.jpg", TRUNCATED, "error_record", "corrupt_image"),
    Upload(
        "png-claims-50000x50000", "uploads/bomb.png", png_header_only(50_000, 50_000), "error_record", "too_many_pixels"
    ),
    Upload(
        "sliver-1x5000", "uploads/sliver.png", encode(gradient(1, 5000), "PNG"), "error_record", "unsupported_image"
    ),
    Upload("deleted-before-read", "uploads/gone.jpg", None, "error_record", "not_found"),
    Upload("unknown-event-name", "uploads/a.jpg", SMALL, "skipped", event_name="ObjectRemoved:Delete"),
    Upload(
        "unknown-event-name-replication", "uploads/b.jpg", SMALL, "skipped", event_name="Replication:OperationFailed"
    ),
    Upload("event-name-copy", "uploads/copy.jpg", SMALL, "segmented", event_name="ObjectCreated:Copy"),
    Upload("folder-marker", "uploads/folder/", b"", "skipped"),
    Upload("key-with-percent", "uploads/100% cotton.jpg", SMALL, "segmented"),
    Upload("key-with-plus", "uploads/a+b=c.jpg", SMALL, "segmented"),
    Upload("key-unicode", "uploads/café/日本 🐱 über.jpg", SMALL, "segmented"),
    Upload("key-unicode-nfd", "uploads/cafe\u0301.jpg", SMALL, "segmented"),
    Upload("key-percent-not-encoded", "uploads/%ZZ.jpg", SMALL, "segmented", encoded_key="uploads/%ZZ.jpg"),
    Upload("key-with-dotdot", "uploads/../results/x.jpg", SMALL, "segmented"),
    Upload("key-very-long", "uploads/" + "k" * 1000 + ".jpg", SMALL, "segmented"),
    Upload("key-too-long-for-results", "uploads/" + "k" * 1010 + ".jpg", SMALL, "skipped"),
    Upload("key-with-quotes-and-spaces", 'uploads/it\'s "quoted" (1) & <b>.jpg', SMALL, "segmented"),
]


@pytest.mark.parametrize("case", UPLOAD_CASES, ids=[case.id for case in UPLOAD_CASES])
def test_s3_upload(case: Upload, s3, bucket, lambda_handler) -> None:
    if case.data is not None:
        s3.put_object(Bucket=bucket, Key=case.key, Body=case.data)
    encoded = case.encoded_key if case.encoded_key is not None else quote_plus(case.key, safe="/")
    answer = lambda_handler(s3_event(bucket, encoded, case.event_name), FakeLambdaContext())
    assert_clean(json.dumps(answer))
    (processed,) = answer["objects"]
    assert processed["key"] == case.key  # decoded exactly as S3 encoded it
    assert processed["outcome"] == case.outcome, processed
    written = results_for(s3, bucket, case.key)
    stem = "results/" + case.key.removeprefix("uploads/")
    if case.outcome == "segmented":
        assert written == {stem + ".json", stem + ".png"}
        body = json.loads(s3.get_object(Bucket=bucket, Key=stem + ".json")["Body"].read())
        assert body["source"]["key"] == case.key
    elif case.outcome == "error_record":
        assert written == {stem + ".error.json"}
        record = s3.get_object(Bucket=bucket, Key=stem + ".error.json")["Body"].read().decode()
        assert_clean(record)
        assert json.loads(record)["error"]["code"] == case.code
        assert processed["reason"].startswith(case.code)
    else:
        assert written == set() and processed["reason"]
    assert_next_upload_succeeds(s3, bucket, lambda_handler)


def sqs(*bodies: str) -> dict[str, Any]:
    template = read_event("sqs-s3.json")["Records"][0]
    return {"Records": [{**template, "messageId": f"m{n}", "body": body} for n, body in enumerate(bodies)]}


def s3_record(**fields: Any) -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:s3", **fields}]}


# (id, event, what must happen: the name of the exception the handler raises, or the SQS message ids it lists)
EVENT_SHAPES: list[tuple[str, Callable[[str], Any], str | list[str]]] = [
    ("records-missing", lambda bucket: {}, "UnclaimedEvent"),
    ("records-empty", lambda bucket: {"Records": []}, "UnclaimedEvent"),
    ("records-null", lambda bucket: {"Records": None}, "UnclaimedEvent"),
    ("record-without-s3", lambda bucket: s3_record(eventName="ObjectCreated:Put"), "MalformedRecord"),
    (
        "record-without-key",
        lambda bucket: s3_record(eventName="ObjectCreated:Put", s3={"bucket": {"name": bucket}, "object": {}}),
        "MalformedRecord",
    ),
    (
        "record-with-empty-bucket",
        lambda bucket: s3_record(eventName="ObjectCreated:Put", s3={"bucket": {"name": ""}, "object": {"key": "k"}}),
        "MalformedRecord",
    ),
    (
        "eventbridge-without-bucket",
        lambda bucket: {"source": "aws.s3", "detail-type": "Object Created", "detail": {"object": {"key": "k"}}},
        "MalformedRecord",
    ),
    ("sqs-body-not-json", lambda bucket: sqs("{not json"), ["m0"]),
    ("sqs-body-not-s3", lambda bucket: sqs("{}", json.dumps({"hello": "world"})), ["m0", "m1"]),
    ("sqs-body-malformed-record", lambda bucket: sqs(json.dumps(s3_record(eventName="x"))), ["m0"]),
]


@pytest.mark.parametrize(("name", "make", "expected"), EVENT_SHAPES, ids=[case[0] for case in EVENT_SHAPES])
def test_s3_event_shape(name: str, make, expected, s3, bucket, lambda_handler) -> None:
    event = make(bucket)
    if isinstance(expected, list):
        answer = lambda_handler(event, FakeLambdaContext())
        assert [item["itemIdentifier"] for item in answer["batchItemFailures"]] == expected
        assert_clean(json.dumps(answer))
    else:
        # An event that names no object cannot get an error record: it fails with a typed error that says
        # what is wrong (Lambda retries it, then keeps it in the on-failure destination).
        with pytest.raises(ValueError) as raised:
            lambda_handler(event, FakeLambdaContext())
        assert type(raised.value).__name__ == expected
        assert str(raised.value).startswith(("malformed", "no handler for this event"))
        assert_clean(str(raised.value))
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # nothing written
    assert_next_upload_succeeds(s3, bucket, lambda_handler)


def test_there_are_enough_cases() -> None:
    total = len(HTTP_CASES) + len(EVENT_CASES) + len(UPLOAD_CASES) + len(EVENT_SHAPES)
    assert total >= 30, total
