"""What training did to the feature space: validation features before and after, in 2-D.

Before: the backbone as the run started (pretrained weights, or the seeded random ones of a
from-scratch run). After: the trained run's backbone. Each is projected on its own (PCA, or
t-SNE from scikit-learn);
a silhouette score (-1..1, higher = classes form tighter, better separated clusters) puts a
number on the change.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score

from ..data.augment import eval_transform
from ..models.registry import Preprocessing, get_backbone
from ..data.splits import load_run_split
from ..errors import WarmstartError
from ..randomness import seeded_scope
from ..features.cache import encode_cached, run_feature_key, run_network_key
from ..features.inference import run_inference
from ..data.decode import cache_side_for
from ..data.image_cache import LabeledImages, shared_image_cache
from ..deploy.predict import load_trained_model
from ..reporting import OnProgress, phase
from ..runs.store import RunDir

__all__ = ["PROJECTIONS", "EmbeddingMap", "embedding_map", "project_2d", "separation_verdict", "spread_sample"]

T = TypeVar("T")


@dataclass
class EmbeddingMap:
    points: list[dict] = field(default_factory=list)  # path, label, predicted, confidence, before_x/y, after_x/y
    separation_before: float | None = None
    separation_after: float | None = None


PROJECTIONS = ("pca", "tsne")
_PROJECTION_NAMES = {"pca": "PCA", "tsne": "t-SNE"}


def project_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Two dimensions by PCA (linear, keeps global distances; deterministic) or t-SNE (keeps
    neighbourhoods, so clusters separate more clearly; seeded)."""
    if method == "tsne":
        perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    _check_projection(method)
    return PCA(n_components=2, svd_solver="full").fit_transform(features)


def _check_projection(method: str) -> None:
    """Raise for a projection that is not one of PROJECTIONS."""
    if method not in PROJECTIONS:
        raise WarmstartError(f"Unknown projection '{method}'; choose one of: {', '.join(PROJECTIONS)}.")


def spread_sample(items: Sequence[T], limit: int, seed: int = 0) -> list[T]:
    """At most ``limit`` of ``items``, drawn evenly (seeded) and kept in order.

    A chart shows a couple of thousand points at most; the first ``limit`` validation images
    (sorted by class) would show only the first few classes of a large set.
    """
    if len(items) <= limit:
        return list(items)
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), limit))]


def _separation(features: np.ndarray, labels: list[str]) -> float | None:
    if len(set(labels)) < 2 or len(labels) <= len(set(labels)):
        return None
    return float(silhouette_score(features, labels, metric="cosine"))


def embedding_map(
    run: RunDir | str | Path, limit: int = 2000, method: str = "pca", on_progress: OnProgress | None = None
) -> EmbeddingMap:
    """Before/after 2-D maps of up to ``limit`` validation images of ``run``.

    Args:
        run: a finished run (folder or :class:`RunDir`).
        limit: most validation images drawn (evenly over the set, see :func:`spread_sample`).
        method: ``pca`` or ``tsne`` (see :func:`project_2d`).
        on_progress: ``(done, total, what)`` (see :mod:`transfer_core.reporting`): images read, images
            encoded before and after training, then the two projections.
    """
    _check_projection(method)  # before the slow part
    run = run if isinstance(run, RunDir) else RunDir(run)
    config = run.read_config()
    model, info = load_trained_model(run)
    pre = Preprocessing.from_dict(info["preprocessing"])
    _, val = load_run_split(config)
    class_to_idx = {c: i for i, c in enumerate(info["classes"])}
    records = spread_sample([r for r in val.records if r.label in class_to_idx], limit, config.seed)
    cache = shared_image_cache(cache_side_for(pre.input_size, pre.crop_pct))
    images = LabeledImages(records, class_to_idx, cache, eval_transform(pre))
    images = images.without(images.warm(on_read=phase(on_progress, len(images), "reading images")))
    if len(images) < 3:
        raise WarmstartError("The embedding map needs at least three readable validation images.")
    spec = get_backbone(config.backbone)
    with seeded_scope(config.seed):  # the same start as the run itself (matters for from-scratch runs)
        start = spec.build(pretrained=config.pretrained)
    paths = [r.path for r in images.records]
    key = run_feature_key(config, spec, pre, "features", paths)
    before = encode_cached(
        start, images, key, torch.device("cpu"), weights=run_network_key(config, spec),
        on_batch=phase(on_progress, len(images), "encoding images before training"),
    ).numpy()
    trained_weights = f"trained:{run.path}:{run.checkpoint_file.stat().st_mtime_ns}"
    trained_key = f"{trained_weights}:{len(paths)}"
    after = encode_cached(
        model.backbone, images, trained_key, torch.device("cpu"), weights=trained_weights,
        on_batch=phase(on_progress, len(images), "encoding images after training"),
    ).numpy()
    logits = run_inference(model.head, torch.from_numpy(after), module=model.head)
    probabilities = (logits / info["temperature"]).softmax(1).numpy()  # the calibrated confidence, as predictions show it
    labels = [r.label for r in images.records]
    projected = phase(on_progress, 2, f"{_PROJECTION_NAMES[method]} projections")
    xy_before = project_2d(before, method, config.seed)
    projected(1)
    xy_after = project_2d(after, method, config.seed)
    projected(2)
    classes = info["classes"]
    points = [
        {
            "path": path,
            "label": label,
            "predicted": classes[int(p.argmax())],
            "confidence": float(p.max()),
            "before_x": float(b[0]), "before_y": float(b[1]),
            "after_x": float(a[0]), "after_y": float(a[1]),
        }
        for path, label, p, b, a in zip(paths, labels, probabilities, xy_before, xy_after)
    ]
    return EmbeddingMap(points, _separation(before, labels), _separation(after, labels))


def separation_verdict(before: float | None, after: float | None) -> str | None:
    """One sentence on the class-separation scores: which way is better, and what training did.

    Returns None when either score is missing (fewer than two classes among the images).
    """
    if before is None or after is None:
        return None
    scale = ("Class separation runs from -1 to 1 and higher is better: images sit closer to their own class than to "
             "the others.")
    if abs(after - before) < 0.02:
        return f"{scale} It hardly changed ({before:.2f} → {after:.2f}): training left the features' layout as it was."
    if after > before:
        return f"{scale} Training raised it from {before:.2f} to {after:.2f}: the classes became easier to tell apart."
    return (f"{scale} Training lowered it from {before:.2f} to {after:.2f}: in these features the classes became harder "
            "to tell apart, though the new head may still separate them.")
