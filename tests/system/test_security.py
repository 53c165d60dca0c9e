"""Security properties, each proved against the real app, the real test model and moto server.

What the process does while it serves hostile requests is watched through Python's audit hooks
(``sys.addaudithook``: every file ``open``, ``socket.connect``, subprocess and unpickled class, from any
thread) and through a botocore hook on the handler's own S3 client (every S3 call's bucket and key).
Properties proved elsewhere are listed in docs/security.md with their tests.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from conftest import IMAGES, REPO, FakeLambdaContext
from fastapi.testclient import TestClient
from imaging import encode, gradient, multipart

from handler.api.page import STATIC_DIR
from handler.core import storage
from handler.core.errors import ModelFileError
from handler.core.settings import Settings
from handler.engine import get_segmenter
from handler.model import Segmenter, WeightsUnpickler, read_weights
from handler.model.files import sha256_of
from infra import image_spec

SMALL = encode(gradient(64, 48), "JPEG")
PHOTO = (IMAGES / "astronaut.jpg").read_bytes()
MARKER = "zz-user-controlled-name"  # in every filename and key a hostile request sends
TRACES = ("Traceback", 'File "', '.py", line')
# Read before any watch starts: a test reading its own files would look like the server doing it.
HTTP_EVENT = json.loads((REPO / "events" / "apigw-http-healthz.json").read_text())
S3_RECORD = json.loads((REPO / "events" / "s3-put.json").read_text())["Records"][0]
WATCHED = frozenset({"open", "socket.connect", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"})


# --- watching the process ----------------------------------------------------------------------------


@dataclass
class Watch:
    opened: list[tuple[str, Any]] = field(default_factory=list)  # (path, mode or flags)
    connected: list[Any] = field(default_factory=list)  # socket addresses
    spawned: list[str] = field(default_factory=list)
    unpickled: list[str] = field(default_factory=list)  # module.name of every class a pickle asked for
    s3_calls: list[tuple[str, str, str]] = field(default_factory=list)  # (operation, bucket, key)

    def written(self) -> list[tuple[str, Any]]:
        """Files opened for writing (mode w/a/x/+, or os.open flags beyond read-only)."""
        return [
            (path, mode)
            for path, mode in self.opened
            if (isinstance(mode, str) and any(c in mode for c in "wax+"))
            or (isinstance(mode, int) and mode & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
        ]


_active: list[Watch] = []
_lock = threading.Lock()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _active or (event not in WATCHED and event != "pickle.find_class"):
        return
    with _lock:
        for watch in _active:
            if event == "open":
                path, mode, flags = args
                if isinstance(path, (str, bytes, os.PathLike)):
                    watch.opened.append((os.fsdecode(path), mode if mode is not None else flags))
            elif event == "socket.connect":
                watch.connected.append(args[1])
            elif event == "pickle.find_class":
                watch.unpickled.append(f"{args[0]}.{args[1]}")
            else:
                watch.spawned.append(f"{event} {args[:2]!r}")


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one does nothing unless a Watch is active


def _record_s3_call(params: dict[str, Any], model: Any, **_: Any) -> None:
    for watch in list(_active):
        watch.s3_calls.append((model.name, params.get("Bucket", ""), params.get("Key", "")))


@contextmanager
def watching() -> Iterator[Watch]:
    watch = Watch()
    client = storage.s3_client()
    client.meta.events.register("provide-client-params.s3.*", _record_s3_call)
    _active.append(watch)
    try:
        yield watch
    finally:
        _active.remove(watch)
        client.meta.events.unregister("provide-client-params.s3.*", _record_s3_call)


@pytest.fixture
def buckets(s3: Any, configure) -> Iterator[dict[str, str]]:
    """An allowed bucket and a private one beside it, each with the photo; only the first is allowed."""
    names = {"allowed": "security-allowed", "private": "security-private"}
    for name in names.values():
        s3.create_bucket(Bucket=name)
        for key in ("photo.jpg", "uploads/photo.jpg", "etc/passwd"):
            s3.put_object(Bucket=name, Key=key, Body=PHOTO)
    configure(allow_s3_uri=True, allowed_buckets=[names["allowed"]])
    yield names
    for name in names.values():
        for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
        s3.delete_bucket(Bucket=name)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and temp directory: whatever a request wrote would land here."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def http_event(method: str, path: str, body: bytes = b"", content_type: str | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API event with the raw path exactly as given (no client normalises it)."""
    event = copy.deepcopy(HTTP_EVENT)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    if content_type:
        event["headers"]["content-type"] = content_type
    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


