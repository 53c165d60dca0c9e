"""Shared fixtures. The model is the random test model in the real file format, loaded once per session."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "tests" / "images"
EVENTS = REPO / "events"
TEST_MODEL = Path(os.environ.setdefault("SEG_MODEL_PATH", str(REPO / ".cache" / "models" / "test_model.pkl")))
# Tests are about behaviour, not accuracy: the small input size keeps the suite fast on 2 cores.
os.environ.setdefault("SEG_DETECTION_SPEED", "rapid")


@pytest.fixture(scope="session")
def test_model_path() -> Path:
    if not TEST_MODEL.exists():
        from handler.model.test_models import make_test_model

        make_test_model(TEST_MODEL)
    return TEST_MODEL


@pytest.fixture
def app_overrides() -> Iterator[dict[Callable[..., Any], Callable[..., Any]]]:
    """The one place tests replace what the HTTP app depends on (``handler.api.deps``: ``get_settings``,
    ``get_segmenter``, ``get_admission``): routes, middleware and the schema all see ``app.dependency_overrides``.
    Cleared, and the cached schema dropped, after the test."""
    from handler.api import app

    app.openapi_schema = None
    yield app.dependency_overrides
    app.dependency_overrides.clear()
    app.openapi_schema = None


DENSE_MODEL = REPO / ".cache" / "models" / "test_model_dense.pkl"


@pytest.fixture(scope="session")
def dense_model_path() -> Path:
    """``make-test-model --dense``: 100 objects on any image, the crowded worst case."""
    if not DENSE_MODEL.exists():
        from handler.cli import main

        assert main(["make-test-model", str(DENSE_MODEL), "--dense"]) == 0
    return DENSE_MODEL


CUSTOM_CLASSES = ("cat", "dog", "bird")
CUSTOM_MODEL = REPO / ".cache" / "models" / "test_model_3cls_dense.pkl"


@pytest.fixture(scope="session")
def custom_model_path() -> Path:
    """``make-test-model --dense --classes cat,dog,bird``: a model of its own 3 classes (serve it with
    ``SEG_CLASS_NAMES=cat,dog,bird``), 100 objects on any image."""
    if not CUSTOM_MODEL.exists():
        from handler.cli import main

        assert main(["make-test-model", str(CUSTOM_MODEL), "--dense", "--classes", ",".join(CUSTOM_CLASSES)]) == 0
    return CUSTOM_MODEL


@pytest.fixture(scope="session")
def custom_segmenter(custom_model_path):
    from handler.core.settings import Settings
    from handler.model import Segmenter

    return Segmenter(Settings(model_path=custom_model_path, class_names=",".join(CUSTOM_CLASSES)))


@pytest.fixture(scope="session")
def dense_segmenter(dense_model_path):
    from handler.core.settings import Settings
    from handler.model import Segmenter

    return Segmenter(Settings(model_path=dense_model_path, detection_speed="rapid"))


WORST_MODEL = REPO / ".cache" / "models" / "test_model_worst.pkl"


@pytest.fixture(scope="session")
def worst_segmenter():
    """``make-test-model --worst``: every class's box covers the whole image (80 objects), the memory worst case."""
    from handler.cli import main
    from handler.core.settings import Settings
    from handler.model import Segmenter

    if not WORST_MODEL.exists():
        assert main(["make-test-model", str(WORST_MODEL), "--worst"]) == 0
    return Segmenter(Settings(model_path=WORST_MODEL, detection_speed="rapid"))


@pytest.fixture(scope="session")
def segmenter(test_model_path):
    from handler.model import get_segmenter

    return get_segmenter()


@pytest.fixture(scope="session")
def settings(test_model_path):
    from handler.core.settings import get_settings

    return get_settings()


@pytest.fixture
def configure(settings, app_overrides) -> Iterator[Callable[..., None]]:
    """``configure(max_image_bytes=...)``: the app's settings for one test, through its dependency
    (``app_overrides``, cleared after the test)."""
    from handler.core.settings import get_settings

    def override(**changes: Any) -> None:
        app_overrides[get_settings] = lambda: settings.model_copy(update=changes)

    yield override


def read_event(name: str, **replace: str) -> Any:
    """A sample event from ``events/``, parsed, with each ``old=new`` text replacement applied first."""
    text = (EVENTS / name).read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(text)


@pytest.fixture
def photo_bytes() -> bytes:
    return (IMAGES / "astronaut.jpg").read_bytes()


# Moto server (real HTTP) and S3 fixtures: moto_endpoint, s3, bucket.
pytest_plugins = ["moto_fixtures"]


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda context object that the handler and its logger read."""

    remaining_ms: int = 600_000
    aws_request_id: str = "6f1c3a52-1d0e-4f6b-9d5e-0123456789ab"
    function_name: str = "pointrend"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:pointrend"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture(scope="session")
def lambda_handler(test_model_path) -> Callable[[Any, Any], dict[str, Any]]:
    from handler.lambda_function import lambda_handler  # importing it loads the model: the init phase

    return lambda_handler


@pytest.fixture(scope="module")
def client(segmenter) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from handler.api import app

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def jobs_bucket(bucket: str, configure: Any, client: Any) -> str:
    """A moto bucket that the app's settings name as SEG_JOBS_BUCKET, for this test."""
    configure(jobs_bucket=bucket)
    return bucket


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread, for the block: yields its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                pytest.fail("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
