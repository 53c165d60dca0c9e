"""Moto server over real HTTP, for everything that talks to S3: one per session, on a free loopback port.

The code under test finds it the way it finds real AWS, through the standard environment: dummy
credentials, a region and ``AWS_ENDPOINT_URL``. ``AWS_MAX_ATTEMPTS=1`` turns botocore's retries off, so
that a simulated S3 failure surfaces at once. Registered for every test module by ``tests/conftest.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from handler.core import storage

AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
# These would take precedence over the variables above.
AWS_OVERRIDES = ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3")

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server that serves the whole session; always stopped."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        with pytest.MonkeyPatch.context() as environment:
            for name, value in {**AWS_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint}.items():
                environment.setenv(name, value)
            for name in AWS_OVERRIDES:
                environment.delenv(name, raising=False)
            storage.s3_client.cache_clear()  # a client made before this fixture would point elsewhere
            yield endpoint
    finally:
        storage.s3_client.cache_clear()
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """The very client the handler uses (so hooks registered on it see the handler's calls)."""
    return storage.s3_client()


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new, empty bucket for each test."""
    name = f"pointrend-test-{next(_bucket_numbers)}"
    s3.create_bucket(Bucket=name)
    return name