# --- no request reads a local file or a bucket outside SEG_ALLOWED_BUCKETS ---------------------------

S3_URIS_NOT_ALLOWED = [
    "file:///etc/passwd",
    "/etc/passwd",
    "../../../../etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
    "s3:///etc/passwd",
    "s3://../etc/passwd",
    "s3://security-private/photo.jpg",
    "s3://security-allowed/../security-private/photo.jpg",
    "s3://security-allowed/%2e%2e/security-private/photo.jpg",
    "s3://security-private/../security-allowed/photo.jpg",
    "s3://security-allowed@security-private/photo.jpg",
    "s3://security-allowed.s3.amazonaws.com@security-private/photo.jpg",
]
TRAVERSALS = [
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2fsettings.py",
    "/static//etc/passwd",
    "/static/../settings.py",
    "/../../etc/passwd",
]


def test_no_request_reads_a_local_file_or_a_bucket_not_allowed(
    client: TestClient, lambda_handler, buckets, sandbox: Path
) -> None:
    # Warm up (first-use imports may open files): a refused URI, a missing key, a read. The watch starts after.
    for uri in ("file:///etc/passwd", "s3://security-allowed/missing.jpg", "s3://security-allowed/photo.jpg"):
        client.post("/segment?masks=none", json={"s3_uri": uri})
    with watching() as watch:
        for uri in S3_URIS_NOT_ALLOWED:
            response = client.post("/segment", json={"s3_uri": uri})
            assert response.status_code in (404, 422), (uri, response.text)
            assert PHOTO[:200] not in response.content
        for path in TRAVERSALS:
            answer = lambda_handler(http_event("GET", path), FakeLambdaContext())
            assert answer["statusCode"] == 404, (path, answer["body"][:300])
            assert "root:" not in answer["body"] and "Settings" not in answer["body"]
        allowed = client.post("/segment?masks=none", json={"s3_uri": "s3://security-allowed/photo.jpg"})
        assert allowed.status_code == 200  # the one allowed bucket is read, and only it
    assert watch.opened == [], "a request made the server open a local file"
    assert {bucket for _, bucket, _ in watch.s3_calls} == {"security-allowed"}, watch.s3_calls
    endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
    assert {f"{host}:{port}" for host, port, *_ in watch.connected} <= {endpoint}  # nowhere but S3
    assert watch.spawned == []
    assert files_under(sandbox) == []


def test_static_files_are_served_only_from_the_static_folder(client: TestClient) -> None:
    client.get("/static/style.css")  # warm up: the first file response reads /etc/mime.types, imports anyio
    with watching() as watch:
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/").status_code == 200
    assert watch.opened and all(Path(path).resolve().is_relative_to(STATIC_DIR) for path, _ in watch.opened)


# --- no user-controlled name is ever used as a path ----------------------------------------------------


def test_multipart_filenames_are_ignored(client: TestClient, lambda_handler, sandbox: Path) -> None:
    names = [f"../../{MARKER}.jpg", f"/tmp/{MARKER}.jpg", f"..\\..\\{MARKER}.jpg", f"{MARKER}\x00.jpg"]
    with watching() as watch:
        for name in names:
            body, content_type = multipart([("image", name, SMALL)])
            response = client.post(
                "/segment?masks=none&confidence=1", content=body, headers={"content-type": content_type}
            )
            assert response.status_code == 200, response.text
            answer = lambda_handler(http_event("POST", "/segmentapi", body, content_type), FakeLambdaContext())
            assert answer["statusCode"] == 200, answer["body"][:300]
            assert MARKER not in response.text and MARKER not in answer["body"]
    assert watch.opened == [] and watch.spawned == []
    assert files_under(sandbox) == []
    assert not any(MARKER in path.name for path in Path("/tmp").iterdir())


def test_s3_keys_never_touch_the_local_filesystem(s3: Any, bucket: str, lambda_handler, sandbox: Path) -> None:
    keys = [f"uploads/../../{MARKER}.jpg", f"uploads//tmp/{MARKER}.jpg", f"uploads/~/{MARKER} 100%.jpg"]
    records = []
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=SMALL)
        record = copy.deepcopy(S3_RECORD)
        record["s3"]["bucket"]["name"], record["s3"]["object"]["key"] = bucket, quote_plus(key, safe="/")
        records.append(record)
    with watching() as watch:
        answer = lambda_handler({"Records": records}, FakeLambdaContext())
    assert [item["outcome"] for item in answer["objects"]] == ["segmented"] * len(keys)
    assert watch.opened == [] and watch.spawned == []
    assert files_under(sandbox) == []
    # Every key went to S3 verbatim: read where it was uploaded, written under results/ in the same bucket.
    assert {(op, key) for op, _, key in watch.s3_calls if op in ("HeadObject", "GetObject")} == {
        (op, key) for op in ("HeadObject", "GetObject") for key in keys
    }
    written = {key for op, _, key in watch.s3_calls if op == "PutObject"}
    assert written == {
        f"results/{key.removeprefix('uploads/')}{suffix}" for key in keys for suffix in (".json", ".png")
    }


