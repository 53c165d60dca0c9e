"""``python -m handler segment --cutouts``: each object as ``<name>.objects/NN-<class>.png`` beside the JSON,
which lists them; checked against the JSON's decoded masks."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import IMAGES
from cutout_checks import assert_cutouts

from handler.cli import main
from handler.engine import decode

PHOTO = IMAGES / "astronaut.jpg"


@pytest.mark.parametrize(("flag", "mode"), [(["--cutouts"], "mask"), (["--cutouts", "box"], "box")])
def test_segment_cutouts_writes_each_object_beside_the_json(tmp_path, segmenter, capsys, flag, mode) -> None:
    image = tmp_path / "in" / "a b.jpg"
    image.parent.mkdir()
    shutil.copy(PHOTO, image)
    out = tmp_path / "out"
    assert main(["segment", str(image), "--out", str(out), "--confidence", "0", "--format", "json", *flag]) == 0
    result = json.loads((out / "a b.jpg.json").read_text())
    assert result["class_names"], "at confidence 0 the test model finds objects"
    assert result["timings_ms"]["cutouts"] > 0
    folder = out / "a b.jpg.objects"
    assert result["cutouts"] == {"mode": mode, "prefix": "a b.jpg.objects/", "names": result["cutouts"]["names"]}
    assert sorted(path.name for path in folder.iterdir()) == result["cutouts"]["names"]
    files = {name: (folder / name).read_bytes() for name in result["cutouts"]["names"]}
    assert_cutouts(files, result, decode(PHOTO.read_bytes(), max_bytes=10**8, max_pixels=10**8), mode)
    assert "1 segmented" in capsys.readouterr().out
    # The folder is an output like the others: kept unless --overwrite.
    assert main(["segment", str(image), "--out", str(out), "--format", "json", *flag]) == 1
    assert "a b.jpg.objects already exists" in capsys.readouterr().out


def test_without_cutouts_no_folder_is_made(tmp_path, segmenter) -> None:
    assert main(["segment", str(PHOTO), "--out", str(tmp_path), "--confidence", "0", "--format", "json"]) == 0
    assert not (tmp_path / "astronaut.jpg.objects").exists()
    assert "cutouts" not in json.loads((tmp_path / "astronaut.jpg.json").read_text())
