"""One thread runs the model, so the process has one OpenMP team whatever thread a request comes on.

With a team per calling thread (the init's main thread, then FastAPI's worker thread), there are more OpenMP
threads than CPUs and libgomp stops spin-waiting between parallel regions: the model ran about 10 % slower
over HTTP than in the main thread (docs/performance.md). The speed itself is
bench/engine.py's ``http_vs_engine``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from handler.model.torch_thread import TorchThread, torch_thread


def test_runs_on_its_thread_and_hands_back_results_and_errors():
    worker = TorchThread(name="test-torch")
    assert worker.run(threading.get_ident) == worker.ident != threading.get_ident()
    assert worker.run(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(KeyError, match="missing"):
        worker.run(lambda: {}["missing"])
    assert worker.run(lambda: worker.run(threading.get_ident)) == worker.ident  # nested: in place, no deadlock


def test_every_forward_runs_on_the_one_thread_whoever_calls(segmenter):
    seen: list[int] = []
    hook = segmenter.model.backbone.register_forward_pre_hook(lambda *_: seen.append(threading.get_ident()))
    rgb = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    try:
        segmenter.detect(rgb, confidence=0.0)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: segmenter.detect(rgb, confidence=0.0), range(3)))
    finally:
        hook.remove()
    assert seen == [torch_thread().ident] * 4


def test_an_http_request_runs_the_model_on_the_thread_that_loaded_it(segmenter, photo_bytes):
    from events.make_http_events import http_api_v2, multipart
    from handler.lambda_function import lambda_handler
    from tests.conftest import FakeLambdaContext

    seen: list[int] = []
    hook = segmenter.model.backbone.register_forward_pre_hook(lambda *_: seen.append(threading.get_ident()))
    event = http_api_v2("POST", "/segment", None, *multipart("image", "a.jpg", "image/jpeg", photo_bytes))
    try:
        response = lambda_handler(event, FakeLambdaContext())
    finally:
        hook.remove()
    assert response["statusCode"] == 200, response["body"][:500]
    assert seen == [torch_thread().ident]