# --- model files: only the configured path, checked before they are unpickled --------------------------
# Also: tests/test_model.py::test_weights_checksum_is_enforced, ::test_missing_and_mismatched_weights_are_refused,
# ::test_a_weights_pickle_cannot_run_code.


def test_the_model_is_read_only_from_the_configured_path_and_only_numpy_is_unpickled(test_model_path: Path) -> None:
    digest = sha256_of(test_model_path)
    with watching() as watch:
        Segmenter(Settings(model_path=test_model_path, model_sha256=digest))
    weights = [path for path, _ in watch.opened if path.endswith((".pkl", ".pth", ".pt"))]
    assert weights == [str(test_model_path)]
    assert watch.written() == [] and watch.spawned == []
    assert watch.unpickled and set(watch.unpickled) <= {f"{m}.{n}" for m, n in WeightsUnpickler.ALLOWED}


def test_a_weights_file_with_the_wrong_sha256_is_refused(test_model_path: Path, tmp_path: Path) -> None:
    # read_weights hashes the bytes as the restricted unpickler reads them (one pass), so a file with the
    # wrong sha256 is unpickled, numpy arrays only, and then refused: never returned, never loaded.
    with watching() as watch, pytest.raises(ModelFileError, match="sha256"):
        read_weights(test_model_path, "0" * 64)
    assert set(watch.unpickled) <= {f"{m}.{n}" for m, n in WeightsUnpickler.ALLOWED}
    with pytest.raises(ModelFileError):  # a pickle that would run code: refused whatever its checksum
        evil = tmp_path / "evil.pkl"
        evil.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
        read_weights(evil, None)
    assert not (tmp_path / "pwned").exists()


