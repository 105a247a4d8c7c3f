"""Data health check from pretrained embeddings: near-duplicates, train/validation leakage, likely mislabels.

Pretrained features place visually similar images close together, which is exactly what is
needed to find problems a person would otherwise spot only by looking at every image: the
same photo twice, the same photo in training and in validation (which inflates the score),
and images that look like another class far more than like their own. A list of suspects is
only useful when it is short and right, so a label is questioned only on strong evidence
(see :func:`likely_mislabels`), and each suspect carries that evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models.registry import DEFAULT_BACKBONE
from ..data.records import DatasetIndex
from ..errors import WarmstartError
from ..reporting import OnProgress
from .label_errors import labels_to_check
from .neighbours import BLOCK_BYTES, NeighbourTable, neighbour_table, pairs_at_least
from .shootout import lazy_pretrained_backbone, pretrained_features

__all__ = [
    "Findings", "HealthReport", "SimilarPair", "find_problems", "health_check", "likely_mislabels", "mislabel_evidence",
    "neighbour_agreement",
]


@dataclass
class HealthReport:
    """Problems found, each with the files involved; ``similarity`` is cosine similarity of features."""

    near_duplicates: list[dict] = field(default_factory=list)  # within one split: {a, b, similarity, labels}
    leakage: list[dict] = field(default_factory=list)  # {train, val, similarity}
    likely_mislabeled: list[dict] = field(default_factory=list)  # strongest first; keys: see likely_mislabels
    images: int = 0
    duplicate_threshold: float = 1.0  # the similarity used for "the same picture"
    neighbour_agreement: float | None = None  # the typical share of an image's nearest neighbours with its label
    labels_to_check: list[dict] = field(default_factory=list)  # the review list, see label_errors.labels_to_check; + path
    labels_note: str | None = None  # why confident learning could not judge the labels (e.g. a one-image class)

    @property
    def clean(self) -> bool:
        return not (self.near_duplicates or self.leakage or self.likely_mislabeled)

    @property
    def summary(self) -> str:
        """One plain sentence: "No duplicates, no leakage, no likely mislabels among 398 images." or what was found."""
        parts = [
            _count(len(self.near_duplicates), "near-duplicate pair", "no duplicates"),
            _count(len(self.leakage), "image in both training and validation", "no leakage",
                   plural="images in both training and validation"),
            _count(len(self.likely_mislabeled), "likely mislabel", "no likely mislabels"),
        ]
        sentence = f"{', '.join(parts)} among {self.images:,} images."
        if not self.likely_mislabeled and self.labels_to_check:  # the other ranking still doubts some labels
            n = len(self.labels_to_check)
            sentence = (f"{sentence[:-1]} by the neighbour vote; {n} label{'s are' if n != 1 else ' is'} still worth a look "
                        f"(a model that never saw {'them' if n != 1 else 'it'} doubts {'them' if n != 1 else 'it'}): "
                        "see Labels to check.")
        return sentence[0].upper() + sentence[1:]


def _count(n: int, one: str, none: str, plural: str | None = None) -> str:
    """'no X', '1 X' or 'n Xs'."""
    return none if n == 0 else f"1 {one}" if n == 1 else f"{n:,} {plural or one + 's'}"


def _duplicate_threshold(nearest: np.ndarray) -> float:
    """How similar two images must be to count as one picture, for this dataset.

    ``nearest`` holds each image's similarity to its most similar other image. Pretrained
    features of photos of one flower species sit around 0.7 cosine similarity and a
    re-compressed or resized copy above 0.9; upscaled 8x8 digits all look alike to an ImageNet
    network (0.97 between different digits). A pair is a duplicate when it stands out from the
    dataset's own nearest-neighbour similarities (median + 3 median absolute deviations),
    within [0.9, 0.995].
    """
    median = float(np.median(nearest))
    spread = float(np.median(np.abs(nearest - median)))
    return float(np.clip(median + 3 * spread, 0.9, 0.995))


def likely_mislabels(table: NeighbourTable, agreement: float = 0.8, strength: float = 1.1) -> list[dict]:
    """Images whose features place them inside another class, strongest evidence first.

    The rule. For an image labelled ``y``, let ``s_x`` be its mean similarity to its ``k``
    nearest images labelled ``x`` (itself left out). It is flagged as class ``c`` when both hold:

    1. at least ``agreement`` of its ``k`` nearest neighbours carry the one other label ``c``;
    2. its margin ``s_c - s_y`` is at least ``strength`` times the *typical margin* of class ``c``
       over ``y``: the median of ``s_c - s_y`` over the images labelled ``c``.

    Why: an image that truly belongs to ``c`` looks like a typical ``c`` image, so its margin is
    about the typical one (``strength`` near 1). A correctly labelled but unusual ``y`` image, an
    ant photographed on the flowers most bees are photographed on, has ``c`` neighbours too, but
    it sits at the edge of ``c``, not inside it: its margin is a fraction of the typical one.
    Neighbour votes alone (condition 1) flag such images by the dozen wherever two classes share
    backgrounds. The typical margin calibrates the bar to the dataset and the backbone: tight,
    well-separated classes need a large margin, overlapping ones a small one. ``strength`` 1.1
    asks a little more than a typical image of ``c`` shows, since that typical margin is a median
    over a few dozen images; with it, clean photo sets (flowers, two or five classes) and the
    bundled digits flagged nothing in development, while about 30-60 % of randomly planted
    mislabels in them were found, each first in the list.

    Args:
        table: the images' neighbourhoods (see :func:`~transfer_core.insight.neighbours.neighbour_table`),
            whose ``k`` is the number of neighbours considered.
        agreement: the share of neighbours that must carry the one other label.
        strength: how many typical margins an image's margin must reach.

    Returns:
        One dict per flagged image, by ``strength``, highest first: ``index``, ``label``, ``suggested``,
        ``votes`` (neighbours labelled ``suggested``) of ``neighbours``, ``agreement`` (their share),
        ``neighbour_similarity`` (``s_c``), ``own_similarity`` (``s_y``), ``margin``, ``typical_margin``
        and ``strength`` (margin / typical margin).
    """
    k, classes, index, by_class = table.k, table.classes, table.class_index, table.by_class
    if k < 3 or len(classes) < 2:
        return []
    neighbour_classes = index[table.nearest]
    others = (neighbour_classes != index[:, None]).sum(axis=1)
    typical_margins: dict[tuple[int, int], float] = {}
    found = []
    for i in np.flatnonzero(others >= agreement * k):  # a single other label cannot outvote all other labels together
        y = index[i]
        votes = np.bincount(neighbour_classes[i], minlength=len(classes))
        votes[y] = 0
        c = int(votes.argmax())
        if votes[c] < agreement * k:
            continue
        own, other = by_class[i, y], by_class[i, c]
        if (c, y) not in typical_margins:
            members = index == c
            typical_margins[(c, y)] = float(np.median(by_class[members, c] - by_class[members, y]))
        typical = typical_margins[(c, y)]
        margin = float(other - own)
        if not (np.isfinite(margin) and np.isfinite(typical)) or typical <= 0 or margin < strength * typical:
            continue
        found.append({
            "index": int(i), "label": str(classes[y]), "suggested": str(classes[c]), "votes": int(votes[c]), "neighbours": k,
            "agreement": float(votes[c] / k), "neighbour_similarity": float(other), "own_similarity": float(own),
            "margin": margin, "typical_margin": typical, "strength": margin / typical,
        })
    return sorted(found, key=lambda item: -item["strength"])


def neighbour_agreement(table: NeighbourTable) -> float:
    """The mean share of an image's ``k`` nearest neighbours that carry its own label."""
    return float((table.class_index[table.nearest] == table.class_index[:, None]).mean())


