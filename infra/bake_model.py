"""Put the PointRend weights into the image at build time, checked against a pinned sha256.

Runs in the Dockerfile's ``model`` stage with nothing but the standard library:

    python bake_model.py --source /build/pointrend_resnet50.pkl --pin-file /build/model.sha256 \
        --url URL --sha256 "$MODEL_SHA256" --dest /opt/model/pointrend_resnet50.pkl

The weights come from ``--source`` when that file exists (copied from the build context), else from
``--url``. The expected sha256 is ``--sha256`` when non-empty, else the line of ``--pin-file`` (``sha256sum``'s
format, one line per release file) that names ``--dest``'s file name (a line with a hash alone pins
``pointrend_resnet50.pkl``). Without any pin, or on a mismatch, it exits non-zero so the image build fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(cli_value: str, pin_file: Path | None, name: str = "pointrend_resnet50.pkl") -> str | None:
    value = cli_value.strip().lower()
    if not value and pin_file is not None and pin_file.is_file():
        for line in pin_file.read_text().splitlines():
            words = line.split()
            legacy = len(words) == 1 and name == "pointrend_resnet50.pkl"  # a hash alone: the one-model format
            if words and (words[1:] in ([name], [f"*{name}"]) or legacy):
                value = words[0].lower()
                break
    return value or None


def download(url: str, dest: Path, timeout: float = 60.0) -> None:
    if not url.startswith(("https://", "http://", "file://")):
        raise SystemExit(f"bake_model: refusing URL scheme of {url!r}")
    print(f"bake_model: downloading {url}", flush=True)
    with urllib.request.urlopen(url, timeout=timeout) as response, dest.open("wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out, CHUNK)


def bake(source: Path | None, url: str, sha256: str, pin_file: Path | None, dest: Path) -> str:
    """Copy or download the weights to ``dest`` and verify them; returns the sha256. Raises SystemExit."""
    expected = expected_sha256(sha256, pin_file, dest.name)
    if expected is None:
        raise SystemExit(
            f"bake_model: no sha256 pin for {dest.name}: pass --build-arg MODEL_SHA256=... or pin it in "
            "infra/model.sha256 (python -m handler fetch-model --backbone ...)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if source is not None and source.is_file():
        print(f"bake_model: using {source} from the build context", flush=True)
        shutil.copyfile(source, part)
    else:
        download(url, part)
    actual = sha256_of(part)
    if actual != expected:
        part.unlink()
        raise SystemExit(f"bake_model: sha256 mismatch: got {actual}, expected {expected}")
    os.chmod(part, 0o644)
    os.replace(part, dest)
    print(f"bake_model: {dest} ({dest.stat().st_size} bytes) sha256 {actual} OK", flush=True)
    return actual


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="weights file to use if it exists")
    parser.add_argument("--url", required=True, help="download URL when --source does not exist")
    parser.add_argument("--sha256", default="", help="expected sha256 (empty: read --pin-file)")
    parser.add_argument("--pin-file", type=Path, default=None, help="file whose first word is the sha256")
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args(argv)
    bake(args.source, args.url, args.sha256, args.pin_file, args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
