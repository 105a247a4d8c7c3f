"""Training and validation sets: a seeded, stratified split, or the dataset's own ``val/`` folder.

Every tool that looks at a run (trainer, LR finder, predictions, export, embedding map) asks
:func:`load_run_split` for the run's sets, so they all see the same images.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import WarmstartError
from ..reporting import OnProgress
from .corrections import Corrections
from .records import DatasetIndex, ImageRecord
from .sources import load_dataset, load_source

__all__ = ["load_run_split", "load_train_val", "split_train_val"]


def split_train_val(index: DatasetIndex, val_fraction: float, seed: int = 0) -> tuple[DatasetIndex, DatasetIndex]:
    """Stratified, seeded split: each class contributes ``val_fraction`` of its images to validation.

    Every class keeps at least one training image; classes with two or more images give at
    least one to validation, so every class is measured.
    """
    if not 0.0 < val_fraction < 1.0:
        raise WarmstartError(f"Validation fraction must be between 0 and 1, got {val_fraction}.")
    rng = random.Random(seed)
    train: list[ImageRecord] = []
    val: list[ImageRecord] = []
    for label in index.classes:
        members = [r for r in index.records if r.label == label]
        rng.shuffle(members)
        n_val = round(len(members) * val_fraction)
        n_val = min(max(n_val, 1 if len(members) >= 2 else 0), len(members) - 1)
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    train.sort(key=lambda r: (r.label, r.path))
    val.sort(key=lambda r: (r.label, r.path))
    return DatasetIndex(train, index.skipped, index.source, index.notes), DatasetIndex(val, [], index.source)


def load_run_split(config, on_progress: OnProgress | None = None) -> tuple[DatasetIndex, DatasetIndex]:
    """The training and validation indexes a :class:`~transfer_core.config.TrainConfig` trains on
    (its data, validation data or split, seed and corrections), so every tool sees the run's own split.
    Pool images join a run's training images only in the trainer (:mod:`transfer_core.training.pool_data`).
    ``on_progress`` is told of the files checked (see :func:`~transfer_core.data.sources.scan_folder`)."""
    return load_train_val(config.data, config.val_data, config.val_split, config.seed, corrections=config.corrections,
                          on_progress=on_progress)


def load_train_val(
    source: str | Path,
    val_source: str | Path | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    extract_dir: str | Path | None = None,
    corrections: str | Path | None = None,
    on_progress: OnProgress | None = None,
) -> tuple[DatasetIndex, DatasetIndex]:
    """Training and validation indexes from one source (split or ``train/``+``val/`` layout) or two.

    ``corrections`` names a corrections file (see :mod:`transfer_core.data.corrections`) applied
    before the split. ``on_progress`` is told of the files checked (see :func:`~transfer_core.data.sources.scan_folder`).

    Raises:
        WarmstartError: when validation has classes that training lacks, or nothing to validate on.
    """
    train, val = load_source(source, extract_dir, on_progress)
    if val_source is not None:
        val = load_dataset(val_source, extract_dir, on_progress)
    if corrections is not None:
        fixes = Corrections.load(corrections)
        train = fixes.apply(train)
        val = fixes.apply(val) if val is not None else None
    if val is None:
        train, val = split_train_val(train, val_fraction, seed)
    unknown = sorted(set(val.classes) - set(train.classes))
    if unknown:
        raise WarmstartError(
            f"Validation set has classes with no training images: {', '.join(unknown)}."
        )
    if len(val) == 0:
        raise WarmstartError("Every class has a single image, so nothing is left for validation; add images.")
    return train, val