@dataclass(frozen=True)
class SimilarPair:
    """Two images (positions in the checked set, ``a < b``) at least the duplicate threshold alike."""

    a: int
    b: int
    similarity: float


@dataclass(frozen=True)
class Findings:
    """What :func:`find_problems` found, by position in the feature matrix."""

    pairs: list[SimilarPair]  # most similar first
    duplicate_threshold: float
    neighbour_agreement: float | None
    mislabels: list[dict]  # see likely_mislabels


def find_problems(
    features: np.ndarray,
    labels: Sequence[str],
    duplicate_similarity: float | None = None,
    neighbours: int = 5,
    agreement: float = 0.8,
    strength: float = 1.1,
    block_bytes: int = BLOCK_BYTES,
) -> Findings:
    """Duplicates, the neighbour agreement and likely mislabels among ``features``, found by exact neighbour search.

    Memory grows with n·k (and n·classes), never n·n: see :mod:`transfer_core.insight.neighbours`.

    Args:
        features: ``(n, d)`` pretrained features (n >= 2), compared by cosine similarity.
        labels: each image's label.
        duplicate_similarity: the "same picture" threshold; None adapts it (see :func:`_duplicate_threshold`).
        neighbours, agreement, strength: see :func:`likely_mislabels`.
        block_bytes: the most similarities held at once.
    """
    table = neighbour_table(features, labels, neighbours, block_bytes)
    threshold = _duplicate_threshold(table.similarity[:, 0]) if duplicate_similarity is None else duplicate_similarity
    pairs = [SimilarPair(a, b, s) for a, b, s in pairs_at_least(features, table, threshold, block_bytes)]
    pairs.sort(key=lambda pair: -pair.similarity)
    enough = min(neighbours, len(labels) - 1) >= 1
    return Findings(pairs, threshold, neighbour_agreement(table) if enough else None, likely_mislabels(table, agreement, strength))


