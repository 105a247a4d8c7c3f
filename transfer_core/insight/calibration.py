"""Calibrated confidence: one temperature for the logits (temperature scaling, Guo et al. 2017).

A network fine-tuned on a few hundred images says "97 % sure" about images it gets right
far less often than 97 % of the time (or, with a frozen backbone and weight decay, says 60 %
where it is nearly always right). Temperature scaling divides every logit by one positive
number ``T`` before the softmax; ``T`` is chosen to minimise the negative log-likelihood
(NLL) of the validation labels. Dividing by a positive scalar keeps the order of the logits,
so the predicted class never changes: only how sure the model says it is.

How well confidence matches accuracy is measured by the expected calibration error (ECE):
the images are put into 15 equal-width bins by their top probability, and ECE is the
image-weighted mean of ``|accuracy - mean confidence|`` over the bins (the reliability
diagram draws the same bins).

**Honest numbers.** ``T`` is fitted on the validation images, so the ECE and NLL of those same
images at that ``T`` flatter it (on 60 images a fitted scalar already absorbs some noise). The
"after" numbers reported here are therefore *cross-fitted*: the validation predictions are cut
into k class-stratified folds (k = 5, fewer when there are few images, each held-out fold keeping
at least :data:`MIN_FOLD_SIZE` images), ``T`` is fitted on k - 1 folds and applied to the held-out
one, and the held-out probabilities are pooled before measuring. It costs only a few 1-D fits on
stored logits, so it is done for every set, small or large. The temperature that ships with the
model is fitted on all the validation images. With fewer than ``2 * MIN_FOLD_SIZE`` images there is
no honest way to measure the effect, and the model keeps ``T = 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..errors import WarmstartError
from ..models.metadata import ModelInfo
from ..runs.held import HeldWrites

__all__ = [
    "MAX_FOLDS",
    "MIN_FOLD_SIZE",
    "N_BINS",
    "TEMPERATURE_RANGE",
    "calibrate",
    "calibrate_run",
    "calibrated_probabilities",
    "calibration_sentence",
    "confidence_metrics",
    "cross_fitted_probabilities",
    "expected_calibration_error",
    "fit_temperature",
    "fold_count",
    "negative_log_likelihood",
    "reliability_bins",
]

N_BINS = 15  # equal-width confidence bins, as in Guo et al.
MAX_FOLDS = 5
MIN_FOLD_SIZE = 4  # images in each held-out fold at least
TEMPERATURE_RANGE = (0.05, 20.0)  # a wider search only follows a perfectly separated validation set to its edge
_LOG_TOLERANCE = 1e-6  # golden-section search stops when log T is known to this width
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
_EPS = 1e-12  # probabilities are clamped here before a log, as elsewhere in the engine


def _checked(logits: Any, targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Logits as ``(n, k)`` float64 and targets as int64, or a clear error."""
    z = np.asarray(logits.numpy() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    if z.ndim != 2 or z.shape[0] != len(y) or z.shape[1] < 2:
        raise WarmstartError(f"Calibration needs one row of at least two logits per image; got shape {z.shape} for {len(y)} labels.")
    if len(y) and (y.min() < 0 or y.max() >= z.shape[1]):
        raise WarmstartError(f"A label is outside the {z.shape[1]} classes of the logits.")
    return z, y


def _log_softmax(z: np.ndarray, temperature: float) -> np.ndarray:
    scaled = z / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))


