"""Export a trained run for use outside Warmstart, and prove the exports agree with the engine.

One export folder (``RUN/export``) holds the formats of one model, each taking a normalised
float32 ``(N, 3, S, S)`` batch and returning class probabilities, calibrated: the graphs divide the
logits by the run's temperature (``temperature`` in ``model.json``) before the softmax, exactly as
the engine's :class:`~transfer_core.deploy.predict.Predictor` does:

- ``model.torchscript.pt``: TorchScript (traced), for PyTorch without this package;
- ``model.onnx``: ONNX at opset 17 (ONNX Runtime 1.12+, TensorRT 8.5+, OpenVINO, OpenCV DNN);
- ``model.int8.onnx``: the same graph quantised to int8 (:mod:`transfer_core.deploy.quantize`),
  about 4x smaller; judged by its accuracy next to the float model's, not by equal probabilities;
- ``model.safetensors`` + ``model.json``: the weights and everything needed to rebuild the model
  (backbone, classes in output order, input size, normalisation, recipe, the weights' SHA-256)
  for Warmstart itself; ``model.json`` is written with every export, whatever the formats;
- ``MODEL_CARD.md`` + ``confusion_matrix.png``: what the model is, how it was made, how good it is.

:func:`~transfer_core.deploy.verify.verify_export` runs the exported files on the validation images and
compares them with the engine. Formats can be exported one at a time into
one folder; the weights' fingerprint in ``model.json`` tells whether the files already there
are of the same model (kept) or of another (removed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn

from ..data.splits import load_run_split
from ..errors import WarmstartError
from ..features.inference import run_inference
from ..data.images import ImageReadError, open_rgb
from ..models.metadata import ModelInfo, build_model
from ..models.transfer import TransferModel
from .latency import LATENCY_FILE
from .model_card import write_model_card
from .quantize import calibration_batches, quantize_onnx
from .predict import Predictor, load_trained_model
from ..reporting import OnProgress, phase
from ..runs.store import RunDir

__all__ = [
    "EXPORT_FORMATS", "ONNX_OPSET", "export_run", "export_zip", "load_exported", "read_metadata", "shared_recipe",
]

EXPORT_FORMATS = ("torchscript", "onnx", "onnx-int8", "safetensors", "card")
ONNX_OPSET = 17
PATH_FIELDS = ("data", "val_data", "corrections", "unlabeled", "pseudo_labels_from", "teacher")  # config fields that name files on the trainer's machine
METADATA_FILE = "model.json"
FORMAT_FILES = {  # the files each format owns in an export folder
    "torchscript": ("model.torchscript.pt",),
    "onnx": ("model.onnx",),
    "onnx-int8": ("model.int8.onnx",),
    "safetensors": ("model.safetensors",),
    "card": ("MODEL_CARD.md", "confusion_matrix.png"),
}


class _WithSoftmax(nn.Module):
    """The classifier as exported: normalised images in, calibrated probabilities out."""

    def __init__(self, model: TransferModel, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)  # a constant of the traced graph

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (self.model(image) / self.temperature).softmax(dim=1)


def export_run(
    run: RunDir | str | Path,
    formats: tuple[str, ...] = EXPORT_FORMATS,
    out_dir: str | Path | None = None,
    on_progress: OnProgress | None = None,
) -> Path:
    """Write the chosen formats into ``out_dir`` (default ``RUN/export``) and return that folder.

    Formats exported earlier into the same folder stay when they are of the same model (the
    same description and weights fingerprint in ``model.json``), so ``onnx`` and then
    ``torchscript`` leave both; files of another model are removed first, so a folder never
    mixes two models. Files that are not export files are never touched. Every file is
    written into a staging folder and moved into place with ``os.replace``: a failed export
    leaves the folder as it was.

    Args:
        run: the run folder (or :class:`RunDir`) to export.
        formats: a subset of :data:`EXPORT_FORMATS`.
        out_dir: the export folder; created if missing.
        on_progress: ``(done, total, "formats written")`` after each format (see :mod:`transfer_core.reporting`).

    Returns:
        The export folder.

    Raises:
        WarmstartError: unknown format, a run without a saved model or report, an export step
            that fails, or a folder that cannot be written.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown:
        raise WarmstartError(f"Unknown export format(s): {', '.join(unknown)}; choose from {', '.join(EXPORT_FORMATS)}.")
    model, values = load_trained_model(run)
    info = ModelInfo.from_dict(values, str(run.model_file))
    report = run.read_report()
    if report is None:
        raise WarmstartError(f"Run '{run.name}' has no report yet; export it once it has finished or been stopped.")
    folder = Path(out_dir) if out_dir else run.path / "export"
    if folder.exists() and not folder.is_dir():
        raise WarmstartError(f"'{folder}' is a file, not a folder; choose a folder to export into.")
    calibration = None
    if "onnx-int8" in formats:  # training images: validation must stay an honest check of the int8 model
        calibration = calibration_batches(load_run_split(run.read_config())[0], Predictor(model, info.classes, info.preprocessing).inputs)
    weights = save({k: v.contiguous() for k, v in model.state_dict().items()})
    fingerprint = hashlib.sha256(weights).hexdigest()
    config = shared_recipe(run.read_config().to_dict())
    size = info.preprocessing.input_size
    metadata = info.to_json_bytes(
        format_version=1,
        input={"name": "image", "layout": "NCHW", "dtype": "float32", "size": [size, size], "normalised": True},
        output={"name": "probabilities", "classes_in_order": info.classes, "computed_as": "softmax(logits / temperature)"},
        onnx_opset=ONNX_OPSET,
        weights_sha256=fingerprint,  # of model.safetensors, also when that file is not exported
        recipe=config,
        metrics={k: report[k] for k in ("val_accuracy", "macro_f1", "best_epoch") if k in report},
    )
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    except OSError as exc:
        raise WarmstartError(f"Cannot write into '{folder}' ({exc}); choose a folder you can write to.") from None
    try:
        try:
            _write_formats(staging, formats, model, info, weights, report, config, run.name, on_progress, calibration)
        except Exception as exc:  # nothing in here raises WarmstartError; exporters raise anything
            raise WarmstartError(f"Export of run '{run.name}' failed ({type(exc).__name__}: {exc}).") from None
        (staging / METADATA_FILE).write_bytes(metadata)
        _publish(staging, folder, keep_others=_holds_model(folder, info, fingerprint))
        (folder / LATENCY_FILE).unlink(missing_ok=True)  # measured for the files before; measure_latency again
    except OSError as exc:
        raise WarmstartError(f"Cannot write the export into '{folder}' ({exc}); check that there is space and it is writable.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(folder.iterdir()):
            folder.rmdir()
    return folder


def _write_formats(
    staging: Path, formats: tuple[str, ...], model: TransferModel, info: ModelInfo, weights: bytes,
    report: dict[str, Any], config: dict[str, Any], title: str, on_progress: OnProgress | None = None,
    calibration: list[np.ndarray] | None = None,
) -> None:
    """Write each chosen format's files into ``staging``, counting formats written."""
    size = info.preprocessing.input_size
    example = torch.zeros(1, 3, size, size)
    deployable = _WithSoftmax(model, info.temperature).eval()
    chosen = [name for name in EXPORT_FORMATS if name in formats]
    written = phase(on_progress, len(chosen), "formats written")
    for done, name in enumerate(chosen, start=1):
        if name == "safetensors":
            (staging / "model.safetensors").write_bytes(weights)
        elif name == "card":
            write_model_card(staging, info.to_dict(), report, config, title=title)
        else:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer and legacy-exporter notices are not the user's concern
                if name == "torchscript":
                    torch.jit.trace(deployable, example).save(str(staging / "model.torchscript.pt"))
                elif name == "onnx":
                    _export_onnx(deployable, example, staging / "model.onnx")
                else:  # int8: quantise the float graph (exported just before, or made here for the purpose)
                    float_graph = staging / "model.onnx" if "onnx" in chosen else staging / ".float.onnx"
                    if not float_graph.exists():
                        _export_onnx(deployable, example, float_graph)
                    quantize_onnx(float_graph, staging / "model.int8.onnx", calibration)
                    (staging / ".float.onnx").unlink(missing_ok=True)
        written(done)


def _export_onnx(deployable: nn.Module, example: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        deployable, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET, input_names=["image"],
        output_names=["probabilities"], dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
    )


def _holds_model(folder: Path, info: ModelInfo, fingerprint: str) -> bool:
    """True when ``folder``'s model.json describes this model with these weights (an unreadable one does not)."""
    try:
        raw = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        return raw.get("weights_sha256") == fingerprint and ModelInfo.from_dict(raw, METADATA_FILE) == info
    except (OSError, ValueError, AttributeError, WarmstartError):
        return False


def _publish(staging: Path, folder: Path, keep_others: bool) -> None:
    """Move the staged files into ``folder``, model.json last.

    Another model's files go first, its model.json before them: an interruption then leaves
    files without a model.json, which the next export clears, never files under the wrong one.
    """
    if not keep_others:
        for name in (METADATA_FILE, *(name for names in FORMAT_FILES.values() for name in names)):
            (folder / name).unlink(missing_ok=True)
    for path in sorted(staging.iterdir(), key=lambda p: p.name == METADATA_FILE):
        os.replace(path, folder / path.name)


def shared_recipe(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config as an export shows it: each path cut to its final name.

    An export is made to be shared, and the absolute paths of the training data say who
    trained it where (user names, mount points); ``flowers.zip`` or ``photos`` is all a
    reader needs to recognise the dataset.

    Args:
        config: ``TrainConfig.to_dict()`` of the run.

    Returns:
        A copy with ``data``, ``val_data`` and ``corrections`` reduced to file or folder names.
    """
    shared = dict(config)
    for key in PATH_FIELDS:
        if shared.get(key):
            shared[key] = _final_name(str(shared[key]))
    return shared


def _final_name(path: str) -> str:
    """The last component of a POSIX or Windows path (``.`` and ``..`` resolved against the working folder)."""
    name = PureWindowsPath(path).name  # splits on both separators, ignores a trailing one
    return name if name not in ("", ".", "..") else Path(path).resolve().name


def export_zip(folder: str | Path) -> bytes:
    """The export folder as one zip (what the app's download button serves)."""
    folder = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                zf.write(path, f"{folder.parent.name}/{path.name}")
    return buffer.getvalue()


def read_metadata(folder: Path) -> tuple[ModelInfo, dict[str, Any]]:
    path = folder / "model.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WarmstartError(f"'{folder}' has no model.json; is it a Warmstart export?") from None
    except json.JSONDecodeError as exc:
        raise WarmstartError(f"'{path}' is not valid JSON ({exc}).") from None
    return ModelInfo.from_dict(raw, str(path)), raw


def load_exported(folder: str | Path, device: str = "cpu") -> Predictor:
    """A Predictor from an export's ``model.safetensors`` + ``model.json``, checked against each other."""
    folder = Path(folder)
    info, raw = read_metadata(folder)
    weights = folder / "model.safetensors"
    try:
        state = load_file(str(weights))
    except FileNotFoundError:
        raise WarmstartError(f"'{folder}' has no model.safetensors.") from None
    except Exception as exc:
        raise WarmstartError(f"'{weights}' is not a readable safetensors file ({exc}).") from None
    model = build_model(info, state, source=str(weights))
    fingerprint = raw.get("weights_sha256") or f"{weights.resolve()}:{weights.stat().st_mtime_ns}"
    return Predictor(model, info.classes, info.preprocessing, device, weights=f"export:{fingerprint}", temperature=info.temperature)
