"""Classification metrics and per-image predictions, computed with scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import sparse
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

__all__ = ["bootstrap_intervals", "classification_report", "per_image_predictions", "report_intervals"]

_RESAMPLE_BLOCK = 250  # bootstrap resamples drawn at a time


def classification_report(targets: Sequence[int], probabilities: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        targets: true class index per image.
        probabilities: ``(n_images, n_classes)`` softmax outputs.
        classes: class names in index order.

    Returns:
        A JSON-ready dict; ``confusion_matrix[i][j]`` counts images of class i predicted as j, and
        ``intervals`` holds the 95 % bootstrap intervals ``[low, high]`` of ``val_accuracy`` and
        ``macro_f1`` (fixed seed: the same predictions always give the same interval).
    """
    y_true = np.asarray(targets)
    y_pred = probabilities.argmax(axis=1)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    matrix = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return {
        "val_accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": [
            {
                "class": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": matrix,
        "intervals": _matrix_intervals(matrix),
    }


def per_image_predictions(
    paths: Sequence[str], targets: Sequence[int], probabilities: np.ndarray, classes: Sequence[str]
) -> list[dict[str, Any]]:
    """One record per image: true/predicted class, confidence, loss and all probabilities."""
    probs = torch.as_tensor(probabilities, dtype=torch.float64)
    y = torch.as_tensor(list(targets))
    losses = torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="none")
    out = []
    for i, path in enumerate(paths):
        pred = int(probs[i].argmax())
        out.append(
            {
                "path": path,
                "true": classes[int(y[i])],
                "predicted": classes[pred],
                "confidence": float(probs[i, pred]),
                "true_probability": float(probs[i, int(y[i])]),
                "loss": float(losses[i]),
                "correct": pred == int(y[i]),
                "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs[i])},
            }
        )
    return out


def _macro_f1(tp: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Macro-F1 from per-class true positives and ``predicted + actual`` counts (last axis: class).

    Averages over the classes present among the true or the predicted labels, as scikit-learn's
    default does for the labels it sees.
    """
    present = denominator > 0
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=present)
    return f1.sum(-1) / np.maximum(present.sum(-1), 1)


def _matrix_intervals(matrix: Sequence[Sequence[int]], n_resamples: int = 2000, seed: int = 0) -> dict[str, list[float]]:
    """95 % bootstrap intervals of accuracy and macro-F1 from a confusion matrix alone.

    Resampling the n images with replacement is the same as drawing n (true, predicted) pairs
    from a multinomial over the matrix's cells, so only the counts matter: the report, the
    Evaluate page and the model card get the same interval to the last digit, and memory stays
    at a block of resamples times the cells that hold images, however many images there are.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return {"val_accuracy": [float("nan")] * 2, "macro_f1": [float("nan")] * 2}
    k = len(counts)
    cells = np.flatnonzero(counts)  # only cells that hold images can be drawn
    true, predicted = np.divmod(cells, k)
    columns = np.arange(len(cells))

    def per_class(classes: np.ndarray, keep: np.ndarray | slice = slice(None)) -> sparse.csr_matrix:
        """(classes x cells) 0/1 matrix that sums each cell's draws into its class."""
        return sparse.csr_matrix((np.ones(len(columns[keep])), (classes[keep], columns[keep])), shape=(k, len(cells)))

    hits, actual, guessed = per_class(true, true == predicted), per_class(true), per_class(predicted)
    rng = np.random.default_rng(seed)
    accuracies, f1s = [], []
    for start in range(0, n_resamples, _RESAMPLE_BLOCK):
        draws = rng.multinomial(total, counts.flat[cells] / total, size=min(_RESAMPLE_BLOCK, n_resamples - start)).T
        tp = (hits @ draws).T  # (resamples, classes)
        accuracies.append(tp.sum(1) / total)
        f1s.append(_macro_f1(tp, (actual @ draws + guessed @ draws).T))
    accuracy, f1 = np.concatenate(accuracies), np.concatenate(f1s)
    return {
        "val_accuracy": [float(np.percentile(accuracy, 2.5)), float(np.percentile(accuracy, 97.5))],
        "macro_f1": [float(np.percentile(f1, 2.5)), float(np.percentile(f1, 97.5))],
    }


def bootstrap_intervals(
    targets: Sequence[int], predictions: Sequence[int], n_classes: int, n_resamples: int = 2000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95 % bootstrap confidence intervals of accuracy and macro-F1.

    Small validation sets swing: with 50 images one mistake moves accuracy by 2 points, and
    the interval makes that visible. The seed is fixed, so the same predictions always give
    the same interval.
    """
    y_true, y_pred = np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    matrix = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return {name: tuple(bounds) for name, bounds in _matrix_intervals(matrix, n_resamples, seed).items()}


def report_intervals(report: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The 95 % intervals of accuracy and macro-F1 of a :func:`classification_report`.

    Reports carry them under ``intervals``; for a report written before they were stored, they
    are computed from its confusion matrix, which gives the numbers the report would have had.

    Returns:
        ``{"val_accuracy": (low, high), "macro_f1": (low, high)}``.
    """
    stored = report.get("intervals") or _matrix_intervals(report["confusion_matrix"])
    return {name: (float(low), float(high)) for name, (low, high) in stored.items()}
