"""Data health check from pretrained embeddings: near-duplicates, train/validation leakage, likely mislabels.

Pretrained features place visually similar images close together, which is exactly what is
needed to find problems a person would otherwise spot only by looking at every image: the
same photo twice, the same photo in training and in validation (which inflates the score),
and images whose nearest neighbours almost all carry another label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..models.registry import DEFAULT_BACKBONE
from ..data.records import DatasetIndex
from ..errors import WarmstartError
from ..reporting import OnProgress
from .shootout import lazy_pretrained_backbone, pretrained_features

__all__ = ["HealthReport", "health_check"]


@dataclass
class HealthReport:
    """Problems found, each with the files involved; ``similarity`` is cosine similarity of features."""

    near_duplicates: list[dict] = field(default_factory=list)  # within one split: {a, b, similarity, labels}
    leakage: list[dict] = field(default_factory=list)  # {train, val, similarity}
    likely_mislabeled: list[dict] = field(default_factory=list)  # {path, label, suggested, agreement}
    images: int = 0
    duplicate_threshold: float = 1.0  # the similarity used for "the same picture"

    @property
    def clean(self) -> bool:
        return not (self.near_duplicates or self.leakage or self.likely_mislabeled)


def _duplicate_threshold(similarity: np.ndarray) -> float:
    """How similar two images must be to count as one picture, for this dataset.

    Pretrained features of photos of one flower species sit around 0.7 cosine similarity and a
    re-compressed or resized copy above 0.9; upscaled 8x8 digits all look alike to an ImageNet
    network (0.97 between different digits). A pair is a duplicate when it stands out from the
    dataset's own nearest-neighbour similarities (median + 3 median absolute deviations),
    within [0.9, 0.995].
    """
    nearest = similarity.max(axis=1)
    median = float(np.median(nearest))
    spread = float(np.median(np.abs(nearest - median)))
    return float(np.clip(median + 3 * spread, 0.9, 0.995))


def health_check(
    train: DatasetIndex,
    val: DatasetIndex,
    backbone: str = DEFAULT_BACKBONE,
    duplicate_similarity: float | None = None,
    neighbours: int = 5,
    mislabel_agreement: float = 0.8,
    device: str = "cpu",
    on_progress: OnProgress | None = None,
) -> HealthReport:
    """Check a split dataset with ``backbone``'s pretrained features (cached, so a rerun is instant).

    Args:
        duplicate_similarity: cosine similarity at or above which two images count as the same picture;
            None adapts it to the dataset (see :func:`_duplicate_threshold`).
        neighbours: how many nearest neighbours vote on an image's label.
        mislabel_agreement: share of neighbours with one other label that flags an image.
        on_progress: ``(done, total, what)`` (see :mod:`transfer_core.reporting`): images read, then
            images encoded, training and validation together.
    """
    classes = sorted(set(train.classes) | set(val.classes))
    if len(classes) < 2:
        raise WarmstartError("The health check needs at least two classes.")
    build = lazy_pretrained_backbone(backbone, torch.device(device))
    (train_x, _, train_records), (val_x, _, val_records) = pretrained_features(
        backbone, [train, val], classes, torch.device(device), build, on_progress
    )
    records = list(train_records) + list(val_records)
    in_train = np.array([True] * len(train_records) + [False] * len(val_records))
    features = torch.nn.functional.normalize(torch.cat([train_x, val_x]).float(), dim=1)
    similarity = (features @ features.T).numpy()
    np.fill_diagonal(similarity, -1.0)
    if duplicate_similarity is None:
        duplicate_similarity = _duplicate_threshold(similarity)
    report = HealthReport(images=len(records), duplicate_threshold=duplicate_similarity)

    close_i, close_j = np.nonzero(np.triu(similarity >= duplicate_similarity, k=1))
    for i, j in zip(close_i, close_j):
        pair = {"similarity": float(similarity[i, j])}
        if in_train[i] != in_train[j]:
            t, v = (i, j) if in_train[i] else (j, i)
            report.leakage.append({"train": records[t].path, "val": records[v].path, **pair})
        else:
            report.near_duplicates.append(
                {"a": records[i].path, "b": records[j].path, "labels": [records[i].label, records[j].label], **pair}
            )

    k = min(neighbours, len(records) - 1)
    labels = np.array([r.label for r in records])
    if k >= 3:
        nearest = np.argsort(-similarity, axis=1)[:, :k]
        for i, row in enumerate(nearest):
            votes = labels[row]
            others = votes[votes != labels[i]]
            if len(others) == 0:
                continue
            values, counts = np.unique(others, return_counts=True)
            top = int(counts.argmax())
            if counts[top] / k >= mislabel_agreement:
                report.likely_mislabeled.append(
                    {"path": records[i].path, "label": labels[i], "suggested": str(values[top]), "agreement": float(counts[top] / k)}
                )
    for listing, key in ((report.near_duplicates, "similarity"), (report.leakage, "similarity"), (report.likely_mislabeled, "agreement")):
        listing.sort(key=lambda item: -item[key])
    return report
