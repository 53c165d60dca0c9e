"""bench/engine.py's engines, each in its own process (as deployed: its own allocator, thread pool and memory).

Kinds: ``stock`` (a, c), ``stock_tuned`` (a': stock in a process with our allocator settings), ``ours`` (the
Lambda function as Lambda loads it: ``import handler.lambda_function``; b, b_http, b0, the matmul rate and
FLOPs). Each answers ("check" | "time" | "flops", label),
("matmul",), ("stages", label, repeats) until ("stop",). Stock processes never import ``handler`` (importing
it tunes the allocator): they import PixelLib as stock users do.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

MODEL_TEXT = {
    "stock": "stock PixelLib (a, c)",
    "ours": "our Lambda function: lambda_handler (b_http), engine (b, b0)",
    "stock_tuned": "stock PixelLib with our allocator settings (a')",
}


def run_here(function: Any, *args: Any) -> Any:
    """Stock's side: its model lives on this process's main thread, so its bench work runs there too."""
    return function(*args)


class BenchContext:
    """The Lambda context attributes the handler reads; time is never short here."""

    aws_request_id = "00000000-0000-4000-8000-000000000000"
    function_name = "bench"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def http_event(upload: bytes, confidence: float) -> dict[str, Any]:
    """``POST /segment?confidence=c`` with the upload as multipart field ``image``, as API Gateway sends it."""
    from events.make_http_events import http_api_v2, multipart

    return http_api_v2(
        "POST", "/segment", {"confidence": str(confidence)}, *multipart("image", "i.jpg", "image/jpeg", upload)
    )


def stock_pixellib():
    from PIL import Image

    Image.LINEAR = getattr(Image, "LINEAR", Image.BILINEAR)  # PixelLib 0.7.1 needs it with Pillow >= 10
    import pixellib.torchbackend.instance as pixellib_instance

    return pixellib_instance.instanceSegmentation()


def ancestor_request(stock, upload: bytes) -> str:
    """The ancestor PixelLibAPI's /segmentapi: save the upload, segmentImage(path), its flat JSON."""
    with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as saved:
        saved.write(upload)
    try:
        result, _ = stock.segmentImage(saved.name)
    finally:
        os.unlink(saved.name)
    masks = result["masks"]
    return json.dumps(
        {
            "boxes": result["boxes"].tolist(),
            "class_ids": result["class_ids"].tolist(),
            "class_names": result["class_names"],
            "mask_shape": list(masks.shape) if len(result["class_ids"]) else [*masks.shape[1:], 0],
            "object_counts": dict(result["object_counts"]),
            "scores": result["scores"].tolist(),
        }
    )


