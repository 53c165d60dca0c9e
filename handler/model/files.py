"""Model weights: the real PixelLib release file (download + checksum) and a random test stand-in."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    import torch

from handler.settings import SHA256_PIN_FILE

MODEL_URL = "https://github.com/ayoolaolafenwa/PixelLib/releases/download/0.2.0/pointrend_resnet50.pkl"
TEST_MODEL_AUTHOR = "pointrend-lambda make-test-model (random init, NOT trained weights)"


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


def pinned_sha256(pin_file: Path = SHA256_PIN_FILE) -> str | None:
    """The sha256 pinned in ``pin_file`` (first word of the first line), if any."""
    try:
        text = pin_file.read_text().strip()
    except FileNotFoundError:
        return None
    return text.split()[0].lower() if text else None


def fetch_model(dest: Path, url: str = MODEL_URL, pin_file: Path = SHA256_PIN_FILE, progress: bool = True) -> Fetched:
    """Download the weights and check them against the pin; with no pin yet, pin this download's sha256
    (trust on first use: ``sam build`` needs a pin, and PixelLib publishes no checksum to copy one from)."""
    pin = pinned_sha256(pin_file)
    actual = download_model(dest, url=url, expected_sha256=pin, progress=progress)
    if pin is None:
        pin_file.parent.mkdir(parents=True, exist_ok=True)
        pin_file.write_text(f"{actual}  {dest.name}\n")  # sha256sum's format; the build reads the first word
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


def make_test_model(dest: Path, seed: int = 0, *, dense: bool = False) -> Path:
    """A randomly initialised PointRend R50-FPN in exactly the real file's format.

    The real ``pointrend_resnet50.pkl`` is a plain pickle ``{"model": {name: ndarray}, "__author__": ...}``
    that PixelLib's (detectron2's) checkpointer reads; this writes the same structure with the same keys.
    ``dense``: the crowded worst case, 100 objects (PixelLib's per-image cap) on any image (``dense_detector``).
    """
    import torch

    from handler.model.pixellib import build_pointrend

    torch.manual_seed(seed)
    model = build_pointrend()
    if dense:
        dense_detector(model)
    weights = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    part = _atomic_target(dest)
    try:
        with part:
            pickle.dump({"model": weights, "__author__": TEST_MODEL_AUTHOR}, part, protocol=pickle.HIGHEST_PROTOCOL)
        os.chmod(part.name, 0o644)  # readable by the Lambda runtime user, not only the builder
        os.replace(part.name, dest)
    finally:
        if os.path.exists(part.name):
            os.unlink(part.name)
    return dest


DENSE_CLASS = 0  # "person": a crowd
DENSE_LOGIT = 30.0


def dense_detector(model: torch.nn.Module) -> None:
    """Make every RPN anchor a proposal and every proposal a certain ``person``: the crowded worst case.

    Random RPN and box regressions blow boxes up to the image's edges (a handful survive the NMS), and the
    random objectness ranks one FPN level first (all boxes one size). With zero deltas and zero objectness
    the proposals are the anchors themselves, all levels alike (32 to 512 px at three aspect ratios on the
    model input), and the boxes are the proposals. A zero-weight box classifier with a bias of +30 for one
    class gives that class a softmax score of exactly 1.0 in float32 for every proposal, on any image and at
    any confidence below 1; the NMS keeps hundreds and PixelLib's per-image cap keeps 100.
    """
    import torch

    rpn = model.proposal_generator.rpn_head
    box_predictor = model.roi_heads.box_predictor
    with torch.no_grad():
        for layer in (rpn.anchor_deltas, rpn.objectness_logits, box_predictor.bbox_pred, box_predictor.cls_score):
            layer.weight.zero_()
            layer.bias.zero_()
        box_predictor.cls_score.bias[DENSE_CLASS] = DENSE_LOGIT
