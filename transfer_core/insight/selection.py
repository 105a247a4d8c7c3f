"""Which pool images to label next, and which confident predictions may stand in for labels.

With few labels, the images worth a person's time are not random ones. Before any model exists
(cold start), the best first labels are *typical* images that also *cover* the data: TypiClust
(Hacohen et al., 2022) clusters pretrained embeddings into as many clusters as there will be
labels and, in each cluster no label covers yet, takes the image in the densest spot (highest
inverse mean distance to its nearest neighbours), so no label is spent on an outlier or on a
second copy of a covered region. Once a run exists, the images it is least sure of teach it
most, but the most uncertain images are often near-copies of each other: so the 5·N least
sure are clustered into N groups and the least sure of each group is proposed.

Self-training (:func:`pseudo_labels`) lets confident predictions on the rest of the pool join
training, capped per class so the easiest class does not flood the training set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import WarmstartError
from ..reporting import OnProgress

__all__ = [
    "Suggestion", "margins", "pool_probabilities", "pseudo_label_index", "pseudo_labels", "run_probabilities", "suggest",
    "typical_diverse", "uncertain_diverse",
]

COLD_SENTENCE = (
    "Cold start: the most typical image of each of {n} groups of look-alike images no label covers yet "
    "(clusters of pretrained features, TypiClust), so the first labels are typical and diverse."
)
UNCERTAIN_SENTENCE = (
    "The images the run is least sure of (smallest margin between its two most likely classes), one per "
    "group of look-alikes among the {m} least sure, so the batch is not {n} near-copies."
)


@dataclass
class Suggestion:
    """Pool images to label next, best first, with the strategy in one sentence; ``scores``: typicality or margin."""

    paths: list[str]
    strategy: str
    scores: list[float] = field(default_factory=list)


def _unit(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _kmeans(x: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit_predict(x)


def _typicality(x: np.ndarray, neighbours: int) -> np.ndarray:
    """Inverse mean distance of each row to its ``neighbours`` nearest other rows (1.0 for a lone row)."""
    if len(x) < 2:
        return np.ones(len(x))
    from sklearn.neighbors import NearestNeighbors

    k = min(neighbours, len(x) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return 1.0 / (distances[:, 1:].mean(axis=1) + 1e-12)


def _check(n: int, size: int) -> None:
    if n < 1:
        raise WarmstartError(f"The number of images to suggest must be at least 1, not {n}.")
    if size == 0:
        raise WarmstartError("The pool has no images left to label.")


def typical_diverse(features: np.ndarray, labelled: np.ndarray, n: int, seed: int = 0, neighbours: int = 20) -> list[tuple[int, float]]:
    """TypiClust: up to ``n`` unlabelled rows of ``features``, one per uncovered cluster, largest cluster first.

    Args:
        features: ``(pool, d)`` pretrained embeddings (labelled rows included: they mark covered clusters).
        labelled: ``(pool,)`` booleans, True for rows already labelled (or skipped).
        neighbours: how many nearest neighbours within its cluster define a row's typicality.

    Returns:
        ``(row, typicality)`` pairs, distinct, never labelled; fewer than ``n`` only when fewer rows are unlabelled.
    """
    labelled = np.asarray(labelled, dtype=bool)
    free = np.flatnonzero(~labelled)
    _check(n, len(free))
    if len(free) <= n:
        return [(int(i), 0.0) for i in free]
    x = _unit(features)
    clusters = min(n + int(labelled.sum()), len(x))
    assignment = _kmeans(x, clusters, seed)
    typicality = np.zeros(len(x))
    for c in range(clusters):
        members = np.flatnonzero(assignment == c)
        typicality[members] = _typicality(x[members], neighbours)
    covered = set(assignment[labelled].tolist())
    by_size = sorted(range(clusters), key=lambda c: (c in covered, -int((assignment == c).sum()), c))
    chosen: list[tuple[int, float]] = []
    taken = labelled.copy()
    while len(chosen) < n:  # uncovered clusters first; if they run out, a second most typical image per cluster
        for c in by_size:
            candidates = np.flatnonzero((assignment == c) & ~taken)
            if len(candidates) and len(chosen) < n:
                best = int(candidates[np.argmax(typicality[candidates])])
                chosen.append((best, float(typicality[best])))
                taken[best] = True
    return chosen


def margins(probabilities: np.ndarray) -> np.ndarray:
    """Top class probability minus the second's, per row: small means unsure."""
    ordered = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)
    return ordered[:, -1] - ordered[:, -2]


