"""Responses stay inside Lambda's 6 MB: the overlay's long side is capped, a larger result is a clear 413."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from imaging import encode, gradient
from PIL import Image

from handler.api.limits import LAMBDA_RESPONSE_BYTES

WIDE = encode(gradient(3000, 2000), "PNG")
# Noise does not compress: as a 2048 x 1536 PNG overlay it is about 9 MB, 12 MB in base64.
NOISE = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (1536, 2048, 3), dtype=np.uint8)), "JPEG")


def post(client: TestClient, query: str, data: bytes, content_type: str = "image/png") -> Any:
    return client.post(f"/segment?{query}", content=data, headers={"content-type": content_type})


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_overlay_long_side_is_capped_by_default_and_by_the_query(client: TestClient) -> None:
    capped = post(client, "confidence=0&format=png", WIDE)
    assert capped.status_code == 200, capped.text
    assert png_size(capped.content) == (2048, 1365)
    smaller = post(client, "confidence=0&format=png&overlay_max_side=300", WIDE)
    assert png_size(smaller.content) == (300, 200)
    small_image = post(client, "confidence=0&format=png&overlay_max_side=300", encode(gradient(120, 80), "PNG"))
    assert png_size(small_image.content) == (120, 80)  # a cap, never an enlargement


def test_overlay_side_above_the_setting_is_refused(client: TestClient, configure) -> None:
    configure(overlay_max_side=1000)
    response = post(client, "format=png&overlay_max_side=1001", WIDE)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "1000" in response.json()["error"]["message"]
    assert png_size(post(client, "confidence=0&format=png", WIDE).content) == (1000, 667)


@pytest.mark.parametrize("query", ["format=png", "overlay=true&masks=none"])
def test_a_result_over_the_lambda_limit_is_a_413_that_names_the_other_paths(client: TestClient, query: str) -> None:
    assert len(NOISE) < 6 * 1024 * 1024
    response = post(client, f"confidence=1&{query}", NOISE, "image/jpeg")
    assert response.status_code == 413, response.headers
    error = response.json()["error"]
    assert error["code"] == "response_too_large"
    assert str(LAMBDA_RESPONSE_BYTES) in error["message"]
    assert "S3" in error["message"] and "POST /jobs" in error["message"]
    fits = post(client, f"confidence=1&{query}&overlay_max_side=512", NOISE, "image/jpeg")
    assert fits.status_code == 200, fits.text
