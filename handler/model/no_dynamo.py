"""Import torchvision (PixelLib's layers need ``torchvision.ops``) without importing ``torch._dynamo``.

``torchvision.ops.roi_align`` does ``from torch._dynamo.utils import is_compile_supported`` at module level,
and ``import torchvision`` reaches it through ``torchvision.models``: the whole compiler stack (dynamo, fx
passes, sympy, triton probing) was about a second and a half of every cold start, for a function that
``roi_align`` calls only when torchvision's compiled ops are missing or deterministic algorithms run on a GPU:
never on this CPU path (where ``torch.ops.torchvision.roi_align`` is used).

While torchvision is imported, ``sys.modules["torch._dynamo.utils"]`` holds a tiny stand-in whose
``is_compile_supported`` imports the real one on first call. Python's import system returns a module found in
``sys.modules`` without importing its parent package (``torch._dynamo``), so nothing else is loaded. The
stand-in is removed right after: a later ``import torch._dynamo`` (``torch.compile``, anything) gets the
real package. ``tests/system/test_cold_start.py`` fails when ``torch._dynamo`` is back in the init's imports.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STUBBED = "torch._dynamo.utils"


def _is_compile_supported(device_type: Any) -> Any:
    from torch._dynamo.utils import is_compile_supported  # the real one, only when it is actually needed

    return is_compile_supported(device_type)


@contextmanager
def dynamo_deferred() -> Iterator[None]:
    """Inside: ``from torch._dynamo.utils import is_compile_supported`` binds a deferring stand-in."""
    if STUBBED in sys.modules or "torch._dynamo" in sys.modules:
        yield  # already imported (or stubbed by an outer block): nothing to save
        return
    stand_in = types.ModuleType(STUBBED, "stand-in until torch._dynamo is really needed (handler.model.no_dynamo)")
    stand_in.is_compile_supported = _is_compile_supported  # type: ignore[attr-defined]
    sys.modules[STUBBED] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(STUBBED) is stand_in:
            del sys.modules[STUBBED]


def import_torchvision() -> None:
    with dynamo_deferred():
        import torchvision.ops  # noqa: F401