def uncertain_diverse(
    probabilities: np.ndarray, features: np.ndarray, labelled: np.ndarray, n: int, seed: int = 0, factor: int = 5,
) -> list[tuple[int, float]]:
    """The least sure row of each of ``n`` clusters among the ``factor``·``n`` least sure unlabelled rows.

    Returns:
        ``(row, margin)`` pairs, smallest margin first, distinct, never labelled.
    """
    labelled = np.asarray(labelled, dtype=bool)
    free = np.flatnonzero(~labelled)
    _check(n, len(free))
    margin = margins(probabilities)
    candidates = free[np.argsort(margin[free], kind="stable")[: factor * n]]
    if len(candidates) <= n:
        picked = candidates
    else:
        assignment = _kmeans(_unit(features)[candidates], n, seed)
        picked = np.array([candidates[assignment == c][np.argmin(margin[candidates[assignment == c]])] for c in range(n)])
    picked = sorted(picked.tolist(), key=lambda i: (margin[i], i))
    return [(int(i), float(margin[i])) for i in picked]


def pseudo_labels(probabilities: np.ndarray, eligible: np.ndarray, threshold: float = 0.9, cap_per_class: int = 20) -> list[tuple[int, int]]:
    """Self-training: ``(row, class)`` for eligible rows predicted with at least ``threshold`` probability.

    Each class keeps at most ``cap_per_class`` of its most confident rows, so an easy class does not
    swamp the real labels and the classifier's balance.
    """
    if not 0.0 < threshold <= 1.0:
        raise WarmstartError(f"The pseudo-label threshold must be in (0, 1], not {threshold}.")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    best, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    keep = np.asarray(eligible, dtype=bool) & (confidence >= threshold)
    chosen: list[tuple[int, int]] = []
    for c in range(probabilities.shape[1]):
        rows = np.flatnonzero(keep & (best == c))
        rows = rows[np.argsort(-confidence[rows], kind="stable")[:cap_per_class]]
        chosen += [(int(i), c) for i in rows]
    return sorted(chosen)


def run_probabilities(predictor, paths: list[str], on_progress: OnProgress | None = None) -> np.ndarray:
    """``(len(paths), classes)`` calibrated probabilities of a :class:`~transfer_core.deploy.predict.Predictor`,
    in its class order; an image that cannot be read gets a uniform row (never confident, never sure)."""
    probabilities, errors = predictor.file_probabilities(paths, on_progress=on_progress)
    probabilities[[i for i, error in enumerate(errors) if error is not None]] = 1.0 / len(predictor.classes)
    return probabilities


def pseudo_label_index(run: str | Path, pool, labels, threshold: float = 0.9, cap_per_class: int = 20, device: str = "cpu",
                       on_progress: OnProgress | None = None):
    """The pool images ``run`` labels confidently (see :func:`pseudo_labels`), as records to train on.

    Images a person labelled or skipped are left out: a real label always wins, and "skip" means no class.
    The records' source names the run, so a training config can record where its pseudo-labels came from.
    """
    from ..data.records import DatasetIndex, ImageRecord
    from ..runs.store import RunDir

    unlabelled = DatasetIndex([r for r in pool.records if r.path not in labels.labels], [], pool.source)
    if not unlabelled.records:
        return DatasetIndex([], [], f"pseudo-labels of {run}")
    probabilities = pool_probabilities(unlabelled, run, device, on_progress)
    classes = RunDir(run).read_model_info()["classes"]
    chosen = pseudo_labels(probabilities, np.ones(len(unlabelled), dtype=bool), threshold, cap_per_class)
    records = [ImageRecord(unlabelled.records[i].path, classes[c]) for i, c in chosen]
    note = f"{len(records)} pool image(s) pseudo-labelled by {Path(run).name} (probability at least {threshold:g}, at most {cap_per_class} per class)."
    return DatasetIndex(records, [], f"pseudo-labels of {run}", [note])


def pool_features(pool, backbone: str, device: str = "cpu", on_progress: OnProgress | None = None):
    """Pretrained features of the pool's readable images (cached, as the health check's) and their records."""
    import torch

    from .shootout import lazy_pretrained_backbone, pretrained_features

    classes = sorted({r.label for r in pool.records})
    build = lazy_pretrained_backbone(backbone, torch.device(device))
    ((x, _, records),) = pretrained_features(backbone, [pool], classes, torch.device(device), build, on_progress)
    return x.float().numpy(), list(records)


