"""Reading a weights file (PixelLib ``.pkl`` or torch ``.pth``): a restricted unpickler, the sha256 computed while
streaming, what the weights say (class count, backbone), an exact-fit load."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from handler.core.errors import ModelFileError


class WeightsUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else: a weights file cannot run code here."""

    ALLOWED = frozenset(
        {
            ("collections", "OrderedDict"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        return super().find_class(module, name)


class _HashingReader:
    """A file wrapper that hashes what the unpickler reads, so the file is read (and copied) only once."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.digest.update(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self._stream.readinto(buffer)
        self.digest.update(memoryview(buffer)[:count])
        return count

    def hexdigest(self) -> str:
        for block in iter(lambda: self.read(1 << 20), b""):  # whatever follows the pickle counts too
            del block
        return self.digest.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A weights file's arrays, the sha256 of its bytes, and what they say about the model."""

    weights: dict[str, np.ndarray]
    sha256: str

    @property
    def num_classes(self) -> int:
        """The classes the box classifier scores (its last row is detectron2's background)."""
        scores = self.weights.get(CLASS_SCORE_KEY)
        if scores is None or np.ndim(scores) != 2:
            raise ModelFileError(f"not a PointRend checkpoint: no 2-D {CLASS_SCORE_KEY}")
        return int(np.shape(scores)[0]) - 1

    @property
    def backbone(self) -> str:
        """PixelLib's name for the ResNet the weights are for: X-101 has grouped 3x3 convs and 23 res4 blocks."""
        return "resnet101" if X101_KEY in self.weights else "resnet50"


CLASS_SCORE_KEY = "roi_heads.box_predictor.cls_score.weight"
X101_KEY = "backbone.bottom_up.res4.22.conv1.weight"


def read_checkpoint(path: Path, expected_sha256: str | None) -> Checkpoint:
    """A PixelLib/detectron2 ``.pkl``, or a ``.pth`` state dict (detectron2's training output), checked.

    With ``expected_sha256`` the file is refused unless it is byte-for-byte the pinned one; the sha256 is
    computed either way (``/healthz`` and every result name the exact file).
    """
    if path.suffix == ".pth":
        return _read_pth(path, expected_sha256)
    weights, digest = _read_pkl(path, expected_sha256)
    return Checkpoint(weights, digest)


def read_weights(path: Path, expected_sha256: str | None) -> dict[str, np.ndarray]:
    """The arrays of a weights file (``read_checkpoint``'s), checked against ``expected_sha256`` when given."""
    return read_checkpoint(path, expected_sha256).weights


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise ModelFileError(
            f"model file not found: {path} (run `python -m handler fetch-model [--backbone resnet101]`, or point "
            "SEG_MODEL_PATH at a PixelLib pointrend_resnet50.pkl / pointrend_resnet101.pkl or your own PointRend "
            "checkpoint; for tests: `python -m handler make-test-model PATH`)"
        ) from None


def _check_sha256(path: Path, actual: str, expected: str | None) -> None:
    if expected and actual != expected.lower():
        raise ModelFileError(f"model file {path} has sha256 {actual}, expected {expected}")


def _read_pkl(path: Path, expected_sha256: str | None) -> tuple[dict[str, np.ndarray], str]:
    """Unpickle ``{"model": {name: ndarray}, "__author__": ...}``, PixelLib's (detectron2's) format.

    A pickle can run code when loaded, so only numpy arrays are unpickled (``WeightsUnpickler``). The file is
    streamed once: the sha256 is computed over the bytes as the unpickler reads them (no second copy).
    """
    with _open(path) as stream:
        reader = _HashingReader(stream)
        try:
            checkpoint, error = WeightsUnpickler(reader, encoding="latin1").load(), None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            checkpoint, error = None, exc
        digest = reader.hexdigest()
    _check_sha256(path, digest, expected_sha256)
    if error is not None:
        raise ModelFileError(f"{path} is not a weights pickle: {error}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ModelFileError(f"{path} is not a PixelLib/detectron2 checkpoint (no 'model' dict)")
    return checkpoint["model"], digest


def _read_pth(path: Path, expected_sha256: str | None) -> Checkpoint:
    """A torch state dict, bare or under ``"model"`` (detectron2's ``model_final.pth``), loaded with
    ``weights_only=True``: tensors and plain containers only, no code."""
    with _open(path) as stream:
        digest = hashlib.sha256()
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    _check_sha256(path, digest.hexdigest(), expected_sha256)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for a bad or unsafe file
        raise ModelFileError(f"{path} is not a torch state dict readable with weights_only=True: {exc}") from None
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path} is not a state dict of tensors (bare or under 'model')")
    return Checkpoint({name: tensor.numpy() for name, tensor in state.items()}, digest.hexdigest())


def load_weights(
    model: torch.nn.Module, weights: dict[str, np.ndarray], source: Path, architecture: str = "PointRend R50-FPN"
) -> None:
    """Put ``weights`` into ``model``; keys, shapes and dtypes must match its ``state_dict`` exactly.

    The arrays become the model's tensors without a copy (``assign=True``), so a model built with
    ``init_weights=False`` never touches memory for weights it is about to drop.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{source} does not fit {architecture}: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    tensors = {}
    for name, value in weights.items():
        array = np.asarray(value)
        target = expected[name]
        if tuple(array.shape) != tuple(target.shape):
            raise ModelFileError(f"{source}: {name} has shape {tuple(array.shape)}, expected {tuple(target.shape)}")
        if not array.flags.writeable or not array.flags.c_contiguous or array.dtype != target.numpy().dtype:
            array = np.array(array, dtype=target.numpy().dtype, order="C")  # own, writable memory
        tensors[name] = torch.from_numpy(array)
    model.load_state_dict(tensors, strict=True, assign=True)
