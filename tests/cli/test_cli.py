"""The command line: batch segmentation, --help, and the model file commands."""

import hashlib
import json
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import IMAGES, REPO
from PIL import Image

from handler.cli import main
from handler.core.catalogue import pinned_sha256, weights
from handler.model.files import DownloadError, download_model


def test_segment_a_folder_with_one_bad_file(tmp_path, segmenter, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("astronaut.jpg", "chelsea.jpg"):
        shutil.copy(IMAGES / name, inputs / name)
    (inputs / "notes.jpg").write_text("not an image at all")
    out = tmp_path / "out"
    code = main(["segment", *sorted(map(str, inputs.iterdir())), "--out", str(out), "--confidence", "0"])
    summary = capsys.readouterr().out
    assert code == 1
    assert "2 segmented" in summary and "1 failed" in summary and "notes.jpg" in summary
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut.jpg.json",
        "astronaut.jpg.png",
        "chelsea.jpg.json",
        "chelsea.jpg.png",
    ]
    body = json.loads((out / "astronaut.jpg.json").read_text())
    assert body["image"] == {"width": 320, "height": 320} and body["mask_shape"][2] == len(body["masks"])
    with Image.open(out / "astronaut.jpg.png") as overlay:
        assert overlay.size == (320, 320)


def test_segment_all_good_exits_zero_and_json_only(tmp_path, segmenter, capsys):
    code = main(["segment", str(IMAGES / "rocket.jpg"), "--out", str(tmp_path), "--format", "json"])
    assert code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["rocket.jpg.json"]
    assert "1 segmented" in capsys.readouterr().out


def test_same_names_in_two_folders_both_get_their_results(tmp_path, segmenter, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(IMAGES / ("rocket.jpg" if folder == "a" else "chelsea.jpg"), tmp_path / folder / "x.jpg")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "a/x.jpg"), str(tmp_path / "b/x.jpg"), "--out", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a/x.jpg.json", "a/x.jpg.png", "b/x.jpg.json", "b/x.jpg.png"]
    sizes = {json.loads((out / folder / "x.jpg.json").read_text())["image"]["width"] for folder in ("a", "b")}
    assert len(sizes) == 2  # each its own image's result: rocket and chelsea differ in size
    assert "2 segmented" in capsys.readouterr().out