def test_no_request_parameter_names_a_model_or_a_path(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    parameters = {
        param["name"]
        for item in spec["paths"].values()
        for operation in item.values()
        for param in operation.get("parameters", [])
    }
    # cutouts is mask|box; the files it names are NN-<class>.png with the class cut to [A-Za-z0-9_-]
    # (tests/engine/test_cutouts.py), under the result's own .objects/ prefix
    expected = {"masks", "confidence", "classes", "format", "cutouts", "overlay", "overlay_max_side", "job_id"}
    assert parameters == expected
    json_body = spec["paths"]["/segment"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = set(json_body["properties"])
    assert fields == {"image_base64", "s3_uri"}  # and s3_uri reads only allowed buckets (above)
    job_body = spec["components"]["schemas"]["JobRequest"]["properties"]
    # filename only names the upload's S3 key, cut to [A-Za-z0-9._-] under jobs/<job_id>/ (tests/api/test_jobs.py)
    assert set(job_body) == {"masks", "confidence", "classes", "overlay", "cutouts", "filename", "content_type"}


# --- responses carry no stack traces -----------------------------------------------------------------


def assert_no_trace(text: str, *secrets: str) -> None:
    for needle in (*TRACES, *secrets):
        assert needle not in text, text[:2000]


def test_an_unexpected_exception_is_answered_without_its_traceback(
    client: TestClient, lambda_handler, caplog, app_overrides
) -> None:
    def broken() -> None:
        raise RuntimeError("boom at /opt/secret/config.py with password=hunter2")

    app_overrides[get_segmenter] = broken
    response = client.post("/segment", content=SMALL, headers={"content-type": "image/jpeg"})
    answer = lambda_handler(http_event("POST", "/segment", SMALL, "image/jpeg"), FakeLambdaContext())
    for status, text, headers in (
        (response.status_code, response.text, response.headers),
        (answer["statusCode"], answer["body"], answer["headers"]),
    ):
        assert status == 500
        assert json.loads(text) == {
            "error": {"code": "internal_error", "message": "an unexpected error occurred; it has been logged"}
        }
        assert headers["content-type"] == "application/json"
        assert_no_trace(text, "boom", "/opt/secret", "hunter2", "RuntimeError")
    logged = [record for record in caplog.records if record.message == "unexpected error"]
    assert logged and all(record.exc_info and record.exc_info[0] is RuntimeError for record in logged)


def test_a_model_that_cannot_load_is_a_503_without_its_path(client: TestClient, app_overrides) -> None:
    def unavailable() -> None:
        raise ModelFileError("model file /opt/ml/secret-weights.pkl has sha256 abc, expected def")

    app_overrides[get_segmenter] = unavailable
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_unavailable"
    assert_no_trace(response.text, "/opt/ml", "secret-weights", "sha256")


# --- security headers on the page, on every entry point ---------------------------------------------
# Also: tests/api/test_routes.py::test_page_has_security_headers_and_no_inline_or_external_code and
# ::test_json_errors_carry_the_security_headers_too.


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/", "text/html"), ("/static/app.js", "javascript"), ("/healthz", "application/json"), ("/nowhere", "json")],
)
def test_security_headers_through_lambda(lambda_handler, path: str, content_type: str) -> None:
    answer = lambda_handler(http_event("GET", path), FakeLambdaContext())
    headers = answer["headers"]
    assert content_type in headers["content-type"]
    assert headers["x-content-type-options"] == "nosniff"
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'self'" in csp and "object-src 'none'" in csp and "frame-ancestors 'none'" in csp


def test_a_malformed_event_answer_carries_the_headers_too(lambda_handler) -> None:
    event = http_event("GET", "/")
    event["headers"] = None
    answer = lambda_handler(event, FakeLambdaContext())
    assert answer["statusCode"] == 400
    assert answer["headers"]["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in answer["headers"]["content-security-policy"]


def test_the_page_script_needs_no_inline_code_or_data_urls() -> None:
    script = (STATIC_DIR / "app.js").read_text()
    assert "innerHTML" not in script and "eval(" not in script
    assert re.search(r"[\"'`]data:", script) is None  # the overlay is shown through a blob: URL
    html = (STATIC_DIR / "index.html").read_text()
    assert "<script>" not in html and "javascript:" not in html


# --- the template: least privilege where s3_uri can point, no wildcard grants -------------------------
# Also: tests/test_packaging.py::test_least_privilege_policies_without_circular_dependency (exact actions and
# resources) and ::test_bucket_is_private_encrypted_and_tls_only (public access blocked, TLS-only policy).


def allow_statements(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("Effect") == "Allow":
            yield node
        for value in node.values():
            yield from allow_statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from allow_statements(value)


@pytest.mark.parametrize(("auth", "reads_s3_uri"), [("NONE", False), ("IAM", True), ("JWT", True)])
def test_s3_uri_reads_exactly_what_the_function_may_read(auth: str, reads_s3_uri: bool) -> None:
    template = image_spec.load_template()
    names = dict(image_spec.PSEUDO_PARAMETERS, **{"AWS::Region": "us-east-1"})
    names.update({name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec})
    names["ApiAuth"] = auth
    environment = image_spec.function_spec(parameters={"ApiAuth": auth}).environment
    settings = Settings(
        allow_s3_uri=environment["SEG_ALLOW_S3_URI"], allowed_buckets=environment["SEG_ALLOWED_BUCKETS"]
    )
    bucket = image_spec._resolve(template["Resources"]["InputBucket"]["Properties"]["BucketName"], names)
    # Public (NONE): no s3_uri at all. Authenticated: the stack's own bucket, under the input prefix only.
    assert settings.allow_s3_uri is reads_s3_uri
    assert settings.allowed_buckets == [f"{bucket}/{names['InputPrefix']}"]
    function = template["Resources"][image_spec.FUNCTION_ID]["Properties"]
    reads = [s for s in allow_statements(function["Policies"]) if s["Action"] == "s3:GetObject"]
    conditions = template["Conditions"]
    # What an s3_uri may name (else only the jobs' uploads), and the jobs' results (what only a job id names).
    readable = f"{names['InputPrefix']}*" if reads_s3_uri else f"{names['InputPrefix']}jobs/*"
    assert [image_spec._resolve(s["Resource"], names, conditions) for s in reads] == [
        f"arn:aws:s3:::{bucket}/{readable}",
        f"arn:aws:s3:::{bucket}/{names['OutputPrefix']}jobs/*",
    ]


def test_no_statement_in_the_template_allows_a_wildcard() -> None:
    template = image_spec.load_template()
    statements = list(allow_statements(template["Resources"]))
    assert statements
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        resources = statement.get("Resource")
        assert resources not in ("*", ["*"]), statement
    for function_id in (image_spec.FUNCTION_ID, image_spec.WORKER_ID):
        policies = template["Resources"][function_id]["Properties"]["Policies"]
        assert all(isinstance(policy, dict) for policy in policies), "no managed or SAM policy templates"
