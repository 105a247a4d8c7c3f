"""The Evaluate page's gallery without Streamlit: which predictions a filter shows, and label fixes.

A filter is the text the user picks: ``All mistakes``, a confused pair ``cat → dog``, or
``Correct: cat``. Predictions are the records of ``predictions.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transfer_core import Corrections

__all__ = ["ALL_MISTAKES", "EXCLUDE", "apply_label", "cell_filter", "current_label", "filter_options", "gallery_images", "label_options"]

ALL_MISTAKES = "All mistakes"
EXCLUDE = "exclude from training"
_CORRECT = "Correct: "
_ARROW = " → "


def filter_options(predictions: Sequence[dict[str, Any]], classes: Sequence[str]) -> list[str]:
    """``All mistakes``, one entry per confused (true, predicted) pair, then ``Correct: <class>`` per class."""
    pairs = sorted({(p["true"], p["predicted"]) for p in predictions if not p["correct"]})
    return [ALL_MISTAKES, *(f"{true}{_ARROW}{predicted}" for true, predicted in pairs), *(f"{_CORRECT}{c}" for c in classes)]


def cell_filter(true: str, predicted: str) -> str:
    """The filter that shows one confusion-matrix cell: a class's correct images or a confused pair."""
    return f"{_CORRECT}{true}" if true == predicted else f"{true}{_ARROW}{predicted}"


def gallery_images(predictions: Sequence[dict[str, Any]], choice: str) -> list[dict[str, Any]]:
    """The predictions filter ``choice`` shows, highest loss (most confidently wrong) first."""
    if choice == ALL_MISTAKES:
        shown = [p for p in predictions if not p["correct"]]
    elif choice.startswith(_CORRECT):
        label = choice.removeprefix(_CORRECT)
        shown = [p for p in predictions if p["correct"] and p["true"] == label]
    else:
        true, predicted = choice.split(_ARROW)
        shown = [p for p in predictions if p["true"] == true and p["predicted"] == predicted]
    return sorted(shown, key=lambda p: p["loss"], reverse=True)


def label_options(true: str, classes: Sequence[str]) -> list[str]:
    """Choices of a tile's label box: its label first, the other classes, then leaving it out."""
    return [true, *(c for c in classes if c != true), EXCLUDE]


def current_label(fixes: Corrections, path: str, true: str) -> str:
    """What the label box of image ``path`` shows: its correction if it has one, else its label."""
    return EXCLUDE if path in fixes.exclude else fixes.relabel.get(path, true)


def apply_label(fixes: Corrections, path: str, choice: str, original: str) -> None:
    """Record the label box's ``choice`` for image ``path`` (labelled ``original`` in the dataset)."""
    if choice == EXCLUDE:
        fixes.set_excluded(path)
    else:
        fixes.set_label(path, choice, original)