def _head_reads_pretrained_features(run) -> bool:
    """Whether ``run``'s network is its backbone's pretrained weights (frozen, default preprocessing) plus a head,
    so that its outputs are the head applied to the pool's cached pretrained features."""
    from ..config import Strategy
    from ..models.registry import Preprocessing, get_backbone

    config = run.read_config()
    own = Preprocessing.from_dict(run.read_model_info()["preprocessing"])
    return config.strategy is Strategy.FROZEN and config.pretrained and own == get_backbone(config.backbone).preprocessing


def pool_probabilities(pool, run: str | Path, device: str = "cpu", on_progress: OnProgress | None = None,
                       features: tuple[np.ndarray, list] | None = None) -> np.ndarray:
    """``(len(pool), classes)`` calibrated probabilities of ``run`` for every pool record (uniform rows for
    images that cannot be read).

    A frozen run's network is the pretrained backbone plus its head, so its probabilities come from the
    pool's pretrained features (``features``, from :func:`pool_features` with the run's backbone, or
    computed here through the shared cache) through the head: the pool is read and encoded once, not
    twice. Any other run predicts the files.
    """
    import torch

    from ..deploy.predict import Predictor
    from ..features.inference import run_inference
    from ..runs.store import RunDir

    run = RunDir(run)
    predictor = Predictor.from_run(run, device)
    paths = [r.path for r in pool.records]
    if not _head_reads_pretrained_features(run):
        return run_probabilities(predictor, paths, on_progress)
    x, records = features if features is not None else pool_features(pool, run.read_config().backbone, device, on_progress)
    head = predictor.model.head
    logits = run_inference(head, torch.from_numpy(np.ascontiguousarray(x)).float(), device, module=head)
    probabilities = np.full((len(paths), len(predictor.classes)), 1.0 / len(predictor.classes))
    where = {path: i for i, path in enumerate(paths)}
    probabilities[[where[r.path] for r in records]] = (logits / predictor.temperature).softmax(1).numpy()
    return probabilities


def suggest(
    pool, labels, n: int = 20, run: str | Path | None = None, backbone: str | None = None, device: str = "cpu",
    seed: int = 0, on_progress: OnProgress | None = None,
) -> Suggestion:
    """The next ``n`` pool images to label: TypiClust without ``run``, uncertainty + diversity with it.

    Args:
        pool: the pool's :class:`~transfer_core.data.records.DatasetIndex` (see :func:`~transfer_core.data.pool.load_pool`).
        labels: its :class:`~transfer_core.data.pool.PoolLabels`; labelled and skipped images are never proposed.
        run: a trained run folder; its calibrated probabilities give the margins.
        backbone: whose pretrained features cluster the pool (default: the run's backbone, else the default one).
    """
    from ..models.registry import DEFAULT_BACKBONE

    if run is not None:
        from ..runs.store import RunDir

        backbone = backbone or RunDir(run).read_model_info()["backbone"]
    features, records = pool_features(pool, backbone or DEFAULT_BACKBONE, device, on_progress)
    paths = [r.path for r in records]
    labelled = np.array([p in labels.labels for p in paths], dtype=bool)
    if run is None:
        picked = typical_diverse(features, labelled, n, seed)
        sentence = COLD_SENTENCE.format(n=len(picked))
    else:
        free = [i for i in range(len(paths)) if not labelled[i]]
        _check(n, len(free))
        from ..data.records import DatasetIndex

        unlabelled = DatasetIndex([records[i] for i in free], [], pool.source)
        same_backbone = backbone == RunDir(run).read_config().backbone
        known = (features[free], [records[i] for i in free]) if same_backbone else None
        scores = pool_probabilities(unlabelled, run, device, on_progress, known)
        probabilities = np.full((len(paths), scores.shape[1]), 1.0 / scores.shape[1])
        probabilities[free] = scores
        picked = uncertain_diverse(probabilities, features, labelled, n, seed)
        sentence = UNCERTAIN_SENTENCE.format(m=min(5 * n, len(free)), n=len(picked))
    return Suggestion([paths[i] for i, _ in picked], sentence, [s for _, s in picked])
