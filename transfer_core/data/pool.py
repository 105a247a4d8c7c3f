"""An unlabelled pool: images with no class folders, and the labels a person gives them one by one.

Labelling is the expensive part of a small project, so the pool is where the next labels come
from (see :mod:`transfer_core.insight.selection`). The pool is read like a labelled dataset (same
header checks, zip safety and limits, every skipped file with its reason) and is never modified:
the labels live in ``<pool>.labels.json`` beside it, written atomically after each label, so a
refresh or a crash loses nothing. Labelled pool images become records that join the dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WarmstartError
from ..reporting import OnProgress
from ..runs.store import atomic_write_json
from .archives import extract_zip
from .records import DatasetIndex, ImageRecord, SkippedFile, is_ignored_name
from .sources import dataset_root, unusable_reasons

__all__ = ["SKIP", "PoolLabels", "labelled_pool_index", "load_pool", "pool_labels_path_for"]

SKIP = "skip"  # "not any class": never suggested again, never joins the dataset
UNLABELLED = ""  # the label of a pool record: none yet


def pool_labels_path_for(source: str | Path) -> Path:
    """Where the labels of pool ``source`` (a folder or zip) are kept: beside it, never inside."""
    source = Path(source)
    return source.with_name(source.name + ".labels.json")


def load_pool(source: str | Path, extract_dir: str | Path | None = None, on_progress: OnProgress | None = None) -> DatasetIndex:
    """Index every usable image under a folder or zip, sub-folders included, with no label.

    Sub-folders are only places (a pool has no classes), so images anywhere count. Each file is
    header-checked once as in :func:`~transfer_core.data.sources.scan_folder`; bad files are
    skipped with their reason.

    Raises:
        WarmstartError: naming ``source`` when it does not exist, is not a folder or zip, or holds no image.
    """
    path = Path(source)
    if not path.exists():
        raise WarmstartError(f"Unlabelled pool '{source}' does not exist; give a folder or a .zip of images.")
    skipped: list[SkippedFile] = []
    if path.is_file() and path.suffix.lower() == ".zip":
        top, skipped = extract_zip(path, extract_dir)
        root = dataset_root(top)
    elif path.is_dir():
        root = path
    else:
        raise WarmstartError(f"Unlabelled pool '{path.name}' is neither a folder nor a .zip of images.")
    files: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_ignored_name(d))
        for name in sorted(filenames):
            if not is_ignored_name(name):
                file = os.path.join(dirpath, name)
                files.append((file, os.path.relpath(file, root).replace(os.sep, "/")))
    reasons = unusable_reasons(files, root, on_progress)
    records = [ImageRecord(file, UNLABELLED) for (file, _), reason in zip(files, reasons) if not reason]
    skipped += [SkippedFile(shown, reason) for (_, shown), reason in zip(files, reasons) if reason]
    if not records:
        raise WarmstartError(f"No usable images found in the unlabelled pool '{source}'.")
    return DatasetIndex(records, skipped, str(path))


@dataclass
class PoolLabels:
    """Per pool image (by path): its class, or :data:`SKIP`.

    ``history`` lists every change as ``(image, label it had before or None)``, oldest first, so
    :meth:`undo` puts back exactly what was there: a relabel undone restores the first label.
    """

    labels: dict[str, str] = field(default_factory=dict)
    history: list[tuple[str, str | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def order(self) -> list[str]:
        """Labelled images, the most recently changed last."""
        last = {image: i for i, (image, _) in enumerate(self.history)}
        return sorted((p for p in self.labels if p in last), key=last.get) + [p for p in self.labels if p not in last]

    @classmethod
    def load(cls, path: str | Path) -> PoolLabels:
        if not Path(path).exists():
            return cls()
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            labels = {str(k): str(v) for k, v in raw["labels"].items()}
            if "history" in raw:
                history = [(str(image), None if before is None else str(before)) for image, before in raw["history"]]
            else:  # a file from before undo remembered earlier labels
                history = [(str(p), None) for p in raw.get("order", []) if str(p) in labels]
            return cls(labels, history)
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise WarmstartError(f"Pool labels file '{path}' is unreadable ({exc}); delete it to start over.") from None

    def save(self, path: str | Path) -> None:
        """Write the whole file atomically: a crash mid-write leaves the previous labels, never half a file."""
        try:
            atomic_write_json(Path(path), {"labels": dict(sorted(self.labels.items())), "history": [list(h) for h in self.history]})
        except OSError as exc:
            raise WarmstartError(f"Cannot save pool labels to '{path}' ({exc.strerror or exc}).") from None

    def set(self, image: str, label: str) -> None:
        """Label ``image`` (a class name, or :data:`SKIP`); labelling it again replaces the label."""
        if not label.strip():
            raise WarmstartError("A pool label must be a class name or 'skip'.")
        if self.labels.get(image) == label.strip():
            return
        self.history.append((image, self.labels.get(image)))
        self.labels[image] = label.strip()

    def remove(self, image: str) -> None:
        """Take ``image``'s label back (it is unlabelled again; undo gives the label back)."""
        if image in self.labels:
            self.history.append((image, self.labels.pop(image)))

    def undo(self) -> str | None:
        """Reverse the last change (a label given, changed or taken back); the image it was on (None when there is none)."""
        if not self.history:
            return None
        image, before = self.history.pop()
        if before is None:
            self.labels.pop(image, None)
        else:
            self.labels[image] = before
        return image

    @property
    def classed(self) -> dict[str, str]:
        """The images given a class (skipped ones left out)."""
        return {p: c for p, c in self.labels.items() if c != SKIP}


def labelled_pool_index(pool: DatasetIndex, labels: PoolLabels, classes: Sequence[str] | None = None) -> DatasetIndex:
    """The pool images given a class, as records that join the dataset of the next run.

    Labels of files no longer in the pool (removed since) are left out, with a note; with ``classes``
    (the dataset's), so are labels naming another class (a hand-edited labels file), since a class
    with no validation images could not be measured.
    """
    present = {r.path for r in pool.records}
    classed = labels.classed
    records = [ImageRecord(r.path, classed[r.path]) for r in pool.records if r.path in classed]
    gone = sum(1 for p in classed if p not in present)
    notes = [f"{gone} labelled pool image(s) are no longer in the pool and were left out."] if gone else []
    if classes is not None:
        strange = sorted({r.label for r in records} - set(classes))
        if strange:
            kept = [r for r in records if r.label in set(classes)]
            notes.append(f"{len(records) - len(kept)} labelled pool image(s) name classes the dataset lacks "
                         f"({', '.join(strange)}) and were left out.")
            records = kept
    return DatasetIndex(records, [], pool.source, notes)
