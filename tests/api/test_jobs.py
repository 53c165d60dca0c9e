"""The jobs flow against moto server over real HTTP: POST /jobs, a real POST of the file to the presigned URL,
the S3 event through ``lambda_handler`` (the real model), then GET /jobs/{job_id}."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import pytest
from conftest import IMAGES, FakeLambdaContext, read_event
from PIL import Image

from handler.core import storage

PHOTO = IMAGES / "astronaut.jpg"
EXAMPLE_KEY = "uploads/jobs/5d41402abc4b2a76b9719d911017c592/astronaut.jpg"


def create(client: Any, **body: Any) -> dict[str, Any]:
    response = client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def upload(job: dict[str, Any], data: bytes) -> httpx.Response:
    """What a browser's form POST does: every field of the job, then the file last."""
    return httpx.post(job["upload"]["url"], data=job["upload"]["fields"], files={"file": ("photo", data)}, timeout=30)


def key_of(job: dict[str, Any]) -> str:
    return job["upload"]["fields"]["key"]


def deliver(lambda_handler: Any, bucket: str, key: str) -> dict[str, Any]:
    """The S3 notification of the upload (events/s3-post-job.json naming it) through the Lambda entry point."""
    event = read_event("s3-post-job.json", **{"pointrend-uploads-example": bucket, EXAMPLE_KEY: quote_plus(key, "/")})
    return lambda_handler(event, FakeLambdaContext())


def status(client: Any, job: dict[str, Any]) -> dict[str, Any]:
    response = client.get(job["status_url"])
    assert response.status_code == 200, response.text
    return response.json()


def policy(job: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(job["upload"]["fields"]["policy"]))


