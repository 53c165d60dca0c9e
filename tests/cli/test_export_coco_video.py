"""``export-coco`` on video results: JSON Lines (one line per processed frame: ``frame``, ``time_ms``, the image
result's fields, ``track_ids``), each frame an image ``<video>/frame_000123``, track ids on the annotations.

The lines are written here from real engine results (the random test model on decoded frames), as the video
command writes them, so these tests do not depend on the video producer."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import IMAGES
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from handler.cli import main
from handler.cli.export_coco import export_coco
from handler.engine import SCHEMA_VERSION, decode, segment_rgb
from infra.synthetic_results import synthetic_result

FRAME_STEP = 3  # every third frame processed (--every 3)


def frames() -> list[np.ndarray]:
    """Four decoded frames of one size: two photos and their mirror images, as a clip's frames would differ."""
    astronaut = decode((IMAGES / "astronaut.jpg").read_bytes(), max_bytes=10**7, max_pixels=10**7)
    chelsea = decode((IMAGES / "chelsea.jpg").read_bytes(), max_bytes=10**7, max_pixels=10**7)
    chelsea = cv2.resize(chelsea, (astronaut.shape[1], astronaut.shape[0]))
    return [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), chelsea, np.ascontiguousarray(chelsea[::-1])]


def video_line(index: int, result: dict[str, Any], first_track: int) -> dict[str, Any]:
    """The video contract's line for processed frame ``index``: frame, time_ms, the result, track_ids."""
    count = len(result["class_names"])
    return {
        "frame": index * FRAME_STEP,
        "time_ms": round(index * FRAME_STEP * 1000 / 30, 3),
        **result,
        "track_ids": list(range(first_track, first_track + count)),
    }


@pytest.fixture(scope="module")
def clip(segmenter, tmp_path_factory) -> Path:
    """``results/clip.mp4.jsonl`` from the engine's results on four frames, beside one image's result."""
    folder = tmp_path_factory.mktemp("video") / "results"
    folder.mkdir()
    lines, track = [], 1
    for index, rgb in enumerate(frames()):
        result = segment_rgb(rgb, segmenter, confidence=0.0).to_json()
        lines.append(video_line(index, result, track))
        track += len(result["class_names"])
    assert sum(len(line["class_names"]) for line in lines) >= 4, "the test model finds objects at confidence 0"
    (folder / "clip.mp4.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (folder / "photo.jpg.json").write_text(json.dumps(synthetic_result(1)))
    return folder


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def areas(result: dict[str, Any]) -> list[int]:
    return [int(coco_mask.area({"size": m["size"], "counts": m["counts"].encode()})) for m in result["masks"]]


def test_each_processed_frame_is_an_image_and_keeps_its_track_ids(clip, tmp_path, capsys) -> None:
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(clip), "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    lines = read_lines(clip / "clip.mp4.jsonl")
    assert lines[0]["schema_version"] == SCHEMA_VERSION
    assert f"{len(lines) + 1} images ({len(lines)} of them video frames)" in summary
    coco = COCO(str(out))
    by_name = {image["file_name"]: image for image in coco.dataset["images"]}
    assert set(by_name) == {f"clip.mp4/frame_{index * FRAME_STEP:06d}" for index in range(4)} | {
        "uploads/img0000001.jpg"
    }
    empty = 0
    for line in lines:
        image = by_name[f"clip.mp4/frame_{line['frame']:06d}"]
        assert (image["width"], image["height"]) == (line["image"]["width"], line["image"]["height"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        kept = [index for index, area in enumerate(areas(line)) if area]
        empty += len(line["class_names"]) - len(kept)
        assert [ann["track_id"] for ann in anns] == [line["track_ids"][index] for index in kept]
        assert [ann["score"] for ann in anns] == [line["scores"][index] for index in kept]
        for ann, index in zip(anns, kept, strict=True):
            rle = line["masks"][index]
            assert np.array_equal(coco.annToMask(ann), coco_mask.decode({**rle, "counts": rle["counts"].encode()}))
    assert ("left out" in summary) == (empty > 0)


def test_a_video_export_evaluates_against_itself_with_ap_1(clip, tmp_path) -> None:
    instances, predictions = tmp_path / "instances.json", tmp_path / "predictions.json"
    assert main(["export-coco", str(clip / "clip.mp4.jsonl"), "--out", str(instances)]) == 0
    assert main(["export-coco", str(clip / "clip.mp4.jsonl"), "--out", str(predictions), "--predictions"]) == 0
    listed = json.loads(predictions.read_text())
    assert listed and all(isinstance(item["track_id"], int) for item in listed)
    ground_truth = COCO(str(instances))
    assert len(ground_truth.imgs) == 4
    for kind in ("segm", "bbox"):
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(str(predictions)), kind)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        assert evaluation.stats[0] == pytest.approx(1.0), kind


def test_bad_lines_are_skipped_and_counted_the_rest_exported(clip, tmp_path, capsys) -> None:
    lines = (clip / "clip.mp4.jsonl").read_text().splitlines()
    no_frame = json.loads(lines[1])
    del no_frame["frame"]
    broken = [lines[0], "{not json", json.dumps(no_frame), "", json.dumps({"error": {"code": "x"}}), lines[2]]
    source = tmp_path / "broken.mov.jsonl"
    source.write_text("\n".join(broken) + "\n")
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(source), "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "skipped 1: not JSON" in summary and "skipped 1: a video line without its frame index" in summary
    assert "skipped 1: an error record" in summary
    names = [image["file_name"] for image in json.loads(out.read_text())["images"]]
    assert names == [f"broken.mov/frame_{json.loads(line)['frame']:06d}" for line in (lines[0], lines[2])]


def test_an_s3_video_exports_as_the_local_file_does(clip, s3, bucket, tmp_path) -> None:
    s3.put_object(Bucket=bucket, Key="results/clip.mp4.jsonl", Body=(clip / "clip.mp4.jsonl").read_bytes())
    from_s3, from_disk = tmp_path / "s3.json", tmp_path / "disk.json"
    export_coco([f"s3://{bucket}/results/"], from_s3, progress=False)
    export_coco([str(clip / "clip.mp4.jsonl")], from_disk, progress=False)
    assert json.loads(from_s3.read_text()) == json.loads(from_disk.read_text())


def test_memory_does_not_grow_with_the_number_of_frames(tmp_path) -> None:
    """One line in memory at a time: Python's peak for 8x the frames stays about the same."""

    def peak(count: int) -> int:
        path = tmp_path / f"v{count}.mp4.jsonl"
        with path.open("w") as lines:
            for index in range(count):
                lines.write(json.dumps(video_line(index, synthetic_result(index % 4), 1)) + "\n")
        tracemalloc.start()
        try:
            export_coco([str(path)], tmp_path / f"{count}.json", progress=False)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(50), peak(400)
    assert len(json.loads((tmp_path / "400.json").read_text())["images"]) == 400
    assert large < 1.5 * small, (small, large)
