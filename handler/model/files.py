"""Model weights: PixelLib's release files (download + checksum, a trust-on-first-use pin per file), and writing
a weights file in that format (``save_weights``, used by ``test_models.py``).

The release files, their URLs and their lines in the pin file (``infra/model.sha256``, ``sha256sum``'s format)
are the catalogue's (``handler.core.catalogue``), which the image's bake step reads too.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from handler.core.catalogue import DEFAULT_BACKBONE, pinned_sha256, weights
from handler.core.settings import SHA256_PIN_FILE, Backbone

MODEL_URL = weights(DEFAULT_BACKBONE).url


class DownloadError(Exception):
    pass


class ChecksumMismatch(DownloadError):
    """The downloaded file is not the pinned one: nothing was installed."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    pin_file: Path
    pinned_now: bool  # True: there was no pin, this download's sha256 was written (trust on first use)


def fetch_model(
    dest: Path,
    url: str | None = None,
    pin_file: Path = SHA256_PIN_FILE,
    progress: bool = True,
    backbone: Backbone = "resnet50",
) -> Fetched:
    """Download a backbone's release file and check it against its pin; with no pin for it yet, pin this
    download's sha256 (trust on first use: ``sam build`` needs a pin, and PixelLib publishes no checksum)."""
    release = weights(backbone)
    pin = pinned_sha256(pin_file, backbone)
    actual = download_model(dest, url=url or release.url, expected_sha256=pin, progress=progress)
    if pin is None:
        pin_file.parent.mkdir(parents=True, exist_ok=True)
        with pin_file.open("a") as stream:  # one line per release file
            stream.write(release.pin_line(actual))
    return Fetched(dest, actual, pin_file, pinned_now=pin is None)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_target(dest: Path) -> tempfile._TemporaryFileWrapper:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False)


def download_model(
    dest: Path, url: str = MODEL_URL, expected_sha256: str | None = None, timeout: float = 30.0, progress: bool = True
) -> str:
    """Download to a temporary name beside ``dest``, verify, then rename; returns the sha256."""
    digest = hashlib.sha256()
    part = _atomic_target(dest)
    try:
        with part, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URL)
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    part.write(block)
                    digest.update(block)
                    bar.update(len(block))
        actual = digest.hexdigest()
        if expected_sha256 and actual != expected_sha256.lower():
            raise ChecksumMismatch(f"downloaded file has sha256 {actual}, expected {expected_sha256}; not installed")
        os.chmod(part.name, 0o644)  # readable by the Lambda runtime user, not only the builder
        os.replace(part.name, dest)
        return actual
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(f"cannot download {url}: {exc}") from None
    finally:
        if os.path.exists(part.name):
            os.unlink(part.name)


def save_weights(dest: Path, weights: dict[str, object], author: str) -> Path:
    """Write ``{"model": weights, "__author__": author}``, the real file's format, atomically."""
    part = _atomic_target(dest)
    try:
        with part:
            pickle.dump({"model": weights, "__author__": author}, part, protocol=pickle.HIGHEST_PROTOCOL)
        os.chmod(part.name, 0o644)  # readable by the Lambda runtime user, not only the builder
        os.replace(part.name, dest)
    finally:
        if os.path.exists(part.name):
            os.unlink(part.name)
    return dest
