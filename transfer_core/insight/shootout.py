"""Backbone shoot-out: a linear probe on cached features for each backbone, on the user's own data.

Which pretrained network suits a dataset is an empirical question; a logistic-regression
probe on frozen features answers it in seconds per backbone, before any fine-tuning, and
the features it computes are reused by a following frozen or warm-up run. From the same
training features each backbone also gets a LogME score (:mod:`.transferability`), an estimate
that needs no held-out images, and its measured seconds per image (:mod:`..features.speed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..data.augment import eval_transform
from ..models.registry import get_backbone
from ..data.records import DatasetIndex
from ..errors import WarmstartError
from ..randomness import seeded_scope
from ..features.cache import encode_cached, feature_key, network_key, shared_feature_cache, weights_id
from ..features.speed import PassClock, measured_speed, record_speed
from ..data.decode import cache_side_for
from ..data.image_cache import LabeledImages, shared_image_cache
from ..data.images import ImageReadError
from ..reporting import OnProgress, phase
from .evaluate import wilson_interval
from .transferability import logme

__all__ = ["ProbeResult", "backbone_shootout", "lazy_pretrained_backbone", "pretrained_features", "shootout_verdict"]


CV_FOLDS = 5  # at most; fewer when the smallest class has fewer training images


@dataclass(frozen=True)
class ProbeResult:
    """One backbone's shoot-out result.

    ``val_accuracy`` is the probe's accuracy on held-out images: the validation split, or, in a
    shoot-out given no validation split, each training image predicted by a probe fitted on the
    other folds (``cross_validated``); ``held_out`` counts those images. ``logme`` is the LogME
    score of the training features (an estimate; higher is better). ``seconds_per_image`` is the
    backbone's measured cost on this machine: the fastest of this shoot-out's pass and the earlier
    ones remembered (the only one, when its features were already cached; None if none ever measured it).
    """

    backbone: str
    val_accuracy: float | None
    seconds: float
    feature_dim: int | None = None
    error: str | None = None
    logme: float | None = None
    seconds_per_image: float | None = None
    held_out: int = 0
    cross_validated: bool = False


def pretrained_features(
    name: str,
    indexes: Sequence[DatasetIndex],
    classes: list[str],
    device: torch.device,
    build: Callable[[], torch.nn.Module],
    on_progress: OnProgress | None = None,
    on_encoded: Callable[[int, int], None] | None = None,
) -> list[tuple[torch.Tensor, np.ndarray, list]]:
    """Pooled features of each index's readable images through the shared cache, their targets and records.

    ``build`` (see :func:`lazy_pretrained_backbone`) is called only on a cache miss. Progress
    comes in two phases over all ``indexes``: "reading images", then "encoding images with NAME".
    ``on_encoded(i, done)`` hears each batch the network really encodes for index ``i`` (never a
    cache hit), so a caller can time the network (:class:`~transfer_core.features.speed.PassClock`).
    """
    spec = get_backbone(name)
    pre = spec.preprocessing
    cache = shared_image_cache(cache_side_for(pre.input_size, pre.crop_pct))
    sets = [LabeledImages(index.records, {c: i for i, c in enumerate(classes)}, cache, eval_transform(pre)) for index in indexes]
    read = phase(on_progress, sum(len(images) for images in sets), "reading images")
    readable, offset = [], 0
    for images in sets:
        readable.append(images.without(images.warm(on_read=lambda n, o=offset: read(o + n))))
        offset += len(images)
    encoded = phase(on_progress, sum(len(images) for images in readable), f"encoding images with {name}")
    results, offset = [], 0
    for number, images in enumerate(readable):
        key = feature_key(name, weights_id(spec, True, 0), pre, pre.input_size, "features", [r.path for r in images.records])
        features = shared_feature_cache().get(key)
        if features is None:
            def on_batch(n: int, o: int = offset, i: int = number) -> None:
                encoded(o + n)
                if on_encoded is not None:
                    on_encoded(i, n)

            features = encode_cached(build(), images, key, device, on_batch=on_batch, weights=network_key(name, weights_id(spec, True, 0)))
        else:
            encoded(offset + len(images))
        results.append((features, np.asarray(images.targets), images.records))
        offset += len(images)
    return results


def lazy_pretrained_backbone(name: str, device: torch.device) -> Callable[[], torch.nn.Module]:
    """Builds the pretrained backbone on first call only, so training and validation share one copy."""
    built: list[torch.nn.Module] = []

    def get() -> torch.nn.Module:
        if not built:
            with seeded_scope(0):  # test and random-weight backbones start as a seed-0 run's would
                built.append(get_backbone(name).build(pretrained=True).to(device))
        return built[0]

    return get


def backbone_shootout(
    train: DatasetIndex,
    val: DatasetIndex | None,
    backbones: Sequence[str],
    device: str = "cpu",
    on_progress: OnProgress | None = None,
) -> list[ProbeResult]:
    """Fit a logistic-regression probe on each backbone's frozen features; accuracy, LogME, speed and time.

    Args:
        train, val: the dataset split the real run will use. With ``val`` None the probe is
            scored by stratified k-fold cross-validation on the training images alone (so a run
            chosen by it keeps an untouched validation set), and only training images are encoded.
        backbones: registry names; one that cannot be loaded (e.g. offline) gets an ``error``.
        on_progress: ``(done, total, what)`` (see :mod:`transfer_core.reporting`): per backbone, images
            read and images encoded, ``what`` starting with the backbone's name and place, "lite0 (1 of 3): ...".

    Raises:
        WarmstartError: fewer than two classes, or (cross-validating) a class with one training image.
    """
    classes = train.classes
    if len(classes) < 2:
        raise WarmstartError("A shoot-out needs at least two classes.")
    if val is None:
        _check_foldable(train)
    results = []
    torch_device = torch.device(device)
    for number, name in enumerate(backbones, start=1):
        started = time.perf_counter()
        build = lazy_pretrained_backbone(name, torch_device)
        prefix = f"{name} ({number} of {len(backbones)}): "
        told = None if on_progress is None else (lambda done, total, what, p=prefix: on_progress(done, total, p + what))
        clock = PassClock()
        try:
            sets = pretrained_features(name, [train] if val is None else [train, val], classes, torch_device, build, told, clock)
        except (WarmstartError, ImageReadError) as exc:
            results.append(ProbeResult(name, None, time.perf_counter() - started, error=str(exc)))
            continue
        train_x, train_y = sets[0][0].numpy(), sets[0][1]
        if val is None:
            accuracy, held_out = _cross_validated_accuracy(train_x, train_y), len(train_y)
        else:
            val_x, val_y = sets[1][0].numpy(), sets[1][1]
            accuracy, held_out = float((_probe().fit(train_x, train_y).predict(val_x) == val_y).mean()), len(val_y)
        results.append(ProbeResult(
            name, accuracy, time.perf_counter() - started, int(train_x.shape[1]),
            logme=logme(train_x, train_y), seconds_per_image=_seconds_per_image(name, clock, torch_device),
            held_out=held_out, cross_validated=val is None,
        ))
    return results


def _probe():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))


def _check_foldable(train: DatasetIndex) -> None:
    """Cross-validation holds out images of every class, so each needs two or more."""
    counts = train.counts()
    single = [label for label, count in counts.items() if count < 2]
    if single:
        raise WarmstartError(
            f"Class '{single[0]}' has only one training image, too few to score a backbone on the training images "
            "alone; add images to it or choose a backbone by name."
        )


def _cross_validated_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of out-of-fold predictions: every training image predicted by a probe that never saw it."""
    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest < 2:  # unreadable images left a class with one
        raise WarmstartError("A class has fewer than two readable training images, too few to cross-validate a probe.")
    folds = StratifiedKFold(n_splits=min(CV_FOLDS, smallest), shuffle=True, random_state=0)
    return float((cross_val_predict(_probe(), x, y, cv=folds) == y).mean())


