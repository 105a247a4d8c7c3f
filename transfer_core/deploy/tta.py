"""Test-time augmentation (TTA): average a model's probabilities over a few views of each image.

The views are the evaluation crop itself, its mirror image, and the four corner crops of the
same resized image (the ten-crop protocol of the ImageNet papers, less the corners' mirrors):

    centre, mirrored centre, top-left, top-right, bottom-left, bottom-right

The corners come from the image resized exactly as for evaluation (short side ``size /
crop_pct``, 256 for a 224 model), so each sees the margin the centre crop cuts off plus most of
the centre; on an oblong photo the corner crops reach both ends of its long side. The average of
the six softmax outputs is the prediction. It costs one forward pass per view (six times the
plain prediction) and no training; it helps most when objects are off-centre or cut by the centre
crop, and it can also turn a right prediction wrong, which is why :func:`compare_tta` lists both.

Why not more views: a mirror and a shift are what nearly every training recipe already
augments with, so the model has seen such views; rotations and colour changes it may not have
seen would add noise, and each extra view costs another forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..data.augment import eval_view
from ..data.decode import as_image_tensor, cache_side_for
from ..data.image_cache import LabeledImages, shared_image_cache
from ..errors import WarmstartError
from ..models.registry import Preprocessing
from ..reporting import OnProgress, phase
from ..runs.store import RunDir

if TYPE_CHECKING:
    from .predict import Predictor

__all__ = ["TTA_VIEWS", "TTAChange", "TTAComparison", "compare_tta", "tta_changes", "tta_probabilities", "tta_report", "tta_views", "view_probabilities"]

TTA_VIEWS = ("centre", "mirrored centre", "top-left", "top-right", "bottom-left", "bottom-right")


def tta_views(image: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """The ``(6, 3, size, size)`` uint8 views of one image, in :data:`TTA_VIEWS` order.

    Args:
        image: a uint8 CHW image as the decoded-image cache keeps it (see ``shrink_to_tensor``).
        pre: the model's preprocessing; the first view is exactly its evaluation crop.
    """
    resize, _ = eval_view(pre).transforms  # the evaluation's own resize, then its centre crop
    if not isinstance(resize, v2.Resize):  # pragma: no cover - guards a change of the evaluation transform
        raise WarmstartError("The evaluation transform no longer starts with a resize; test-time augmentation needs updating.")
    size = [pre.input_size, pre.input_size]
    top_left, top_right, bottom_left, bottom_right, centre = F.five_crop(resize(image), size)
    return torch.stack([centre, F.horizontal_flip(centre), top_left, top_right, bottom_left, bottom_right])


def _shrunk(predictor: Predictor, images: Sequence[Image.Image | torch.Tensor]) -> list[torch.Tensor]:
    """PIL images shrunk as the evaluation reads them; cached uint8 tensors pass through."""
    pre = predictor.preprocessing
    side = cache_side_for(pre.input_size, pre.crop_pct)
    return [as_image_tensor(image, side) for image in images]


def view_probabilities(
    predictor: Predictor, images: Sequence[Image.Image | torch.Tensor], on_batch: Callable[[int], None] | None = None
) -> np.ndarray:
    """``(6, n, n_classes)`` probabilities of every view of every image (view 0 is the plain prediction).

    Views of a few images at a time go through the model in one batch of about
    ``predictor.batch_size`` inputs: one forward pass per view, never a view computed twice.

    Args:
        predictor: the trained model.
        images: RGB PIL images, or uint8 CHW tensors from the decoded-image cache.
        on_batch: called with the number of images done so far.
    """
    per_chunk = max(1, predictor.batch_size // len(TTA_VIEWS))
    parts = []
    for start in range(0, len(images), per_chunk):  # a few images at a time: a large set is never all in memory
        chunk = _shrunk(predictor, [images[i] for i in range(start, min(start + per_chunk, len(images)))])
        views = torch.stack([tta_views(image, predictor.preprocessing) for image in chunk])  # (images, views, 3, s, s)
        batch = predictor.inputs(views=list(views.transpose(0, 1).flatten(0, 1)))  # grouped by view
        probabilities = predictor.probabilities(inputs=batch)
        parts.append(probabilities.reshape(len(TTA_VIEWS), len(chunk), -1))
        if on_batch is not None:
            on_batch(start + len(chunk))
    if not parts:
        return np.zeros((len(TTA_VIEWS), 0, len(predictor.classes)), dtype=np.float32)
    return np.concatenate(parts, axis=1)


def tta_probabilities(
    predictor: Predictor, images: Sequence[Image.Image | torch.Tensor], on_batch: Callable[[int], None] | None = None,
    prepared: torch.Tensor | None = None,
) -> np.ndarray:
    """``(n, n_classes)``: the mean of the six views' softmax probabilities (see :func:`view_probabilities`).

    ``prepared`` (a normalised batch, as :meth:`Predictor.probabilities` also accepts) is refused:
    the corner crops need the whole image, which a prepared centre crop no longer holds.
    """
    if prepared is not None:
        raise WarmstartError("Test-time augmentation crops the images themselves; pass images, not a prepared batch.")
    return view_probabilities(predictor, images, on_batch).mean(axis=0)


@dataclass(frozen=True)
class TTAChange:
    """One image whose top class TTA changed."""

    path: str
    true: str
    before: str  # predicted without TTA
    after: str  # predicted with TTA
    before_confidence: float
    after_confidence: float

    @property
    def kind(self) -> str:
        """``fixed`` (wrong → right), ``broken`` (right → wrong) or ``still wrong`` (one wrong class → another)."""
        if self.after == self.true:
            return "fixed"
        return "broken" if self.before == self.true else "still wrong"


def tta_changes(
    paths: Sequence[str], targets: Sequence[int], plain: np.ndarray, tta: np.ndarray, classes: Sequence[str]
) -> list[TTAChange]:
    """The images whose top class differs with and without TTA, broken ones first, then fixed, then the rest."""
    before, after = plain.argmax(1), tta.argmax(1)
    changes = [
        TTAChange(path, classes[target], classes[b], classes[a], float(plain[i, b]), float(tta[i, a]))
        for i, (path, target, b, a) in enumerate(zip(paths, targets, before, after))
        if b != a
    ]
    order = {"broken": 0, "fixed": 1, "still wrong": 2}
    return sorted(changes, key=lambda c: order[c.kind])


@dataclass
class TTAComparison:
    """A model's predictions on labelled images, with and without TTA."""

    classes: list[str]
    paths: list[str]
    targets: list[int]
    plain: np.ndarray  # (n, n_classes): the evaluation crop alone
    tta: np.ndarray  # (n, n_classes): the mean over TTA_VIEWS
    skipped: list[dict] = field(default_factory=list)

    @property
    def accuracy_plain(self) -> float:
        return float((self.plain.argmax(1) == np.asarray(self.targets)).mean())

    @property
    def accuracy_tta(self) -> float:
        return float((self.tta.argmax(1) == np.asarray(self.targets)).mean())

    @property
    def changes(self) -> list[TTAChange]:
        return tta_changes(self.paths, self.targets, self.plain, self.tta, self.classes)

    def count(self, kind: str) -> int:
        """How many images TTA ``fixed``, ``broken`` or left ``still wrong`` with another class."""
        return sum(change.kind == kind for change in self.changes)


