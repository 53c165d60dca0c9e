"""Every sample HTTP event in events/ through ``lambda_handler`` (Mangum -> FastAPI), as Lambda calls it."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import re
import zipfile
from typing import Any

import pytest
from conftest import EVENTS, FakeLambdaContext, read_event
from PIL import Image
from pydantic import BaseModel

from handler.api.models import ErrorResponse, HealthResponse, SeedResponse, SegmentResponse
from handler.core.deadline import TimeBudget, reference_ms
from handler.core.settings import DetectionSpeed
from handler.engine.results import SEED_KEYS

HTTP_EVENTS = sorted(path for path in EVENTS.glob("*.json") if path.name.startswith(("apigw-", "function-url", "alb-")))

# name -> (status, content type, schema of a JSON body or None for the PNG)
EXPECTED: dict[str, tuple[int, str, type[BaseModel] | None]] = {
    "apigw-http-multipart.json": (200, "application/json", SegmentResponse),
    "apigw-http-png.json": (200, "image/png", None),
    "apigw-http-segmentapi.json": (200, "application/json", SeedResponse),
    "apigw-http-bad-image.json": (415, "application/json", ErrorResponse),
    "apigw-http-healthz.json": (200, "application/json", HealthResponse),
    "apigw-rest-multipart.json": (200, "application/json", SegmentResponse),
    "function-url-raw-jpeg.json": (200, "application/json", SegmentResponse),
    "alb-multipart.json": (200, "application/json", SegmentResponse),
    "alb-multi-value-png.json": (200, "image/png", None),
    "alb-healthz.json": (200, "application/json", HealthResponse),
}


def answer_headers(response: dict[str, Any]) -> dict[str, str]:
    """The answer's headers, from ``multiValueHeaders`` where the front reads only those (an ALB target group
    with multi-value headers on: every header there, none in ``headers``)."""
    if "multiValueHeaders" in response and "headers" not in response:
        assert all(len(values) == 1 for values in response["multiValueHeaders"].values())
        return {name.lower(): values[0] for name, values in response["multiValueHeaders"].items()}
    return response["headers"]


def request_headers(event: dict[str, Any]) -> dict[str, str]:
    if "headers" in event:
        return event["headers"]
    return {name: values[0] for name, values in event["multiValueHeaders"].items()}


def load(name: str) -> dict[str, Any]:
    return read_event(name)


def sent_image(event: dict[str, Any]) -> bytes | None:
    """The image bytes inside the request the event carries (the one file of a multipart form, or raw)."""
    if not event.get("body"):
        return None
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    content_type = request_headers(event)["content-type"]
    if not content_type.startswith("multipart/form-data"):
        return body
    boundary = content_type.split("boundary=", 1)[1].encode()
    part = body.split(b"--" + boundary)[1]
    return part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")


def test_every_http_event_has_an_expectation() -> None:
    assert {path.name for path in HTTP_EVENTS} == set(EXPECTED)


def test_the_events_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_http_events", EVENTS / "make_http_events.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for name, event in generator.sample_events().items():
        assert (EVENTS / name).read_text() == generator.render(event), f"stale {name}: regenerate it"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_http_event(lambda_handler, name: str) -> None:
    event = load(name)
    status, content_type, schema = EXPECTED[name]
    response = lambda_handler(event, FakeLambdaContext())
    headers = answer_headers(response)

    assert response["statusCode"] == status, response["body"][:500]
    assert headers["content-type"] == content_type
    assert headers["x-content-type-options"] == "nosniff"
    if "resource" in event or "multiValueHeaders" in event:  # REST API and multi-value ALB answers
        assert "multiValueHeaders" in response
    if "elb" in event["requestContext"]:  # an ALB reads either headers or multiValueHeaders, as the request came
        assert ("multiValueHeaders" in response) == ("multiValueHeaders" in event)
        assert ("headers" in response) == ("headers" in event)
    sent = sent_image(event)
    if sent is not None and status == 200:
        assert headers["x-image-sha256"] == hashlib.sha256(sent).hexdigest()
    if schema is None:
        assert response["isBase64Encoded"] is True
        overlay = Image.open(io.BytesIO(base64.b64decode(response["body"], validate=True)))
        assert overlay.format == "PNG"
        assert overlay.size == Image.open(io.BytesIO(sent)).size
        return
    assert response["isBase64Encoded"] is False
    body = json.loads(response["body"])
    schema.model_validate(body)
    if schema is SeedResponse:
        assert tuple(sorted(body)) == SEED_KEYS
    if schema is SegmentResponse:
        width, height = Image.open(io.BytesIO(sent)).size
        assert body["image"] == {"width": width, "height": height}


def test_function_url_query_reaches_the_route(lambda_handler) -> None:
    body = json.loads(lambda_handler(load("function-url-raw-jpeg.json"), FakeLambdaContext())["body"])
    assert "polygons" in body and "masks" not in body  # the event asks for masks=polygons


def test_alb_query_reaches_the_route(lambda_handler) -> None:
    body = json.loads(lambda_handler(load("alb-multipart.json"), FakeLambdaContext())["body"])
    assert "polygons" in body and "masks" not in body  # the event asks for masks=polygons


def test_alb_query_values_are_decoded_once(lambda_handler) -> None:
    """An ALB passes query values as the client encoded them (it decodes nothing): person%2Cdog is one list."""
    event = load("alb-healthz.json") | {"path": "/segment", "httpMethod": "POST"}
    event["queryStringParameters"] = {"classes": "person%2Cunicorn"}
    response = lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 422
    assert "['unicorn']" in json.loads(response["body"])["error"]["message"]


def test_alb_answer_over_its_1_mb_is_a_413_not_a_bare_502(lambda_handler, monkeypatch) -> None:
    from handler.api import lambda_http
    from handler.core import metrics

    names = ("alb-multipart.json", "alb-multi-value-png.json")
    sizes = [len(json.dumps(lambda_handler(load(name), FakeLambdaContext()))) for name in names]
    # a limit between them, with room for the few bytes by which timings change an answer's length
    limit = len(json.dumps(lambda_handler(load("alb-healthz.json"), FakeLambdaContext()))) + 64
    assert limit < min(sizes)
    monkeypatch.setattr(lambda_http, "ALB_RESPONSE_BYTES", limit)  # the same check, with a lower limit
    counted: list[tuple[str, str]] = []
    monkeypatch.setattr(metrics, "record_error", lambda entry_point, code: counted.append((entry_point, code)))
    assert lambda_handler(load("alb-healthz.json"), FakeLambdaContext())["statusCode"] == 200
    for name in names:
        event = load(name)
        response = lambda_handler(event, FakeLambdaContext())
        assert response["statusCode"] == 413
        error = json.loads(response["body"])["error"]
        assert error["code"] == "response_too_large" and f"over the {limit}-byte limit" in error["message"]
        headers = answer_headers(response)
        assert headers["content-type"] == "application/json"
        assert (
            headers["x-content-type-options"] == "nosniff"
            and "default-src 'self'" in headers["content-security-policy"]
        )
        assert ("multiValueHeaders" in response) == ("multiValueHeaders" in event)
    assert counted == [("http", "response_too_large")] * len(names)  # counted like every other error answer


def test_a_malformed_alb_event_is_a_400(lambda_handler) -> None:
    event = load("alb-multi-value-png.json")
    del event["httpMethod"]
    response = lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "malformed_event"
    assert answer_headers(response)["content-type"] == "application/json"


def test_too_little_time_left_is_a_503_before_the_model_runs(lambda_handler) -> None:
    response = lambda_handler(load("apigw-http-multipart.json"), FakeLambdaContext(remaining_ms=200))
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"]
    assert json.loads(response["body"])["error"]["code"] == "out_of_time"


class ReferencePaceBudget(TimeBudget):
    """Takes every image as run at the reference machine's pace, whatever this host's load: the estimate then
    depends on the image alone, as the test means (the scaling by a slow host: tests/core/test_deadline.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.timed: list[float] = []

    def record(self, elapsed_ms: float, speed: DetectionSpeed, megapixels: float, objects: int) -> None:
        self.timed.append(elapsed_ms)
        super().record(reference_ms(speed, megapixels, objects), speed, megapixels, objects)


def test_a_48_mp_upload_after_small_ones_is_refused_not_killed(lambda_handler, monkeypatch) -> None:
    """The deadline knows the image: small requests pass with the same time left that a 48 MP one lacks
    (whose worst case is far beyond what small ones took), so it gets a 503 instead of Lambda's kill."""
    from events.make_http_events import http_api_v2, multipart
    from handler.engine import pipeline

    budget = ReferencePaceBudget()
    monkeypatch.setattr(pipeline, "time_budget", budget)
    for _ in range(3):
        response = lambda_handler(load("apigw-http-multipart.json"), FakeLambdaContext(remaining_ms=20_000))
        assert response["statusCode"] == 200
    assert len(budget.timed) == 3, "each small image was timed"
    photo = io.BytesIO()
    Image.new("RGB", (8064, 6048), (90, 120, 150)).save(photo, "JPEG", quality=50)
    event = http_api_v2("POST", "/segment", None, *multipart("image", "phone.jpg", "image/jpeg", photo.getvalue()))
    response = lambda_handler(event, FakeLambdaContext(remaining_ms=20_000))
    assert response["statusCode"] == 503, response["body"][:300]
    error = json.loads(response["body"])["error"]
    assert error["code"] == "out_of_time" and "48.8 MP" in error["message"]


class SteppingContext(FakeLambdaContext):
    """A context on a clock of its own: each look at the remaining time finds ``step_ms`` less than the one
    before, as if an object's mask had taken that long. The host's speed changes nothing."""

    def __init__(self, budget_ms: int, step_ms: int) -> None:
        self.budget_ms, self.step_ms = budget_ms, step_ms
        self.answers: list[int] = []

    def get_remaining_time_in_millis(self) -> int:
        self.answers.append(self.budget_ms - self.step_ms * len(self.answers))
        return self.answers[-1]


def test_boxes_as_large_as_the_image_end_in_a_503_before_the_deadline(
    lambda_handler, worst_segmenter, monkeypatch, app_overrides, configure
):
    """The up-front estimate cannot know the boxes: a model whose 80 boxes each cover a 24 MP photo passes it,
    then each object's mask is checked against the time left, so the answer is a clean 503 in time instead of
    Lambda's kill."""
    from events.make_http_events import http_api_v2, multipart
    from handler.core.deadline import TimeBudget
    from handler.engine import get_segmenter, pipeline

    budget = TimeBudget()
    monkeypatch.setattr(pipeline, "time_budget", budget)
    app_overrides[get_segmenter] = lambda: worst_segmenter
    configure(detection_speed="normal")  # where its boxes are largest
    photo = io.BytesIO()
    Image.new("RGB", (6000, 4000), (90, 120, 150)).save(photo, "JPEG", quality=50)
    upload = multipart("image", "a.jpg", "image/jpeg", photo.getvalue())
    event = http_api_v2("POST", "/segment", {"confidence": "0.001", "overlay": "true"}, *upload)
    step_ms = 1500  # each object's look at the clock: a dozen objects fit, never all 80
    allowed_ms = int(budget.estimate_ms("normal", 24.0) + budget.margin_ms + 2 * step_ms)  # passes the up-front check
    context = SteppingContext(allowed_ms, step_ms)
    response = lambda_handler(event, context)
    assert response["statusCode"] == 503, response["body"][:300]
    error = json.loads(response["body"])["error"]
    assert error["code"] == "out_of_time" and "to finish the masks" in error["message"], error
    done = int(re.search(r"after (\d+) of 80 objects", error["message"]).group(1))
    assert 0 < done < 80
    assert min(context.answers) > 0, "the answer came before the deadline"


def test_an_event_nobody_claims_is_a_clear_error(lambda_handler) -> None:
    from handler.lambda_function import UnclaimedEvent

    with pytest.raises(UnclaimedEvent, match="API Gateway"):
        lambda_handler({"detail-type": "Scheduled Event", "source": "aws.events"}, FakeLambdaContext())


def test_a_cutouts_zip_leaves_lambda_base64_encoded(lambda_handler) -> None:
    event = load("apigw-http-png.json")
    event["rawQueryString"] = "format=cutouts&confidence=0&masks=none"
    event["queryStringParameters"] = {"format": "cutouts", "confidence": "0", "masks": "none"}
    response = lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200, response["body"][:500]
    assert answer_headers(response)["content-type"] == "application/zip"
    assert response["isBase64Encoded"] is True
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(response["body"], validate=True))) as archive:
        names = archive.namelist()
        result = json.loads(archive.read("result.json"))
    assert names[-1] == "result.json" and len(names) == 1 + len(result["class_names"])
    assert all(name.endswith(".png") for name in names[:-1])
