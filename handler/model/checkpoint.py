"""Reading a weights file: a restricted unpickler, the sha256 computed while streaming, an exact-fit load."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from handler.errors import ModelFileError


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


def read_weights(path: Path, expected_sha256: str | None) -> dict[str, np.ndarray]:
    """Unpickle a PixelLib/detectron2 ``.pkl`` (``{"model": {name: ndarray}, "__author__": ...}``).

    A pickle can run code when loaded, so only numpy arrays are unpickled (``WeightsUnpickler``), and with
    ``expected_sha256`` the file is refused unless it is byte-for-byte the pinned one. The file is streamed
    once: the sha256 is computed over the bytes as the unpickler reads them (no second copy of the file).
    """
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise ModelFileError(
            f"model file not found: {path} (run `python -m handler fetch-model`, or point SEG_MODEL_PATH "
            "at a PixelLib pointrend_resnet50.pkl; for tests: `python -m handler make-test-model PATH`)"
        ) from None
    with stream:
        reader = _HashingReader(stream) if expected_sha256 else stream
        try:
            checkpoint, error = WeightsUnpickler(reader, encoding="latin1").load(), None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            checkpoint, error = None, exc
        if expected_sha256:
            actual = reader.hexdigest()
            if actual != expected_sha256.lower():
                raise ModelFileError(f"model file {path} has sha256 {actual}, expected {expected_sha256}")
    if error is not None:
        raise ModelFileError(f"{path} is not a weights pickle: {error}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ModelFileError(f"{path} is not a PixelLib/detectron2 checkpoint (no 'model' dict)")
    return checkpoint["model"]


def load_weights(model: torch.nn.Module, weights: dict[str, np.ndarray], source: Path) -> None:
    """Put ``weights`` into ``model``; keys, shapes and dtypes must match its ``state_dict`` exactly.

    The arrays become the model's tensors without a copy (``assign=True``), so a model built with
    ``init_weights=False`` never touches memory for weights it is about to drop.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{source} does not fit PointRend R50-FPN: {len(missing)} missing keys {missing[:3]}, "
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
