"""Self-training at the start of a run: a finished run's confident predictions on the pool join training.

The labelling run (``TrainConfig.pseudo_labels_from``) predicts every pool image a person has not
labelled or skipped; those predicted with probability at least ``pseudo_threshold`` join the
training images, at most ``pseudo_cap`` per class (see :func:`~transfer_core.insight.selection.pseudo_labels`).
The list is computed once and kept in the run folder (``pseudo-labels.json``), so a resumed run
trains on exactly the images it started with and anyone can see which images were guessed.
Validation never sees a pseudo-label: evaluation measures real labels only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..data.pool import PoolLabels, load_pool, pool_labels_path_for
from ..data.records import DatasetIndex, ImageRecord
from ..reporting import OnProgress

__all__ = ["PSEUDO_LABELS_FILE", "read_pseudo_labels", "with_pseudo_labels"]

PSEUDO_LABELS_FILE = "pseudo-labels.json"


def read_pseudo_labels(run_path: str | Path) -> list[ImageRecord] | None:
    """The pseudo-labelled images a run trained on, or None when it used none (or the file is unreadable)."""
    try:
        raw = json.loads((Path(run_path) / PSEUDO_LABELS_FILE).read_text(encoding="utf-8"))
        return [ImageRecord(str(item["path"]), str(item["label"])) for item in raw["images"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def with_pseudo_labels(
    train: DatasetIndex, config, run_path: str | Path, device: str, write: Callable[[str, bytes], None],
    on_progress: OnProgress | None = None,
) -> DatasetIndex:
    """``train`` plus the pseudo-labelled pool images of ``config`` (unchanged without ``pseudo_labels_from``).

    ``write(name, bytes)`` keeps the list in the run folder the first time; a run that already has one
    (a resume) reuses it. Predictions naming a class the dataset lacks, or an image already in
    training, are left out.

    Raises:
        WarmstartError: the labelling run or the pool cannot be used.
    """
    if not config.pseudo_labels_from:
        return train
    records = read_pseudo_labels(run_path)
    if records is None:
        from ..insight.selection import pseudo_label_index

        pool = load_pool(config.unlabeled)
        found = pseudo_label_index(config.pseudo_labels_from, pool, PoolLabels.load(pool_labels_path_for(config.unlabeled)),
                                   config.pseudo_threshold, config.pseudo_cap, device, on_progress)
        records = found.records
        payload = {"from": str(config.pseudo_labels_from), "threshold": config.pseudo_threshold, "cap_per_class": config.pseudo_cap,
                   "images": [{"path": r.path, "label": r.label} for r in records]}
        write(PSEUDO_LABELS_FILE, json.dumps(payload, indent=1).encode("utf-8"))
    known, taken = set(train.classes), {r.path for r in train.records}
    added = [r for r in records if r.label in known and r.path not in taken]
    note = (f"{len(added)} pool image(s) pseudo-labelled by {Path(config.pseudo_labels_from).name} joined training "
            f"(probability at least {config.pseudo_threshold:g}, at most {config.pseudo_cap} per class).")
    return DatasetIndex(train.records + added, train.skipped, train.source, train.notes + [note])
