"""The summary of a command over many files; imports nothing heavy, so the client commands stay light."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FilesReport:
    """What a command over many files did (``segment``, ``submit``): each failure with its reason."""

    verb: str = "segmented"
    written: list[Path] = field(default_factory=list)
    objects: int = 0
    succeeded: int = 0
    failed: dict[Path, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"{self.succeeded} {self.verb} ({self.objects} objects), {len(self.failed)} failed"]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed.items()]
        return "\n".join(lines)