def calibrated_probabilities(logits: Any, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` in float64; the argmax of every row is that of ``logits``."""
    z = np.asarray(logits.numpy() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64)
    return np.exp(_log_softmax(z, temperature))


def negative_log_likelihood(logits: Any, targets: Sequence[int], temperature: float = 1.0) -> float:
    """Mean NLL of the true classes under ``softmax(logits / temperature)``."""
    z, y = _checked(logits, targets)
    return float(-_log_softmax(z, temperature)[np.arange(len(y)), y].mean())


def fit_temperature(logits: Any, targets: Sequence[int], bounds: tuple[float, float] = TEMPERATURE_RANGE) -> float:
    """The temperature in ``bounds`` that minimises the NLL of ``targets``.

    The NLL is convex in ``1 / T`` (the log-sum-exp of logits scaled linearly), hence has a single
    minimum along ``log T`` too, which a golden-section search finds without derivatives and
    without any optimisation library.

    Args:
        logits: ``(n, k)`` raw outputs (numpy or torch).
        targets: the true class index of each row.
        bounds: smallest and largest temperature considered.

    Returns:
        The fitted temperature (> 0); 1 when every row is already predicted right (nothing to fit).
    """
    z, y = _checked(logits, targets)
    if len(y) == 0:
        raise WarmstartError("Calibration needs at least one validation image.")
    if (z.argmax(axis=1) == y).all():
        # With no mistake to weigh, a sharper softmax always lowers the NLL: the minimum is the
        # search's edge, not evidence. A model can be sure of held-out images it never got wrong
        # and still be wrong on new ones, so it keeps its own confidence.
        return 1.0
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-_log_softmax(z, float(np.exp(log_t)))[rows, y].mean())

    a, b = np.log(bounds[0]), np.log(bounds[1])
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > _LOG_TOLERANCE:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2))


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin ``i`` holds confidences in ``(i / n_bins, (i + 1) / n_bins]``."""
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def reliability_bins(probabilities: np.ndarray, targets: Sequence[int], n_bins: int = N_BINS) -> list[dict[str, float]]:
    """The non-empty confidence bins: edges, mean confidence, accuracy and image count of each.

    Args:
        probabilities: ``(n, k)`` class probabilities.
        targets: the true class index of each row.
        n_bins: equal-width bins over [0, 1].

    Returns:
        One dict per non-empty bin, in order: ``lower``, ``upper``, ``confidence``, ``accuracy``, ``count``.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == y).astype(np.float64)
    index = _bin_index(confidence, n_bins)
    counts = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    hit_sum = np.bincount(index, weights=correct, minlength=n_bins)
    return [
        {"lower": i / n_bins, "upper": (i + 1) / n_bins, "confidence": float(conf_sum[i] / counts[i]),
         "accuracy": float(hit_sum[i] / counts[i]), "count": int(counts[i])}
        for i in range(n_bins) if counts[i]
    ]


def expected_calibration_error(probabilities: np.ndarray, targets: Sequence[int], n_bins: int = N_BINS) -> float:
    """ECE: the image-weighted mean over confidence bins of ``|accuracy - mean confidence|`` (0 is perfect)."""
    bins = reliability_bins(probabilities, targets, n_bins)
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / max(total, 1))


def confidence_metrics(probabilities: np.ndarray, targets: Sequence[int]) -> dict[str, Any]:
    """ECE, NLL and reliability bins of class probabilities (a JSON-ready dict)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    nll = float(-np.log(np.clip(probs[np.arange(len(y)), y], _EPS, None)).mean()) if len(y) else float("nan")
    return {"ece": expected_calibration_error(probs, y), "nll": nll, "bins": reliability_bins(probs, y)}


def _folds(targets: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number of each image: shuffled within each class, then dealt round-robin (stratified)."""
    order = np.lexsort((np.random.default_rng(seed).random(len(targets)), targets))
    folds = np.empty(len(targets), dtype=np.int64)
    folds[order] = np.arange(len(targets)) % k
    return folds


def fold_count(n: int) -> int:
    """Folds for ``n`` validation images: up to :data:`MAX_FOLDS`, each held-out fold of at least :data:`MIN_FOLD_SIZE`."""
    return min(MAX_FOLDS, n // MIN_FOLD_SIZE)


def cross_fitted_probabilities(logits: Any, targets: Sequence[int], k: int, seed: int = 0) -> np.ndarray:
    """Each image's probabilities at the temperature fitted on the other folds (see the module docstring)."""
    z, y = _checked(logits, targets)
    if k < 2:
        raise WarmstartError(f"Cross-fitting needs at least 2 folds, not {k}.")
    folds = _folds(y, k, seed)
    out = np.empty_like(z)
    for fold in range(k):
        held = folds == fold
        out[held] = calibrated_probabilities(z[held], fit_temperature(z[~held], y[~held]))
    return out


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature with the honest before/after measurements (or why there is none)."""

    temperature: float
    images: int
    folds: int = 0
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None  # cross-fitted
    reason: str | None = None  # why the temperature stayed 1

    def to_dict(self) -> dict[str, Any]:
        values = {"method": "temperature scaling", "temperature": self.temperature, "images": self.images}
        if self.reason is not None:
            return {**values, "reason": self.reason}
        return {**values, "folds": self.folds, "after_measured": "cross-fitted", "before": self.before, "after": self.after}


def calibrate(logits: Any, targets: Sequence[int], seed: int = 0) -> Calibration:
    """Fit the temperature on every image and measure its effect by cross-fitting.

    Args:
        logits: ``(n, k)`` validation logits of the model that ships.
        targets: their true class indices.
        seed: draws the folds (the same logits always give the same numbers).

    Returns:
        A :class:`Calibration`; ``temperature`` 1 with a ``reason`` when the set is too small or the
        outputs are not finite (a diverged run), so a run always finishes.
    """
    n, k = len(targets), fold_count(len(targets))
    if k < 2:
        return Calibration(1.0, n, reason=(f"Only {n} validation images: at least {2 * MIN_FOLD_SIZE} are needed to fit a "
                                           "temperature and measure it on images it was not fitted on."))
    z, y = _checked(logits, targets)
    if not np.isfinite(z).all():
        return Calibration(1.0, n, reason="The model's outputs on the validation images are not finite numbers, so there "
                                          "is nothing to calibrate (training diverged; try a lower learning rate).")
    if (z.argmax(axis=1) == y).all():
        return Calibration(1.0, n, reason=(f"The model is right on all {n} validation images, so they cannot show how "
                                           "sure it should be (any sharper confidence would look better on them)."))
    before = confidence_metrics(calibrated_probabilities(z, 1.0), y)
    after = confidence_metrics(cross_fitted_probabilities(z, y, k, seed), y)
    return Calibration(fit_temperature(z, y), n, k, before, after)


def calibrate_run(validation: tuple[torch.Tensor, list[int]], held: HeldWrites, info: ModelInfo, seed: int = 0):
    """The trainer's last step: fit the temperature, store it in ``model.json``, return what the report needs.

    Args:
        validation: the best checkpoint's validation logits and class indices (the pass the report uses).
        held: the run's writes (:class:`~transfer_core.runs.held.HeldWrites`); ``model.json`` is rewritten through it.
        info: the run's model description, rewritten with the temperature.
        seed: the run's seed (draws the folds).

    Returns:
        ``(probabilities, targets, calibration)``: the calibrated probabilities (argmax unchanged),
        the class indices and the report's ``calibration`` dict.
    """
    logits, targets = validation
    result = calibrate(logits, targets, seed)
    held.write(held.run.model_file.name, replace(info, temperature=result.temperature).to_json_bytes())
    return calibrated_probabilities(logits, result.temperature), targets, result.to_dict()


def calibration_sentence(calibration: dict[str, Any] | None) -> str | None:
    """One sentence on a report's calibration for people (CLI, model card), or None for runs without it."""
    if not calibration:
        return None
    if calibration.get("reason"):
        return f"Confidence not calibrated (temperature 1): {calibration['reason']}"
    before, after = calibration["before"], calibration["after"]
    return (f"Temperature {calibration['temperature']:.2f}: expected calibration error {before['ece']:.1%} before, "
            f"{after['ece']:.1%} after; NLL {before['nll']:.3f} before, {after['nll']:.3f} after (measured by cross-fitting "
            f"over {calibration['folds']} folds of the {calibration['images']} validation images, never on the images a "
            "temperature was fitted on).")
