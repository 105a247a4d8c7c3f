"""The records a dataset is made of, and the file names that never count as data.

Every source (folder, zip, CSV) becomes a :class:`DatasetIndex`: labeled files plus the files
that were skipped and why, so one bad file never stops an upload and is never silently
ignored either. This module imports no other data module, so all of them can build on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["DatasetIndex", "ImageRecord", "SkippedFile", "is_ignored_name"]

_IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class ImageRecord:
    """One usable image file and its class."""

    path: str
    label: str


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a dataset, as the user would name it, with the reason in plain words."""

    path: str
    reason: str


@dataclass
class DatasetIndex:
    """Labeled image files found in one source, plus what was skipped and why."""

    records: list[ImageRecord]
    skipped: list[SkippedFile] = field(default_factory=list)
    source: str = ""
    notes: list[str] = field(default_factory=list)  # things the user should know that skipped no file

    @property
    def classes(self) -> list[str]:
        return sorted({record.label for record in self.records})

    def counts(self) -> dict[str, int]:
        counter = Counter(record.label for record in self.records)
        return {label: counter[label] for label in self.classes}

    def __len__(self) -> int:
        return len(self.records)


def is_ignored_name(part: str) -> bool:
    """Hidden files and OS debris (``__MACOSX``, ``Thumbs.db``): never user data."""
    return part.startswith(".") or part in _IGNORED_NAMES