def mislabel_evidence(item: dict) -> str:
    """The evidence for one entry of :func:`likely_mislabels`, as a sentence a person can check."""
    label, other = item["label"], item["suggested"]
    return (
        f"Labelled {label}, but {item['votes']} of its {item['neighbours']} nearest images are labelled {other}. "
        f"It is {item['neighbour_similarity']:.2f} similar to its nearest {other} and {item['own_similarity']:.2f} to its "
        f"nearest {label}: {item['margin']:.2f} closer to {other}, while a typical {other} image is "
        f"{item['typical_margin']:.2f} closer (evidence {item['strength']:.1f}×)."
    )


def health_check(
    train: DatasetIndex,
    val: DatasetIndex,
    backbone: str = DEFAULT_BACKBONE,
    duplicate_similarity: float | None = None,
    neighbours: int = 5,
    mislabel_agreement: float = 0.8,
    mislabel_strength: float = 1.1,
    device: str = "cpu",
    on_progress: OnProgress | None = None,
) -> HealthReport:
    """Check a split dataset with ``backbone``'s pretrained features (cached, so a rerun is instant).

    Besides duplicates, leakage and the neighbour vote's likely mislabels, the report holds the review
    list of :func:`~transfer_core.insight.label_errors.labels_to_check` (confident learning on the same
    features, joined with the neighbour vote), which the Data page shows with relabel and exclude controls.

    Args:
        duplicate_similarity: cosine similarity at or above which two images count as the same picture;
            None adapts it to the dataset (see :func:`_duplicate_threshold`).
        neighbours: how many nearest neighbours vote on an image's label.
        mislabel_agreement: share of neighbours that must carry one other label to question an image's label.
        mislabel_strength: how far into the other class, in typical margins, the image must sit
            (see :func:`likely_mislabels`, which states the rule).
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
    features = torch.cat([train_x, val_x]).float().numpy()
    labels = [r.label for r in records]
    found = find_problems(features, labels, duplicate_similarity, neighbours, mislabel_agreement, mislabel_strength)
    report = HealthReport(images=len(records), duplicate_threshold=found.duplicate_threshold,
                          neighbour_agreement=found.neighbour_agreement)
    for pair in found.pairs:  # most similar first, so each listing is too
        i, j, similarity = pair.a, pair.b, {"similarity": pair.similarity}
        if in_train[i] != in_train[j]:
            t, v = (i, j) if in_train[i] else (j, i)
            report.leakage.append({"train": records[t].path, "val": records[v].path, **similarity})
        else:
            report.near_duplicates.append(
                {"a": records[i].path, "b": records[j].path, "labels": [records[i].label, records[j].label], **similarity}
            )
    review, report.labels_note = labels_to_check(features, labels, found.mislabels)
    report.labels_to_check = [{"path": records[item.pop("index")].path, **item} for item in review]
    for item in found.mislabels:
        report.likely_mislabeled.append({"path": records[item.pop("index")].path, **item})
    return report
