"""Load a trained run and predict classes for new image files."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.augment import eval_view, normalise
from ..models.registry import Preprocessing
from ..data.archives import extract_zip
from ..data.records import DatasetIndex, is_ignored_name
from ..data.sources import load_dataset
from ..data.splits import load_run_split
from ..errors import WarmstartError
from ..reporting import OnProgress
from ..features.inference import run_inference
from ..insight.calibration import confidence_metrics
from ..insight.evaluate import classification_report, per_image_predictions
from ..data.decode import as_image_tensor, cache_side_for, read_image_tensor
from ..data.images import IMAGE_EXTENSIONS, ImageReadError
from ..models.metadata import ModelInfo, build_model
from ..models.transfer import TransferModel
from ..runs.store import RunDir
from .tta import tta_probabilities

__all__ = ["Prediction", "Predictor", "evaluate_run", "expand_inputs", "load_trained_model", "predictions_table"]


def load_trained_model(run: RunDir | str | Path) -> tuple[TransferModel, dict]:
    """Rebuild a run's model from ``model.json`` and its best checkpoint (no download, no pickle).

    Raises:
        WarmstartError: if the folder is not a run, has no checkpoint, or the weights do not fit.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    if not run.path.is_dir():
        raise WarmstartError(f"Run folder '{run.path}' does not exist.")
    info = ModelInfo.from_dict(run.read_model_info(), str(run.model_file))
    model = build_model(info, run.load_checkpoint(), source=str(run.checkpoint_file))
    return model, info.to_dict()


@dataclass
class Prediction:
    source: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"source": self.source, "top": [{"class": c, "probability": p} for c, p in self.top], "error": self.error}