def test_the_whole_flow_ends_done_with_the_result_and_the_overlay(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    job = create(client, filename="My Holiday/été 2024.JPG", confidence=0, overlay=True, masks="rle")
    assert len(job["job_id"]) == 32 and int(job["job_id"], 16) >= 0 and job["job_id"] == job["job_id"].lower()
    assert job["status"] == "waiting_for_upload" and job["status_url"] == f"/jobs/{job['job_id']}"
    assert key_of(job) == f"uploads/jobs/{job['job_id']}/t_2024.JPG"
    assert job["upload"]["fields"]["Content-Type"] == "image/jpeg"
    assert status(client, job) == {"job_id": job["job_id"], "status": "waiting_for_upload"}

    assert upload(job, PHOTO.read_bytes()).status_code == 204
    head = s3.head_object(Bucket=jobs_bucket, Key=key_of(job))
    assert head["Metadata"] == {"masks": "rle", "confidence": "0.0", "overlay": "true"}
    assert status(client, job)["status"] == "processing"  # uploaded, the event not yet delivered

    (processed,) = deliver(lambda_handler, jobs_bucket, key_of(job))["objects"]
    assert processed["outcome"] == "segmented"
    done = status(client, job)
    assert done["status"] == "done"
    result = done["result"]
    width, height = Image.open(PHOTO).size
    assert result["mask_shape"] == [height, width, len(result["class_names"])]
    assert result["class_names"], "at confidence 0 the test model finds objects"
    assert len(result["masks"]) == len(result["class_names"])
    assert result["source"]["key"] == key_of(job)
    overlay = httpx.get(done["overlay_url"], timeout=30)
    assert overlay.status_code == 200 and Image.open(io.BytesIO(overlay.content)).size == (width, height)
    logs = " ".join(str(vars(record)) for record in caplog.records if record.name == "pointrend")
    assert f"jobs/{job['job_id'][:8]}…" in logs and job["job_id"] not in logs  # ids are logged cut short


def test_a_job_without_overlay_gets_no_overlay_url_and_its_masks_format(
    client: Any, jobs_bucket: str, lambda_handler: Any
) -> None:
    job = create(client, confidence=0, masks="polygons")
    upload(job, PHOTO.read_bytes())
    deliver(lambda_handler, jobs_bucket, key_of(job))
    done = status(client, job)
    assert done["status"] == "done" and "overlay_url" not in done
    assert "polygons" in done["result"] and "masks" not in done["result"]


def test_a_job_with_cutouts_lists_a_download_url_per_object_in_result_order(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any
) -> None:
    from cutout_checks import assert_cutouts

    from handler.engine import decode

    job = create(client, filename="cat.jpg", confidence=0, cutouts="mask")
    upload(job, PHOTO.read_bytes())
    assert s3.head_object(Bucket=jobs_bucket, Key=key_of(job))["Metadata"]["cutouts"] == "mask"
    deliver(lambda_handler, jobs_bucket, key_of(job))
    done = status(client, job)
    assert done["status"] == "done" and done["result"]["class_names"]
    names = [link["name"] for link in done["cutouts"]]
    assert names == done["result"]["cutouts"]["names"]
    files = {}
    for link in done["cutouts"]:
        fetched = httpx.get(link["url"], timeout=30)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        # S3 answers it as a download of that name (moto ignores response-content-disposition; AWS honours it)
        query = parse_qs(urlsplit(link["url"]).query)
        assert query["response-content-disposition"] == [f'attachment; filename="{link["name"]}"']
        files[link["name"]] = fetched.content
    assert_cutouts(files, done["result"], decode(PHOTO.read_bytes(), max_bytes=10**8, max_pixels=10**8))
    without = create(client, confidence=0)
    upload(without, PHOTO.read_bytes())
    deliver(lambda_handler, jobs_bucket, key_of(without))
    assert "cutouts" not in status(client, without)


def test_a_phones_heic_photo_is_segmented(client: Any, jobs_bucket: str, lambda_handler: Any) -> None:
    heic = io.BytesIO()
    Image.open(PHOTO).save(heic, "HEIF", quality=90)
    job = create(client, filename="IMG_0042.HEIC", confidence=0)
    assert job["upload"]["fields"]["Content-Type"] == "image/heic"
    upload(job, heic.getvalue())
    deliver(lambda_handler, jobs_bucket, key_of(job))
    done = status(client, job)
    assert done["status"] == "done", done
    width, height = Image.open(PHOTO).size
    assert done["result"]["mask_shape"][:2] == [height, width]


def test_a_bad_upload_ends_failed_with_the_error_record(client: Any, jobs_bucket: str, lambda_handler: Any) -> None:
    job = create(client, filename="notes.jpg")
    upload(job, b"shopping list, not a photo")
    (processed,) = deliver(lambda_handler, jobs_bucket, key_of(job))["objects"]
    assert processed["outcome"] == "error_record"
    failed = status(client, job)
    assert failed["status"] == "failed" and failed["error"]["code"] == "not_an_image"
    assert "not an image" in failed["error"]["message"]


def test_a_second_upload_to_a_job_is_ignored_unread_and_the_first_outcome_stands(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any
) -> None:
    job = create(client, confidence=0)
    reads: list[str] = []  # every GetObject of the upload, by either delivery
    s3.meta.events.register("before-send.s3.GetObject", lambda request, **_: reads.append(request.url))
    try:
        upload(job, b"not a photo")
        (first,) = deliver(lambda_handler, jobs_bucket, key_of(job))["objects"]
        assert first["outcome"] == "error_record" and status(client, job)["status"] == "failed"
        first_etag = s3.head_object(Bucket=jobs_bucket, Key=key_of(job))["ETag"].strip('"')
        assert len([url for url in reads if url.endswith(key_of(job))]) == 1

        upload(job, PHOTO.read_bytes())  # the same form again: S3 takes it (a POST cannot be conditional)
        (second,) = deliver(lambda_handler, jobs_bucket, key_of(job))["objects"]
    finally:
        s3.meta.events.unregister("before-send.s3.GetObject")
    assert second["outcome"] == "skipped" and "only the first one is processed" in second["reason"]
    assert len([url for url in reads if url.endswith(key_of(job))]) == 1  # the second was never read
    failed = status(client, job)  # still the first upload's outcome, not "processing" for the second
    assert failed["status"] == "failed" and failed["error"]["code"] == "not_an_image"
    claim = s3.get_object(Bucket=jobs_bucket, Key=f"results/jobs/{job['job_id']}/job.claim")["Body"].read()
    assert json.loads(claim)["etag"] == first_etag


def test_a_retried_event_of_the_claimed_upload_is_processed_again(
    client: Any, jobs_bucket: str, lambda_handler: Any
) -> None:
    job = create(client, confidence=0)
    upload(job, PHOTO.read_bytes())
    for _ in range(2):  # Lambda's retry of the same event (say, after a timeout) is not a second upload
        (processed,) = deliver(lambda_handler, jobs_bucket, key_of(job))["objects"]
        assert processed["outcome"] == "segmented"
    assert status(client, job)["status"] == "done"


def test_when_a_second_upload_lands_before_the_first_is_read_only_one_is_processed(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any
) -> None:
    job = create(client, confidence=0)
    upload(job, b"not a photo")
    upload(job, PHOTO.read_bytes())  # replaces the first's bytes before any event is handled
    outcomes = [deliver(lambda_handler, jobs_bucket, key_of(job))["objects"][0]["outcome"] for _ in range(2)]
    assert outcomes == ["segmented", "segmented"]  # both events find (and claim) the file now in S3
    done = status(client, job)
    etag = s3.head_object(Bucket=jobs_bucket, Key=key_of(job))["ETag"].strip('"')
    assert done["status"] == "done" and done["result"]["source"]["etag"] == etag


def test_the_policy_pins_key_type_size_options_and_expiry(client: Any, jobs_bucket: str, settings: Any) -> None:
    before = time.time()
    job = create(client, filename="IMG_0001.HEIC", confidence=0.25, classes="person,dog", overlay=False)
    conditions = policy(job)["conditions"]
    key = key_of(job)
    assert key.endswith("/IMG_0001.HEIC") and job["upload"]["fields"]["Content-Type"] == "image/heic"
    assert {"bucket": jobs_bucket} in conditions and {"key": key} in conditions
    assert ["starts-with", "$Content-Type", "image/"] in conditions
    assert ["content-length-range", 1, settings.max_image_bytes] in conditions
    assert job["max_bytes"] == settings.max_image_bytes
    for name, value in {"confidence": "0.25", "classes": "person,dog", "masks": "rle", "overlay": "false"}.items():
        assert {f"x-amz-meta-{name}": value} in conditions
        assert job["upload"]["fields"][f"x-amz-meta-{name}"] == value
    expiration = time.mktime(time.strptime(policy(job)["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert job["expires_in"] == settings.upload_expiry_s == 900
    assert before + 900 - 5 <= expiration <= time.time() + 900 + 5


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"confidence": 2}, "confidence"),
        ({"masks": "bitmap"}, "masks"),
        ({"classes": "person,unicorn"}, "unicorn"),
        ({"content_type": "text/plain"}, "content_type"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_job_options_are_refused_before_any_upload(
    client: Any, jobs_bucket: str, s3: Any, body: dict[str, Any], expected: str
) -> None:
    response = client.post("/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request" and expected in response.json()["error"]["message"]
    assert s3.list_objects_v2(Bucket=jobs_bucket)["KeyCount"] == 0


def test_a_job_needs_no_body_at_all(client: Any, jobs_bucket: str, s3: Any) -> None:
    response = client.post("/jobs")
    assert response.status_code == 201, response.text
    job = response.json()
    assert (
        key_of(job) == f"uploads/jobs/{job['job_id']}/image" and job["upload"]["fields"]["Content-Type"] == "image/jpeg"
    )
    record = json.loads(
        s3.get_object(Bucket=jobs_bucket, Key=f"results/jobs/{job['job_id']}/job.record")["Body"].read()
    )
    assert record["key"] == key_of(job) and record["options"] == {"masks": "rle", "overlay": "false"}


def test_malformed_and_unknown_ids_are_404(client: Any, jobs_bucket: str) -> None:
    for job_id in ("nope", "5D41402ABC4B2A76B9719D911017C592", "5d41402abc4b2a76b9719d911017c59", "../../x"):
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 404, job_id
        assert response.json()["error"]["code"] in ("job_not_found", "not_found")
    unknown = client.get("/jobs/5d41402abc4b2a76b9719d911017c592")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "job_not_found"


def test_an_expired_upload_form_reads_as_failed(client: Any, jobs_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job = create(client)
    later = time.time() + 901
    monkeypatch.setattr("handler.api.jobs.time.time", lambda: later)
    expired = status(client, job)
    assert expired["status"] == "failed" and expired["error"]["code"] == "upload_expired"


def test_a_deleted_result_reads_as_processing_and_nothing_else_is_lost(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any
) -> None:
    job = create(client, confidence=0)
    upload(job, PHOTO.read_bytes())
    deliver(lambda_handler, jobs_bucket, key_of(job))
    assert key_of(job) == f"uploads/jobs/{job['job_id']}/image"  # no filename given
    s3.delete_object(Bucket=jobs_bucket, Key=f"results/jobs/{job['job_id']}/image.json")
    assert status(client, job)["status"] == "processing"
    assert s3.head_object(Bucket=jobs_bucket, Key=key_of(job))["ContentLength"] == PHOTO.stat().st_size


def test_without_a_jobs_bucket_jobs_answer_503(client: Any) -> None:
    for response in (client.post("/jobs", json={}), client.get("/jobs/5d41402abc4b2a76b9719d911017c592")):
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "jobs_unavailable" and "SEG_JOBS_BUCKET" in error["message"]
    assert client.get("/healthz").json()["defaults"]["jobs"] is False


def test_on_aws_presigned_urls_are_sigv4_on_the_buckets_regional_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The global name may redirect a new bucket outside us-east-1 (a browser upload does not survive it), and
    SigV2, boto3's default for presigned GETs, is refused by newer regions."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, "eu-central-1")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    storage.s3_client.cache_clear()
    try:
        assert storage.bucket_origin("photos") == "https://photos.s3.eu-central-1.amazonaws.com"
        post = storage.presigned_post("photos", "uploads/jobs/x/a.jpg", {}, [], 900)
        assert post["url"] == "https://photos.s3.eu-central-1.amazonaws.com/"
        assert post["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
        url = storage.presigned_get("photos", "results/jobs/x/a.jpg.png", 600)
        assert url.startswith("https://photos.s3.eu-central-1.amazonaws.com/results/jobs/x/a.jpg.png?")
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=600" in url
    finally:
        storage.s3_client.cache_clear()
