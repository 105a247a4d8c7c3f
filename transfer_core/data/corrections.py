"""Corrections a user makes from what the model shows: relabel an image or exclude it.

They live in a JSON file next to the dataset (``<dataset>.corrections.json``), never in the
dataset itself, so the original upload stays untouched and a correction can be undone. A
training config names the file, so a retrained run records exactly which corrections it used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .records import DatasetIndex, ImageRecord
from ..errors import WarmstartError
from ..runs.store import atomic_write_json

__all__ = ["Corrections", "corrections_path_for"]


def corrections_path_for(source: str | Path) -> Path:
    """Where the corrections of dataset ``source`` (a folder, zip or CSV) are kept."""
    source = Path(source)
    return source.with_name(source.name + ".corrections.json")


@dataclass
class Corrections:
    """``relabel`` maps an image path to its corrected class; ``exclude`` lists images to leave out;
    ``original`` keeps each relabelled image's class in the dataset itself, since a page showing a run
    trained with the correction knows the image by its corrected class only."""

    relabel: dict[str, str] = field(default_factory=dict)
    exclude: set[str] = field(default_factory=set)
    original: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.relabel) + len(self.exclude)

    @classmethod
    def load(cls, path: str | Path | None) -> Corrections:
        if path is None or not Path(path).exists():
            return cls()
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                {str(k): str(v) for k, v in raw.get("relabel", {}).items()}, {str(p) for p in raw.get("exclude", [])},
                {str(k): str(v) for k, v in raw.get("original", {}).items()},  # absent from files written before it
            )
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            raise WarmstartError(f"Corrections file '{path}' is unreadable ({exc}); delete it to start over.") from None

    def save(self, path: str | Path) -> None:
        try:
            atomic_write_json(Path(path), {
                "relabel": dict(sorted(self.relabel.items())), "exclude": sorted(self.exclude),
                "original": {k: v for k, v in sorted(self.original.items()) if k in self.relabel},
            })
        except OSError as exc:
            raise WarmstartError(f"Cannot save corrections to '{path}' ({exc.strerror or exc}).") from None

    def set_label(self, path: str, label: str, original: str) -> None:
        """Relabel ``path`` (labelled ``original`` where the caller saw it); setting it back to the
        dataset's own label (the first ``original`` given for it) removes the correction."""
        self.exclude.discard(path)
        original = self.original.get(path, original) if path in self.relabel else original
        if label == original:
            self.relabel.pop(path, None)
            self.original.pop(path, None)
        else:
            self.relabel[path] = label
            self.original[path] = original

    def set_excluded(self, path: str, excluded: bool = True) -> None:
        if excluded:
            self.exclude.add(path)
            self.relabel.pop(path, None)
            self.original.pop(path, None)
        else:
            self.exclude.discard(path)

    def apply(self, index: DatasetIndex) -> DatasetIndex:
        """A copy of ``index`` with relabelled records and without excluded ones."""
        records = [
            ImageRecord(r.path, self.relabel.get(r.path, r.label)) for r in index.records if r.path not in self.exclude
        ]
        notes = list(index.notes)
        if len(self):
            notes.append(f"{len(self.relabel)} image(s) relabelled and {len(self.exclude)} excluded by your corrections.")
        return DatasetIndex(records, index.skipped, index.source, notes)