class Predictor:
    """A trained model ready for inference on image files or PIL images."""

    def __init__(
        self, model: TransferModel, classes: Sequence[str], preprocessing: Preprocessing, device: str = "cpu", weights: str | None = None,
        temperature: float = 1.0,
    ) -> None:
        """``weights`` names this model's weights (run folder + checkpoint time): lets a CPU use ONNX Runtime.
        ``temperature`` divides the logits before the softmax (the run's calibration, see :mod:`transfer_core.insight.calibration`)."""
        self.model = model.to(device).eval()
        self.weights = weights
        self.temperature = float(temperature)
        self.batch_size = 64
        self.classes = list(classes)
        self.preprocessing = preprocessing
        self.device = torch.device(device)
        self._view = eval_view(preprocessing)
        self._normalise = normalise(preprocessing)
        self._short_side = cache_side_for(preprocessing.input_size, preprocessing.crop_pct)

    @classmethod
    def from_run(cls, run: RunDir | str | Path, device: str = "cpu") -> Predictor:
        run = run if isinstance(run, RunDir) else RunDir(run)
        model, info = load_trained_model(run)
        weights = f"run:{run.path.resolve()}:{run.checkpoint_file.stat().st_mtime_ns}"
        return cls(model, info["classes"], Preprocessing.from_dict(info["preprocessing"]), device, weights, info["temperature"])

    def read(self, path: str | Path) -> torch.Tensor:
        """One image file as predictions read it (a shrunk uint8 tensor, see :meth:`views`); raises ImageReadError."""
        return read_image_tensor(path, self._short_side)

    def views(self, images: Sequence[Image.Image | torch.Tensor]) -> list[torch.Tensor]:
        """The uint8 evaluation crops of RGB PIL images (or of images as :func:`read_image_tensor` reads
        them): the pixels the model sees, before normalising."""
        return [self._view(as_image_tensor(image, self._short_side)) for image in images]

    def inputs(self, images: Sequence[Image.Image | torch.Tensor] = (), views: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The normalised ``(n, 3, size, size)`` batch for RGB PIL images (or for crops from :meth:`views`)."""
        return self._normalise(torch.stack(list(views) if views is not None else self.views(images)))

    def probabilities(
        self, images: Sequence[Image.Image | torch.Tensor] = (), inputs: torch.Tensor | None = None, on_batch: Callable[[int], None] | None = None,
        tta: bool = False,
    ) -> np.ndarray:
        """``(n, n_classes)`` calibrated class probabilities for RGB PIL images (or an already normalised batch).

        ``on_batch`` is called with the number of images done so far. ``tta`` averages six views of
        each image (see :mod:`transfer_core.deploy.tta`); it needs the images, not ``inputs``.
        """
        if tta:
            return tta_probabilities(self, images, on_batch, prepared=inputs)
        batch = inputs if inputs is not None else self.inputs(images)
        logits = run_inference(
            self.model, batch, self.device, module=self.model, batch_size=self.batch_size, frozen_key=self.weights, on_batch=on_batch,
        )
        return (logits / self.temperature).softmax(1).numpy()

    def file_probabilities(
        self, paths: Sequence[str | Path], batch_size: int = 32, tta: bool = False, on_progress: OnProgress | None = None,
    ) -> tuple[np.ndarray, list[str | None]]:
        """``(n, n_classes)`` calibrated probabilities of image files, read a batch at a time, and each
        file's read error (None when it was read); an unreadable file's row is NaN, not a failed batch."""
        probabilities = np.full((len(paths), len(self.classes)), np.nan)
        errors: list[str | None] = [None] * len(paths)
        for start in range(0, len(paths), batch_size):
            if on_progress is not None:
                on_progress(start, len(paths), "predicting")
            readable: list[tuple[int, torch.Tensor]] = []
            for i in range(start, min(start + batch_size, len(paths))):
                try:
                    readable.append((i, self.read(paths[i])))
                except ImageReadError as exc:
                    errors[i] = str(exc)
            if readable:
                rows = [i for i, _ in readable]
                probabilities[rows] = self.probabilities([image for _, image in readable], tta=tta)
        if on_progress is not None:
            on_progress(len(paths), len(paths), "predicting")
        return probabilities, errors

    def predict_files(self, paths: Sequence[str | Path], top_k: int = 3, batch_size: int = 32, tta: bool = False) -> list[Prediction]:
        """Top-k classes per file (``tta``: averaged over six views); unreadable files get an ``error`` instead of failing the batch."""
        probabilities, errors = self.file_probabilities(paths, batch_size, tta)
        k = max(1, min(top_k, len(self.classes)))
        results = [Prediction(str(p)) for p in paths]
        for result, row, error in zip(results, probabilities, errors):
            if error is not None:
                result.error = error
            else:
                result.top = [(self.classes[j], float(row[j])) for j in np.argsort(-row)[:k]]
        return results


def expand_inputs(sources: Sequence[str | Path], extract_dir: str | Path | None = None) -> list[str]:
    """Image files from any mix of files, folders (searched recursively) and zips (safely extracted).

    Hidden files and ``__MACOSX`` are left out; non-image files inside folders and zips are
    ignored, while a file named directly is kept so its prediction can say why it failed.
    """
    out: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_file() and path.suffix.lower() == ".zip":
            path, _ = extract_zip(path, extract_dir)
        if path.is_dir():
            out += sorted(
                str(p) for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(is_ignored_name(part) for part in p.relative_to(path).parts)
            )
        else:
            out.append(str(path))
    return out


def predictions_table(predictions: Sequence[Prediction]) -> list[dict]:
    """One flat row per image (file, top class and probability, the rest of the top-k, error) for CSV."""
    rows = []
    for p in predictions:
        row = {"file": p.source, "predicted": p.top[0][0] if p.top else "", "probability": round(p.top[0][1], 6) if p.top else None}
        for rank, (name, probability) in enumerate(p.top[1:], start=2):
            row[f"class_{rank}"], row[f"probability_{rank}"] = name, round(probability, 6)
        row["error"] = p.error or ""
        rows.append(row)
    return rows


def evaluation_index(run: RunDir, data: str | Path | None, predictor: Predictor) -> DatasetIndex:
    """The images to evaluate ``run`` on: ``data`` (any labelled dataset) or the run's own validation split.

    Raises:
        WarmstartError: the data holds classes the model never learned.
    """
    index = load_run_split(run.read_config())[1] if data is None else load_dataset(data)
    unknown = sorted(set(index.classes) - set(predictor.classes))
    if unknown:
        raise WarmstartError(f"The model was not trained on these classes: {', '.join(unknown)}.")
    return index


def evaluate_run(run: RunDir | str | Path, data: str | Path | None = None, batch_size: int = 32) -> dict:
    """Metrics of a run's best model on ``data`` (any labeled dataset) or on its own validation set.

    Returns:
        The :func:`classification_report` dict plus ``predictions`` (one record per image),
        ``skipped`` files and ``confidence``: the calibration error, NLL and reliability bins of these
        images at the run's temperature (``fitted_on_these_images`` when they are the validation images
        the temperature was fitted on: the run's report holds the honest, cross-fitted numbers then).
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    predictor = Predictor.from_run(run)
    index = evaluation_index(run, data, predictor)
    class_to_idx = {c: i for i, c in enumerate(predictor.classes)}
    paths, targets, images, skipped = [], [], [], [dataclasses.asdict(s) for s in index.skipped]
    for record in index.records:
        try:
            images.append(predictor.read(record.path))
        except ImageReadError as exc:
            skipped.append({"path": record.path, "reason": str(exc)})
            continue
        paths.append(record.path)
        targets.append(class_to_idx[record.label])
    if not images:
        raise WarmstartError("No readable images to evaluate on.")
    probs = np.concatenate(
        [predictor.probabilities(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )
    report = classification_report(targets, probs, predictor.classes)
    report["predictions"] = per_image_predictions(paths, targets, probs, predictor.classes)
    report["skipped"] = skipped
    fitted_here = data is None and predictor.temperature != 1.0
    report["confidence"] = {"temperature": predictor.temperature, "fitted_on_these_images": fitted_here, **confidence_metrics(probs, targets)}
    return report