def _seconds_per_image(name: str, clock: PassClock, device: torch.device) -> float | None:
    """The fastest measurement known, this shoot-out's pass included (see :mod:`..features.speed`)."""
    network = network_key(name, weights_id(get_backbone(name), True, 0))
    measured = clock.seconds_per_image()
    return record_speed(network, device.type, measured) if measured is not None else measured_speed(network, device.type)


def noise_interval(accuracy: float, images: int) -> tuple[float, float]:
    """The 95 % (Wilson) interval of ``accuracy`` measured on ``images`` held-out images: another
    backbone scoring inside it is "within noise" (the verdict below and the recommendation rule)."""
    return wilson_interval(round(accuracy * images), images)


def shootout_verdict(accuracies: Mapping[str, float | None], n_val: int) -> str | None:
    """One sentence on whether the shoot-out's winner is really ahead, or None with fewer than two scores.

    A backbone is "within noise" of the winner when its accuracy lies inside the winner's 95 %
    (Wilson) interval on ``n_val`` validation images: a re-drawn validation set could swap them.

    Args:
        accuracies: validation accuracy per backbone (None for one that could not be tried).
        n_val: validation images the accuracies were measured on.
    """
    scored = sorted(((acc, name) for name, acc in accuracies.items() if acc is not None), key=lambda s: -s[0])
    if len(scored) < 2 or n_val <= 0:
        return None
    (best_acc, best), rest = scored[0], scored[1:]
    low, high = noise_interval(best_acc, n_val)
    close = [name for acc, name in rest if acc >= low]
    if close:
        names = ", ".join(close[:-1]) + (" and " if len(close) > 1 else "") + close[-1]
        return (f"{best} scored highest ({best_acc:.0%}), but {names} {'is' if len(close) == 1 else 'are'} within noise of it: "
                f"on {n_val} validation images any score from {low:.0%} to {high:.0%} fits the best one, so choose among "
                "them by size and speed.")
    second_acc, second = rest[0]
    return (f"{best} is ahead ({best_acc:.0%} against {second_acc:.0%} for {second}) by more than the noise of "
            f"{n_val} validation images ({low:.0%} to {high:.0%}).")
