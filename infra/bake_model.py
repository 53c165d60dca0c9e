"""Put the PointRend weights into the image at build time, checked against a pinned sha256.

Runs in the Dockerfile's ``model`` stage with nothing but the standard library and the model catalogue
(``handler/core/catalogue.py``, copied beside it), which names the backbone's release file, its URL and its pin:

    python bake_model.py --backbone resnet50 --pin-file /build/model.sha256 --context /build \\
        --source "$MODEL_SOURCE" --url "$MODEL_URL" --sha256 "$MODEL_SHA256" --dest-dir /opt/model

The weights come from ``--source`` when that file exists (the smoke build's test model), else from the
backbone's release file in ``--context`` (copied from the build context), else from ``--url`` (empty: the
catalogue's). The expected sha256 is ``--sha256`` when non-empty, else the pin file's line for the release file
(the catalogue's reader). Without any pin, or on a mismatch, it exits non-zero so the image build fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import urllib.request
from pathlib import Path

try:
    from handler.core import catalogue
except ImportError:  # the Dockerfile's model stage: catalogue.py is copied beside this file, no package
    import catalogue  # type: ignore[no-redef]

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, timeout: float = 60.0) -> None:
    if not url.startswith(("https://", "http://", "file://")):
        raise SystemExit(f"bake_model: refusing URL scheme of {url!r}")
    print(f"bake_model: downloading {url}", flush=True)
    with urllib.request.urlopen(url, timeout=timeout) as response, dest.open("wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out, CHUNK)


def bake(
    backbone: str,
    dest_dir: Path,
    *,
    source: Path | None = None,
    context: Path | None = None,
    url: str = "",
    sha256: str = "",
    pin_file: Path | None = None,
) -> str:
    """Copy or download the backbone's weights into ``dest_dir`` under their release file's name and verify
    them; returns the sha256. Raises SystemExit."""
    release = catalogue.weights(backbone)
    expected = sha256.strip().lower() or (catalogue.pinned_sha256(pin_file, backbone) if pin_file else None)
    if not expected:
        raise SystemExit(
            f"bake_model: no sha256 pin for {release.file}: pass --build-arg MODEL_SHA256=... or pin it in "
            "infra/model.sha256 (python -m handler fetch-model --backbone ...)"
        )
    dest = dest_dir / release.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    local = [path for path in (source, context / release.file if context else None) if path and path.is_file()]
    if local:
        print(f"bake_model: using {local[0]} from the build context", flush=True)
        shutil.copyfile(local[0], part)
    else:
        download(url or release.url, part)
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
    parser.add_argument("--backbone", required=True, choices=catalogue.BACKBONES)
    parser.add_argument("--dest-dir", type=Path, required=True, help="the weights go here, named as released")
    parser.add_argument("--source", default="", help="a weights file to use if it exists (empty: none)")
    parser.add_argument("--context", type=Path, default=None, help="a folder that may hold the release file")
    parser.add_argument("--url", default="", help="download URL (empty: the catalogue's)")
    parser.add_argument("--sha256", default="", help="expected sha256 (empty: read --pin-file)")
    parser.add_argument("--pin-file", type=Path, default=None, help="sha256sum-format pins, one line per file")
    args = parser.parse_args(argv)
    source = Path(args.source) if args.source else None
    bake(
        args.backbone,
        args.dest_dir,
        source=source,
        context=args.context,
        url=args.url,
        sha256=args.sha256,
        pin_file=args.pin_file,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
