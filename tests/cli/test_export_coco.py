"""``python -m handler export-coco``: results (folders, files, S3 prefixes) as one COCO file, read back by
pycocotools (``COCO()``, ``loadRes``, ``COCOeval``), streamed in bounded memory."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGES
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from handler.cli import main
from handler.cli.export_coco import export_coco
from handler.engine import COCO_CATEGORY_IDS
from handler.model import COCO_CLASS_NAMES
from infra.synthetic_results import synthetic_result, write_results

COUNT = 40


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """COUNT results as the S3 side names them, one in a subfolder, beside an error record and a job record."""
    folder = write_results(tmp_path_factory.mktemp("export"), COUNT)
    (folder / "nested").mkdir()
    shutil.move(folder / "img0000003.jpg.json", folder / "nested" / "img0000003.jpg.json")
    (folder / "broken.jpg.error.json").write_text(json.dumps({"error": {"code": "not_an_image", "message": "no"}}))
    (folder / "job.json").write_text(json.dumps({"job_id": "0" * 32, "status": "done"}))
    (folder / "notes.txt").write_text("not json, not read")
    return folder


def load_results(folder: Path) -> dict[str, dict]:
    """Every result in the folder, by its source key."""
    found = (json.loads(path.read_text()) for path in folder.rglob("*.jpg.json"))
    return {result["source"]["key"]: result for result in found}


def test_instances_file_loads_in_pycocotools_and_carries_every_object(results, tmp_path, capsys) -> None:
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(results), "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    expected = load_results(results)
    objects = sum(len(result["masks"]) for result in expected.values())
    assert f"{COUNT} images, {objects} annotations" in summary
    assert "skipped 1: an error record" in summary and "skipped 1: no image width and height" in summary

    coco = COCO(str(out))
    assert len(coco.imgs) == COUNT and len(coco.anns) == objects
    assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == list(
        zip(COCO_CATEGORY_IDS, COCO_CLASS_NAMES, strict=True)
    )
    assert coco.cats[1]["supercategory"] == "person" and coco.cats[90]["supercategory"] == "indoor"
    assert coco.cats[3]["supercategory"] == "vehicle" and coco.cats[62]["supercategory"] == "furniture"
    id_of = dict(zip(COCO_CLASS_NAMES, COCO_CATEGORY_IDS, strict=True))
    for image in coco.imgs.values():
        result = expected[image["file_name"]]  # the source image's key
        assert (image["width"], image["height"]) == (result["image"]["width"], result["image"]["height"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert [ann["category_id"] for ann in anns] == [id_of[name] for name in result["class_names"]]
        for ann, rle, score in zip(anns, result["masks"], result["scores"], strict=True):
            mask = coco.annToMask(ann)
            assert np.array_equal(mask, coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}))
            assert ann["area"] == int(mask.sum()) and ann["iscrowd"] == 0 and ann["score"] == score  # the float
            rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            x, y, w, h = ann["bbox"]
            assert (x, y, x + w, y + h) == (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1)
    assert sorted(coco.anns) == list(range(1, objects + 1))


def test_predictions_evaluate_against_the_instances_with_ap_1(results, tmp_path) -> None:
    instances, predictions = tmp_path / "instances.json", tmp_path / "predictions.json"
    assert main(["export-coco", str(results), "--out", str(instances)]) == 0
    assert main(["export-coco", str(results), "--out", str(predictions), "--predictions"]) == 0
    listed = json.loads(predictions.read_text())
    assert isinstance(listed, list) and all("id" not in item and 0 < item["score"] <= 1 for item in listed)

    ground_truth = COCO(str(instances))
    for kind in ("segm", "bbox"):
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(str(predictions)), kind)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        assert evaluation.stats[0] == pytest.approx(1.0), kind  # AP@[.5:.95]
        assert evaluation.stats[8] == pytest.approx(1.0), kind  # AR@100


def test_polygon_results_keep_their_polygons(tmp_path) -> None:
    folder = write_results(tmp_path, 10, masks="polygons")
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(folder), "--out", str(out)]) == 0
    coco = COCO(str(out))
    by_key = load_results(folder)
    polygons = [shape for image in coco.dataset["images"] for shape in by_key[image["file_name"]]["polygons"]]
    assert len(polygons) == len(coco.anns) > 0
    for ann, shape in zip(coco.dataset["annotations"], polygons, strict=True):
        assert ann["segmentation"] == (shape or ann["segmentation"])  # an empty one becomes an empty RLE
        assert ann["area"] == int(coco.annToMask(ann).sum())


def test_a_model_with_its_own_classes_gets_categories_1_to_n(tmp_path) -> None:
    classes = ("cat-food", "bowl", "spoon")
    folder = write_results(tmp_path, 12, classes=classes)
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(folder), "--out", str(out)]) == 0  # from the results' model.classes
    coco = COCO(str(out))
    assert [(c["id"], c["name"]) for c in coco.dataset["categories"]] == [(1, "cat-food"), (2, "bowl"), (3, "spoon")]
    names = [coco.cats[ann["category_id"]]["name"] for ann in coco.dataset["annotations"]]
    assert names == [name for result in _in_image_order(coco, folder) for name in result["class_names"]]


def _in_image_order(coco: COCO, folder: Path) -> list[dict]:
    by_key = load_results(folder)
    return [by_key[image["file_name"]] for image in coco.dataset["images"]]


def test_classes_option_for_results_that_do_not_list_them(tmp_path) -> None:
    """Results that do not name their classes (written before models listed them): --classes names them."""
    folder = tmp_path / "results"
    folder.mkdir()
    for index in range(5):
        result = synthetic_result(index, classes=("a", "b"))
        del result["model"]["classes"]
        (folder / f"{index}.json").write_text(json.dumps(result))
    names = tmp_path / "classes.txt"
    names.write_text("a\nb\n")
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(folder), "--out", str(out), "--classes", str(names)]) == 0
    assert [c["name"] for c in json.loads(out.read_text())["categories"]] == ["a", "b"]
    # without the names, "a" is no COCO class: a clear error, and no partial file
    assert main(["export-coco", str(folder), "--out", str(tmp_path / "coco.json")]) == 1
    assert not (tmp_path / "coco.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.txt", "instances.json", "results"]


def test_results_of_two_models_are_refused(tmp_path, capsys) -> None:
    coco_folder = write_results(tmp_path / "coco", 3)
    own_folder = write_results(tmp_path / "own", 3, classes=("a", "b"))
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(own_folder), str(coco_folder), "--out", str(out)]) == 1
    assert "other classes" in capsys.readouterr().err and not out.exists()


def test_a_malformed_result_fails_alone_and_the_exit_code_says_so(results, tmp_path, capsys) -> None:
    folder = tmp_path / "results"
    shutil.copytree(results, folder)
    broken = json.loads((folder / "img0000001.jpg.json").read_text())
    broken["scores"] = broken["scores"] + [99]  # one score more than masks
    (folder / "img0000001.jpg.json").write_text(json.dumps(broken))
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(folder), "--out", str(out)]) == 1
    summary = capsys.readouterr().out
    assert "FAILED 1" in summary and "img0000001.jpg.json: ValueError" in summary
    assert len(COCO(str(out)).imgs) == COUNT - 1


def test_missing_source_is_an_error(tmp_path, capsys) -> None:
    assert main(["export-coco", str(tmp_path / "nowhere"), "--out", str(tmp_path / "i.json")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_s3_prefix_exports_as_the_local_folder_does(results, s3, bucket, tmp_path) -> None:
    for path in sorted(results.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"results/{path.relative_to(results)}", Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key="uploads/img0000001.jpg", Body=b"an image, not under the prefix")
    from_s3, from_disk = tmp_path / "s3.json", tmp_path / "disk.json"
    export_coco([f"s3://{bucket}/results/"], from_s3, progress=False)
    export_coco([str(results)], from_disk, progress=False)

    def by_file(path: Path) -> dict[str, list]:
        coco = COCO(str(path))
        return {
            image["file_name"]: [
                (a["category_id"], a["segmentation"], a["bbox"], a["area"], a["score"])
                for a in coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            ]
            for image in coco.imgs.values()
        }

    assert by_file(from_s3) == by_file(from_disk) and len(by_file(from_s3)) == COUNT


def mask_areas(result: dict) -> list[int]:
    return [int(coco_mask.area({"size": m["size"], "counts": m["counts"].encode()})) for m in result["masks"]]


def evaluate(instances: Path, predictions: Path, kind: str) -> COCOeval:
    ground_truth = COCO(str(instances))
    evaluation = COCOeval(ground_truth, ground_truth.loadRes(str(predictions)), kind)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation


def test_segment_then_export_names_images_by_their_files(segmenter, tmp_path, capsys) -> None:
    """Results of ``segment`` (the real model) carry ``source.file``; the export names images by it, writes
    the model's float scores, and leaves out (and counts) the faint objects whose mask has no pixel."""
    images = [str(IMAGES / name) for name in ("astronaut.jpg", "chelsea.jpg", "rocket.jpg")]
    assert main(["segment", *images, "--out", str(tmp_path / "out"), "--format", "json", "--confidence", "0"]) == 0
    written = {Path(p).name: json.loads(p.read_text()) for p in (tmp_path / "out").iterdir()}
    assert written["astronaut.jpg.json"]["source"] == {"file": images[0]}
    out, predictions = tmp_path / "instances.json", tmp_path / "predictions.json"
    capsys.readouterr()
    assert main(["export-coco", str(tmp_path / "out"), "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert main(["export-coco", str(tmp_path / "out"), "--out", str(predictions), "--predictions"]) == 0
    coco = COCO(str(out))
    assert sorted(image["file_name"] for image in coco.imgs.values()) == sorted(images)
    areas = [area for result in written.values() for area in mask_areas(result)]
    empty = areas.count(0)
    assert empty > 0, "the random model at confidence 0 finds faint objects without pixels: the case under test"
    assert len(coco.anns) == len(areas) - empty and all(ann["area"] > 0 for ann in coco.anns.values())
    assert f"left out {empty} objects with an empty mask" in summary
    by_file = {f"{r['source']['file']}": r for r in written.values()}
    listed = json.loads(predictions.read_text())
    in_order = [by_file[image["file_name"]] for image in coco.dataset["images"]]
    expected = [score for r in in_order for score, area in zip(r["scores"], mask_areas(r), strict=True) if area]
    assert [item["score"] for item in listed] == expected  # the result's floats, not two digits
    assert any(0 < score < 1 and score != round(score, 2) for score in expected)
    for kind in ("segm", "bbox"):
        assert evaluate(out, predictions, kind).stats[0] == pytest.approx(1.0), kind  # AP against itself


def test_memory_does_not_grow_with_the_number_of_results(tmp_path) -> None:
    """The export holds one result at a time: Python's peak allocation for 8x the results stays about the
    same (a list of every annotation would grow 8x)."""

    def peak(count: int) -> int:
        folder = write_results(tmp_path / str(count), count)
        tracemalloc.start()
        try:
            export_coco([str(folder)], tmp_path / f"{count}.json", progress=False)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(50), peak(400)
    written = json.loads((tmp_path / "400.json").read_text())
    assert len(written["images"]) == 400 and len(written["annotations"]) > 1000
    assert large < 1.5 * small, (small, large)


def test_results_written_before_the_schema_version_keep_their_scores_as_fractions(tmp_path) -> None:
    """A result stored before ``schema_version`` (the ancestor's 0-100 integer scores) still exports 0..1."""
    folder = tmp_path / "old"
    folder.mkdir()
    result = synthetic_result(5)
    assert result["scores"], "the synthetic result has objects"
    del result["schema_version"]
    result["scores"] = [int(score * 100) for score in result["scores"]]
    result["boxes"] = [[int(v) for v in box] for box in result["boxes"]]
    (folder / "old.jpg.json").write_text(json.dumps(result))
    out = tmp_path / "predictions.json"
    assert main(["export-coco", str(folder), "--out", str(out), "--predictions"]) == 0
    assert [item["score"] for item in json.loads(out.read_text())] == [score / 100 for score in result["scores"]]