def _load_ours(model: str, confidence: float):
    os.environ.update(
        SEG_MODEL_PATH=model,
        SEG_CONFIDENCE=str(confidence),
        SEG_DETECTION_SPEED="normal",
        SEG_METRICS="false",
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    from handler.engine import get_segmenter
    from handler.lambda_function import lambda_handler  # Lambda's init: imports, the model

    return lambda_handler, get_segmenter()


def _our_check(segmenter, rgb: np.ndarray, confidence: float) -> dict[str, np.ndarray]:
    from pycocotools import mask as coco_mask

    from handler.engine import segment_rgb

    found = segment_rgb(rgb, segmenter, confidence)
    masks = np.zeros((len(found), *rgb.shape[:2]), bool)  # full size, to compare with stock's
    for mask, rle in zip(masks, found.masks, strict=True):
        mask[:] = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    return {"class_ids": found.class_ids, "boxes": np.asarray(found.seed_boxes), "masks": masks}


def engine_worker(kind: str, model: str, confidence: float, uploads: dict[str, bytes], conn) -> None:
    """Runs in a child process: load one engine, then answer commands until ("stop",)."""
    import cv2

    warnings.simplefilter("ignore")
    frames = {}
    for label, upload in uploads.items():
        bgr = cv2.imdecode(np.frombuffer(upload, np.uint8), cv2.IMREAD_COLOR)  # the pixels segmentImage reads
        frames[label] = (bgr, np.ascontiguousarray(bgr[:, :, ::-1]))
    if kind.startswith("stock"):
        if kind == "stock_tuned":
            from handler.core.allocator import tune_allocator

            tune_allocator()
        stock = stock_pixellib()
        stock.load_model(model, confidence=confidence)
    else:
        lambda_handler, segmenter = _load_ours(model, confidence)
        events = {label: http_event(upload, confidence) for label, upload in uploads.items()}
    # Ours runs its model on the one model thread (handler/model/torch_thread.py); the bench's own torch work
    # (the matmul control, the stages, the FLOP count) goes there too, or this process would have a second
    # OpenMP team and time everything under libgomp's throttled waits.
    on_model_thread = run_here
    if not kind.startswith("stock"):
        from handler.model.torch_thread import torch_thread

        on_model_thread = torch_thread().run
    conn.send("ready")
    while True:
        command = conn.recv()
        if command[0] == "stop":
            conn.send({"rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            return
        if command[0] == "matmul":
            from bench.stages import matmul_flops_per_s

            conn.send(on_model_thread(matmul_flops_per_s))
            continue
        label = command[1]
        bgr, rgb = frames[label]
        if command[0] == "stages":
            from bench.stages import stage_report

            conn.send(on_model_thread(stage_report, segmenter, rgb, confidence, command[2]))
        elif command[0] == "flops":
            from bench.stages import forward_flops, model_input

            segmenter._box_predictor.test_score_thresh = confidence
            conn.send(on_model_thread(forward_flops, segmenter.model, model_input(segmenter, rgb)))
        elif command[0] == "check":
            if kind.startswith("stock"):
                result, _ = stock.segmentFrame(bgr.copy())
                conn.send({k: np.asarray(result[k]) for k in ("class_ids", "boxes", "masks")})
            else:
                conn.send(_our_check(segmenter, rgb, confidence))
        elif kind.startswith("stock"):
            conn.send(_time_stock(kind, stock, bgr, uploads[label]))
        else:
            conn.send(_time_ours(segmenter, lambda_handler, uploads[label], events[label], confidence))


class Clock:
    """Wall seconds and this process's CPU seconds (user + system, all threads) of what runs inside it."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, key: str) -> Iterator[None]:
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        yield
        wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
        self.times[key] = wall
        self.times[f"{key}_cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _time_stock(kind: str, stock, bgr: np.ndarray, upload: bytes) -> dict[str, float]:
    clock = Clock()
    frame = bgr.copy()  # segmentFrame draws on its input
    with clock("a" if kind == "stock" else "a'"):
        stock.segmentFrame(frame)
    if kind == "stock":
        with clock("c"):
            ancestor_request(stock, upload)
    return clock.times


def _time_ours(segmenter, lambda_handler, upload: bytes, event: dict, confidence: float) -> dict:
    """(b): the engine from the upload bytes to the response JSON, in this (main) thread; (b_http): the same
    bytes as an HTTP API v2 event through ``lambda_handler`` (Mangum, FastAPI, its worker thread); (b0): the
    model forward inside (b_http), from its answer's ``timings_ms``.

    The two sizes alternate, and the first image after a change of size pays for memory the allocator cannot
    reuse from the other size: so (b) and (b_http) take turns at going first, one order per call."""
    from handler.core.settings import get_settings
    from handler.engine import RequestOptions, segment_bytes

    clock = Clock()

    def engine() -> Any:
        with clock("b"):
            result = segment_bytes(upload, segmenter, get_settings(), RequestOptions(confidence=confidence)).result
            json.dumps(result.to_json())
        return result

    def http() -> dict:
        with clock("b_http"):
            response = lambda_handler(event, BenchContext())
        if response["statusCode"] != 200:
            raise SystemExit(f"HTTP {response['statusCode']}: {response['body'][:500]}")
        return json.loads(response["body"])

    _TURNS[0] += 1
    if _TURNS[0] % 2:
        result, answer = engine(), http()
    else:
        answer, result = http(), engine()
    clock.times["b0"] = answer["timings_ms"]["model"] / 1000
    if len(answer["boxes"]) != len(result):
        raise SystemExit("the HTTP path found other objects than the engine on the same bytes")
    return clock.times


_TURNS = [0]  # calls of _time_ours in this process: which of (b) and (b_http) goes first


def start_engines(kinds: list[str], model: Path, confidence: float, uploads: dict[str, bytes]) -> dict:
    context = multiprocessing.get_context("spawn")
    engines = {}
    for kind in kinds:
        parent, child = context.Pipe()
        process = context.Process(target=engine_worker, args=(kind, str(model), confidence, uploads, child))
        process.start()
        engines[kind] = (process, parent)
    for kind, (_, parent) in engines.items():
        if parent.recv() != "ready":
            raise SystemExit(f"engine {kind} did not start")
    return engines


def ask(engines: dict, kind: str, *command: Any) -> Any:
    _, conn = engines[kind]
    conn.send(command)
    return conn.recv()


def stop_engines(engines: dict) -> dict[str, float]:
    """Stop every engine; their peak RSS (MB)."""
    rss = {}
    for kind, (process, conn) in engines.items():
        try:
            conn.send(("stop",))
            rss[kind] = conn.recv()["rss_peak_mb"]
        except (BrokenPipeError, EOFError):
            pass
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    return rss


def compare_outputs(stock: dict, ours: dict, label: str) -> tuple[bool, str]:
    """Same objects: classes, boxes within 1 px (both truncated to ints, as PixelLib does), mask IoU >= 0.99."""
    stock_ids = stock["class_ids"].reshape(-1).tolist()
    our_ids = ours["class_ids"].reshape(-1).tolist()
    if len(stock_ids) != len(our_ids):
        return False, f"{label}: {len(stock_ids)} objects from stock, {len(our_ids)} from ours"
    if stock_ids != our_ids:
        return False, f"{label}: classes differ (stock {stock_ids}, ours {our_ids})"
    if not stock_ids:
        return True, f"{label}: no objects from either"
    stock_boxes = stock["boxes"].reshape(-1, 4).astype(np.int64)
    box_diff = int(np.abs(stock_boxes - ours["boxes"].reshape(-1, 4).astype(np.int64)).max())
    stock_masks = stock["masks"].transpose(2, 0, 1)  # PixelLib: (H, W, N)
    ious = []
    for mine, theirs in zip(ours["masks"], stock_masks, strict=True):
        union = np.logical_or(mine, theirs).sum()
        ious.append(np.logical_and(mine, theirs).sum() / union if union else 1.0)
    text = f"{label}: {len(stock_ids)} objects, same classes, boxes within {box_diff} px, min mask IoU {min(ious):.4f}"
    return box_diff <= 1 and min(ious) >= 0.99, text
