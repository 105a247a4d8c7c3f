"""The unlabelled pool's share of a run's training images, fixed when the run starts.

Two kinds of pool images can join a run (``TrainConfig.unlabeled``): the ones a person has labelled
so far (the labels file beside the pool), and, with ``pseudo_labels_from``, the ones a finished
run labels confidently (see :func:`~transfer_core.insight.selection.pseudo_labels`). People go on
labelling while a run trains, so both lists are taken once, at the run's first start, and kept in
the run folder (``pool-labels.json``, ``pseudo-labels.json``): a resumed run trains on exactly the
images it started with, and anyone can see which images were labelled by hand and which guessed.
Only images that actually joined are kept (not ones naming an unknown class, nor ones already in
training), so the files count what the run trained on. Validation never sees a pool image.
Under torchrun, rank 0 decides and writes; the other ranks read its lists, so every rank trains on
the same images.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..data.pool import PoolLabels, labelled_pool_index, load_pool, pool_labels_path_for
from ..data.records import DatasetIndex, ImageRecord
from ..errors import WarmstartError
from ..reporting import OnProgress

__all__ = ["POOL_LABELS_FILE", "PSEUDO_LABELS_FILE", "pool_training_images", "read_pool_labels", "read_pseudo_labels"]

POOL_LABELS_FILE = "pool-labels.json"
PSEUDO_LABELS_FILE = "pseudo-labels.json"


def _read(run_path: str | Path, name: str) -> list[ImageRecord] | None:
    try:
        raw = json.loads((Path(run_path) / name).read_text(encoding="utf-8"))
        return [ImageRecord(str(item["path"]), str(item["label"])) for item in raw["images"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_pool_labels(run_path: str | Path) -> list[ImageRecord] | None:
    """The hand-labelled pool images a run trained on, or None when it used none (or the file is unreadable)."""
    return _read(run_path, POOL_LABELS_FILE)


def read_pseudo_labels(run_path: str | Path) -> list[ImageRecord] | None:
    """The pseudo-labelled pool images a run trained on, or None when it used none (or the file is unreadable)."""
    return _read(run_path, PSEUDO_LABELS_FILE)


def _payload(records: list[ImageRecord], **about) -> bytes:
    return json.dumps({**about, "images": [{"path": r.path, "label": r.label} for r in records]}, indent=1).encode("utf-8")


def _joining(train: DatasetIndex, records: list[ImageRecord]) -> list[ImageRecord]:
    known, taken = set(train.classes), {r.path for r in train.records}
    return [r for r in records if r.label in known and r.path not in taken]


def pool_training_images(
    train: DatasetIndex, config, run_path: str | Path, resume: bool, device: str, write: Callable[[str, bytes], None],
    ranks=None, on_progress: OnProgress | None = None,
) -> DatasetIndex:
    """``train`` plus the pool images of ``config`` (unchanged without a pool).

    A first start takes the lists and keeps them in the run folder through ``write(name, bytes)``;
    a resume (``resume``) reads them back. ``ranks`` (a :class:`~transfer_core.training.distributed.Distributed`)
    makes rank 0 alone decide, the others read after a barrier.

    Raises:
        WarmstartError: the pool, its labels file or the labelling run cannot be used.
    """
    if not config.unlabeled:
        return train
    main = ranks is None or ranks.is_main
    notes: list[str] = []
    labelled = read_pool_labels(run_path) if resume or not main else None
    pseudo = read_pseudo_labels(run_path) if config.pseudo_labels_from and (resume or not main) else None
    if main and (labelled is None or (config.pseudo_labels_from and pseudo is None)):
        labels = PoolLabels.load(pool_labels_path_for(config.unlabeled))
        # Read only when something comes from it: an empty or moved pool with nothing labelled blocks no run.
        pool = load_pool(config.unlabeled) if labels.classed or config.pseudo_labels_from else DatasetIndex([])
        if labelled is None:
            found = labelled_pool_index(pool, labels, train.classes)
            labelled, notes = _joining(train, found.records), list(found.notes)
            write(POOL_LABELS_FILE, _payload(labelled, pool=str(config.unlabeled)))
        if config.pseudo_labels_from and pseudo is None:
            from ..insight.selection import pseudo_label_index

            guessed = pseudo_label_index(config.pseudo_labels_from, pool, labels, config.pseudo_threshold, config.pseudo_cap,
                                         device, on_progress)
            pseudo = _joining(DatasetIndex(train.records + labelled), guessed.records)
            write(PSEUDO_LABELS_FILE, _payload(pseudo, **{"from": str(config.pseudo_labels_from), "threshold": config.pseudo_threshold,
                                                          "cap_per_class": config.pseudo_cap}))
    if ranks is not None and ranks.enabled and not resume:
        ranks.barrier()
        if not main:
            labelled, pseudo = read_pool_labels(run_path), read_pseudo_labels(run_path) if config.pseudo_labels_from else []
    if labelled is None or (config.pseudo_labels_from and pseudo is None):
        raise WarmstartError(f"The run folder '{run_path}' lost the list of pool images this run trains on; start the run again.")
    by_hand = _joining(train, labelled)
    guessed = _joining(DatasetIndex(train.records + by_hand), pseudo or [])
    if by_hand:
        notes.append(f"{len(by_hand)} image(s) labelled in the unlabelled pool joined training.")
    if guessed:
        notes.append(f"{len(guessed)} pool image(s) pseudo-labelled by {Path(config.pseudo_labels_from).name} joined training "
                     f"(probability at least {config.pseudo_threshold:g}, at most {config.pseudo_cap} per class).")
    return DatasetIndex(train.records + by_hand + guessed, train.skipped, train.source, train.notes + notes)
