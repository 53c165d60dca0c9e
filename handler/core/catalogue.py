"""The model catalogue: each backbone's PixelLib release file (its name, spelled here once), where it is
downloaded from, and its line in the pin file. Settings, ``fetch-model``, the image's bake step, the Makefile
and the Dockerfile (through its ``MODEL_BACKBONE`` build argument) all read it.

Standard library only, and runnable as a script, because the Makefile and the Dockerfile's model stage run it
without the service's packages: ``python3 handler/core/catalogue.py resnet101 file`` prints
``pointrend_resnet101.pkl`` (``url``, ``name`` likewise).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

# PixelLib's ``network_backbone`` names: resnet101 is PointRend's X-101-32x8d-FPN (docs/models.md).
Backbone = Literal["resnet50", "resnet101"]
BACKBONES: tuple[Backbone, ...] = get_args(Backbone)
DEFAULT_BACKBONE: Backbone = "resnet50"
RELEASE_URL = "https://github.com/ayoolaolafenwa/PixelLib/releases/download/0.2.0/"


@dataclass(frozen=True)
class Weights:
    """One release file of PixelLib 0.2.0."""

    backbone: Backbone
    file: str  # the release file's name, also the name it has on disk and in the pin file

    @property
    def name(self) -> str:
        """The model's name in results and ``/healthz``: the file name without ``.pkl``."""
        return self.file.removesuffix(".pkl")

    @property
    def url(self) -> str:
        return RELEASE_URL + self.file

    def pin_line(self, sha256: str) -> str:
        """Its line in the pin file, ``sha256sum``'s format (so ``sha256sum -c`` checks it)."""
        return f"{sha256}  {self.file}\n"


CATALOGUE: dict[Backbone, Weights] = {b: Weights(b, f"pointrend_{b}.pkl") for b in BACKBONES}


def weights(backbone: str) -> Weights:
    if backbone not in CATALOGUE:
        raise ValueError(f"unknown backbone {backbone!r}: one of {', '.join(BACKBONES)}")
    return CATALOGUE[backbone]  # type: ignore[index]


def pinned_sha256(pin_file: Path, backbone: str) -> str | None:
    """The one pin-file reader: the sha256 that ``pin_file`` pins for ``backbone``'s release file, if any. A line
    with a hash alone (the single-model format before) pins the default backbone's file."""
    file = weights(backbone).file
    try:
        lines = pin_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        words = line.split()
        legacy = len(words) == 1 and backbone == DEFAULT_BACKBONE
        if words and (words[1:] in ([file], [f"*{file}"]) or legacy):
            return words[0].lower()
    return None


if __name__ == "__main__":
    backbone, field = sys.argv[1:3] if len(sys.argv) == 3 else (DEFAULT_BACKBONE, sys.argv[1])
    print(getattr(weights(backbone), field))