class _Decoded(Sequence):
    """The decoded uint8 images of a :class:`LabeledImages`, read from its cache as they are needed."""

    def __init__(self, images: LabeledImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:  # type: ignore[override]
        return self.images[i][0]


def compare_tta(
    run: RunDir | str | Path, data: str | Path | None = None, on_progress: OnProgress | None = None, predictor: Predictor | None = None
) -> TTAComparison:
    """Predict a run's validation images (or a labelled dataset) with and without TTA.

    Args:
        run: a trained run.
        data: a labelled dataset to use instead of the run's validation set.
        on_progress: ``(done, total, what)`` (see :mod:`transfer_core.reporting`): images read, then
            images predicted through all six views.
        predictor: the run's model when the caller already holds it (the app caches one).

    Raises:
        WarmstartError: if the run has no model, the data holds classes the model never learned,
            or no image is readable.
    """
    from .predict import Predictor, evaluation_index

    run = run if isinstance(run, RunDir) else RunDir(run)
    predictor = predictor or Predictor.from_run(run)
    index = evaluation_index(run, data, predictor)
    pre = predictor.preprocessing
    class_to_idx = {c: i for i, c in enumerate(predictor.classes)}
    images = LabeledImages(index.records, class_to_idx, shared_image_cache(cache_side_for(pre.input_size, pre.crop_pct)))
    skipped: list[dict] = [{"path": s.path, "reason": s.reason} for s in index.skipped]
    failed = images.warm(lambda record, error: skipped.append({"path": record.path, "reason": str(error)}),
                         on_read=phase(on_progress, len(images), "reading images"))
    images = images.without(failed)
    if not len(images):
        raise WarmstartError("No readable images to compare with and without test-time augmentation.")
    views = view_probabilities(predictor, _Decoded(images), phase(on_progress, len(images), f"images predicted through {len(TTA_VIEWS)} views"))
    return TTAComparison(
        list(predictor.classes), [r.path for r in images.records], list(images.targets), views[0], views.mean(axis=0), skipped
    )


def tta_report(comparison: TTAComparison) -> dict:
    """The :func:`~transfer_core.deploy.predict.evaluate_run` report of the TTA predictions, plus a
    ``tta`` record: the views, the accuracy without TTA and the images it fixed and broke."""
    from ..insight.evaluate import classification_report, per_image_predictions

    c = comparison
    report = classification_report(c.targets, c.tta, c.classes)
    report["predictions"] = per_image_predictions(c.paths, c.targets, c.tta, c.classes)
    report["skipped"] = c.skipped
    report["tta"] = {
        "views": list(TTA_VIEWS),
        "val_accuracy_without_tta": c.accuracy_plain,
        "fixed": c.count("fixed"),
        "broken": c.count("broken"),
        "changes": [{**vars(change), "kind": change.kind} for change in c.changes],
    }
    return report
