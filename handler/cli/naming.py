"""Where the CLI writes what it made of an input file: named as on S3, never onto an input, never over a file.

An input's outputs take its whole name plus a suffix (``x.jpg`` -> ``x.jpg.json``, ``x.jpg.png``, as
``results/<key>.json`` on S3), at its path relative to the inputs' common folder: ``a/x.jpg`` and
``b/x.jpg`` give ``OUT/a/x.jpg.json`` and ``OUT/b/x.jpg.json``. ``segment`` (and its ``--cutouts``
folder, ``<base>.objects/``) plan their names here, before any model work.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class OutputRefused(Exception):
    """This input's outputs cannot be written: one would replace an input or, without --overwrite, a file."""


def common_root(paths: Iterable[Path]) -> Path:
    """The deepest folder holding every one of ``paths`` (resolved)."""
    folders = [str(path.resolve().parent) for path in paths]
    return Path(os.path.commonpath(folders)) if folders else Path.cwd()


def output_base(path: Path, root: Path, out_dir: Path) -> Path:
    """``OUT/<path relative to root>``: add a suffix (``.json``, ``.png``, ``.objects``) for each output."""
    return out_dir / path.resolve().relative_to(root)


@dataclass
class OutputPlan:
    """The outputs of a batch of inputs, checked against the inputs and the files already there."""

    inputs: Sequence[Path]
    out_dir: Path
    overwrite: bool = False
    root: Path = field(init=False)
    _inputs: frozenset[Path] = field(init=False)

    def __post_init__(self) -> None:
        self.root = common_root(self.inputs)
        self._inputs = frozenset(path.resolve() for path in self.inputs)

    def base(self, path: Path) -> Path:
        return output_base(path, self.root, self.out_dir)

    def targets(self, path: Path, suffixes: Sequence[str]) -> list[Path]:
        """The output paths of ``path``, one per suffix; ``OutputRefused`` says why they cannot be written."""
        base = self.base(path)
        targets = [base.with_name(base.name + suffix) for suffix in suffixes]
        for target in targets:
            if target.resolve() in self._inputs:
                raise OutputRefused(f"its output {target} would replace an input file; choose another --out")
            if target.exists() and not self.overwrite:
                raise OutputRefused(f"{target} already exists; pass --overwrite to replace it")
        return targets