def test_outputs_into_the_inputs_folder_never_replace_an_input(tmp_path, segmenter, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(IMAGES / "coffee.png", photos / "c.png")
    shutil.copy(IMAGES / "coffee.png", photos / "c.png.png")  # what c.png's overlay would be called
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    code = main(["segment", str(photos / "c.png"), str(photos / "c.png.png"), "--out", str(photos), "--format", "png"])
    assert code == 1
    summary = capsys.readouterr().out
    assert "would replace an input file" in summary and "1 segmented" in summary
    assert {p.name: p.read_bytes() for p in photos.iterdir() if p.name in before} == before  # inputs intact
    assert sorted(p.name for p in photos.iterdir()) == ["c.png", "c.png.png", "c.png.png.png"]


def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path, segmenter, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "rocket.jpg.json").write_text("mine")
    image = str(IMAGES / "rocket.jpg")
    assert main(["segment", image, "--out", str(out), "--format", "json"]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().out
    assert (out / "rocket.jpg.json").read_text() == "mine"
    assert main(["segment", image, "--out", str(out), "--format", "json", "--overwrite"]) == 0
    assert json.loads((out / "rocket.jpg.json").read_text())["image"]["width"] > 0


def test_output_names_mirror_folders_under_the_common_root(tmp_path):
    from handler.cli.naming import OutputPlan, common_root, output_base

    inputs = [tmp_path / "a" / "x.jpg", tmp_path / "a" / "deep" / "x.jpg"]
    assert common_root(inputs) == tmp_path.resolve() / "a"
    plan = OutputPlan(inputs, tmp_path / "out")
    assert plan.targets(inputs[1], [".json"]) == [tmp_path / "out" / "deep" / "x.jpg.json"]
    assert output_base(inputs[0], plan.root, tmp_path / "out").with_suffix(".jpg.objects").name == "x.jpg.objects"


def test_help_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "handler", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60, check=True
    )
    commands = ("serve", "segment", "submit", "fetch-model", "backfill", "export-coco", "make-test-model")
    for command in commands:
        assert command in result.stdout
    assert "\n    invoke " not in result.stdout  # dev tooling, not shipped: python -m infra invoke
    infra = subprocess.run(
        [sys.executable, "-m", "infra", "invoke", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert infra.returncode == 0 and "EVENT.json" in infra.stdout and "--repeat" in infra.stdout


def test_make_test_model_runs_where_only_the_package_is_shipped(tmp_path):
    """The image copies handler/ alone: the command must not need infra/, tests/ or bench/."""
    shutil.copytree(REPO / "handler", tmp_path / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-E", "-s", "-m", "handler", "make-test-model", "model.pkl", "--classes", "a,b"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["classes"] == ["a", "b"] and (tmp_path / "model.pkl").stat().st_size > 0


@pytest.fixture
def file_server(tmp_path):
    payload = b"pretend weights " * 1000
    (tmp_path / "model.pkl").write_bytes(payload)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/model.pkl", payload
    server.shutdown()
    server.server_close()


def test_download_verifies_and_renames_atomically(tmp_path, file_server):
    url, payload = file_server
    dest = tmp_path / "models" / "pointrend_resnet50.pkl"
    digest = hashlib.sha256(payload).hexdigest()
    assert download_model(dest, url=url, expected_sha256=digest, progress=False) == digest
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no .part left behind


def test_download_with_wrong_checksum_installs_nothing(tmp_path, file_server):
    url, _ = file_server
    dest = tmp_path / "models" / "pointrend_resnet50.pkl"
    with pytest.raises(DownloadError, match="expected"):
        download_model(dest, url=url, expected_sha256="0" * 64, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_offline_download_is_a_clear_error(tmp_path):
    dest = tmp_path / "m.pkl"
    with pytest.raises(DownloadError, match="cannot download"):
        download_model(dest, url="http://127.0.0.1:9/none.pkl", timeout=5, progress=False)
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_fetch_model_command_fails_with_instructions_when_offline(tmp_path, capsys):
    offline = "http://127.0.0.1:9/pointrend_resnet50.pkl"  # port 9 (discard): connection refused
    assert main(["fetch-model", "--dest", str(tmp_path / "m.pkl"), "--url", offline]) == 1
    err = capsys.readouterr().err
    assert "cannot download" in err and "SEG_MODEL_PATH" in err and "make-test-model" in err


# --- fetch-model's sha256 pin (infra/model.sha256; here a pin file in tmp_path) ---------------------


def test_fetch_model_without_a_pin_writes_one_and_says_so(tmp_path, file_server, capsys):
    url, payload = file_server
    pin = tmp_path / "infra" / "model.sha256"
    dest = tmp_path / "models" / "pointrend_resnet50.pkl"
    assert main(["fetch-model", "--dest", str(dest), "--url", url, "--pin-file", str(pin)]) == 0
    digest = hashlib.sha256(payload).hexdigest()
    assert pin.read_text() == f"{digest}  pointrend_resnet50.pkl\n"
    assert pinned_sha256(pin, "resnet50") == digest and dest.read_bytes() == payload
    out = capsys.readouterr().out
    assert "TRUSTED ON FIRST USE" in out and str(pin) in out and "--pin-file" in out


def test_fetch_model_with_a_matching_pin_keeps_it(tmp_path, file_server, capsys):
    url, payload = file_server
    pin = tmp_path / "model.sha256"
    pin.write_text(f"{hashlib.sha256(payload).hexdigest()}  pointrend_resnet50.pkl\n")
    before = pin.read_text()
    dest = tmp_path / "m.pkl"
    assert main(["fetch-model", "--dest", str(dest), "--url", url, "--pin-file", str(pin)]) == 0
    assert pin.read_text() == before and dest.read_bytes() == payload
    assert "matches the pin" in capsys.readouterr().out


def test_fetch_model_resnet101_has_its_own_pin_line(tmp_path, file_server, capsys):
    """PixelLib release 0.2.0's X-101 file, pinned on first use beside the R50 pin, then checked against it."""
    assert weights("resnet101").url == (
        "https://github.com/ayoolaolafenwa/PixelLib/releases/download/0.2.0/pointrend_resnet101.pkl"
    )
    url, payload = file_server
    digest = hashlib.sha256(payload).hexdigest()
    pin = tmp_path / "model.sha256"
    r50_line = f"{'a' * 64}  pointrend_resnet50.pkl\n"
    pin.write_text(r50_line)
    dest = tmp_path / "models" / "x101.pkl"
    fetch = ["fetch-model", "--backbone", "resnet101", "--dest", str(dest), "--url", url, "--pin-file", str(pin)]
    assert main(fetch) == 0
    assert pin.read_text() == f"{r50_line}{digest}  pointrend_resnet101.pkl\n"
    assert pinned_sha256(pin, "resnet101") == digest and pinned_sha256(pin, "resnet50") == "a" * 64
    assert "TRUSTED ON FIRST USE" in capsys.readouterr().out
    assert main(fetch) == 0 and "matches the pin" in capsys.readouterr().out
    (tmp_path / "model.pkl").write_bytes(b"another file")  # the server now serves something else
    assert main(fetch) == 1 and "does not match the sha256 pinned" in capsys.readouterr().err
    # R50 is checked against its own line, not the X-101 one:
    assert main(["fetch-model", "--dest", str(tmp_path / "r50.pkl"), "--url", url, "--pin-file", str(pin)]) == 1
    assert "expected " + "a" * 64 in capsys.readouterr().err


def test_make_test_model_backbone_and_classes(tmp_path, capsys):
    path = tmp_path / "three.pkl"
    assert main(["make-test-model", str(path), "--classes", "cat,dog,bird", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == ["cat", "dog", "bird"] and summary["backbone"] == "resnet50"
    from handler.model import read_checkpoint

    checkpoint = read_checkpoint(path, None)
    assert (checkpoint.num_classes, checkpoint.backbone) == (3, "resnet50")
    with pytest.raises(SystemExit):
        main(["make-test-model", str(path), "--classes", "cat,cat"])
    assert "distinct class names" in capsys.readouterr().err


def test_fetch_model_with_a_different_pin_fails_and_installs_nothing(tmp_path, file_server, capsys):
    url, _ = file_server
    pin = tmp_path / "model.sha256"
    pin.write_text("0" * 64 + "\n")
    dest = tmp_path / "models" / "m.pkl"
    assert main(["fetch-model", "--dest", str(dest), "--url", url, "--pin-file", str(pin)]) == 1
    assert pin.read_text() == "0" * 64 + "\n"
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    err = capsys.readouterr().err
    assert "expected " + "0" * 64 in err and "does not match the sha256 pinned" in err


def test_segment_checks_its_options_as_every_entry_point_does(tmp_path, capsys):
    """``segment`` validates through RequestOptions: a bad value is refused before any file is read."""
    image = tmp_path / "x.jpg"
    shutil.copy(IMAGES / "astronaut.jpg", image)
    assert main(["segment", str(image), "--out", str(tmp_path / "out"), "--confidence", "1.5"]) == 2
    assert "--confidence" in capsys.readouterr().err and not (tmp_path / "out").exists()
