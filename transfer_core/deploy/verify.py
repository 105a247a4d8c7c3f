"""Prove an export is the model the app trained: run its files on the validation images and compare.

The float files (ONNX, TorchScript) must give the engine's own calibrated probabilities, within
:data:`EXPORT_TOLERANCE`, on every validation image. The int8 ONNX file cannot (it rounds), so it is
judged as a user would judge it: how often it picks the same class as the float model, and what
accuracy it keeps on the validation images (:data:`INT8_ACCURACY_DROP` at most).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.images import ImageReadError
from ..data.splits import load_run_split
from ..errors import WarmstartError
from ..features.inference import run_inference
from ..models.metadata import ModelInfo
from ..reporting import OnProgress, phase
from ..runs.store import RunDir
from .predict import Predictor

__all__ = ["EXPORT_TOLERANCE", "INT8_ACCURACY_DROP", "FormatAgreement", "describe", "verify_export"]

EXPORT_TOLERANCE = 1e-4  # largest probability difference accepted as "the same model"
INT8_ACCURACY_DROP = 0.02  # the most validation accuracy an int8 file may lose and still be recommended


@dataclass
class FormatAgreement:
    """How one exported format compares with the engine on the same validation images.

    ``accuracy`` is the format's share of validation images right, ``engine_accuracy`` the float
    model's on the same images; ``quantized`` formats are judged by those, float ones by equal probabilities.
    """

    format: str
    images: int
    agreement: float | None  # share of images with the same top-1 class
    max_difference: float | None  # largest absolute probability difference
    error: str | None = None
    accuracy: float | None = None
    engine_accuracy: float | None = None
    quantized: bool = False

    @property
    def ok(self) -> bool:
        if self.error is not None:
            return False
        if self.quantized:
            return self.accuracy is not None and self.engine_accuracy - self.accuracy <= INT8_ACCURACY_DROP
        return self.agreement == 1.0 and (self.max_difference or 0.0) <= EXPORT_TOLERANCE


def describe(result: FormatAgreement, engine: str = "the app") -> str:
    """One sentence on a check (what the Export page and ``export`` print); ``engine``: what the files were compared with."""
    if result.error:
        return f"{result.format}: could not be checked ({result.error})."
    if result.quantized:
        change = 100 * (result.accuracy - result.engine_accuracy)
        verdict = "" if result.ok else f" It loses more than {INT8_ACCURACY_DROP:.0%} of accuracy: prefer the float model."
        return (f"{result.format}: the same class as the float model on {result.agreement:.1%} of {result.images} validation "
                f"images; accuracy {result.accuracy:.1%} against {result.engine_accuracy:.1%} ({change:+.1f} points).{verdict}")
    if result.ok:
        return (f"{result.format}: agrees with {engine} on all {result.images} validation images "
                f"(top-1 agreement {result.agreement:.0%}, largest probability difference {result.max_difference:.1e}).")
    return (f"{result.format}: DISAGREES with {engine}: top-1 agreement {result.agreement:.1%} on {result.images} images, "
            f"largest probability difference {result.max_difference:.1e} (allowed {EXPORT_TOLERANCE:.0e}). Do not deploy this file.")


def _validation_views(run: RunDir, engine: Predictor, limit: int, on_progress: OnProgress | None) -> tuple[list[torch.Tensor], np.ndarray]:
    """The evaluation crops of up to ``limit`` readable validation images and their class numbers, counting images read."""
    _, val = load_run_split(run.read_config())
    records = val.records[:limit]
    read = phase(on_progress, len(records), "validation images read")
    views, targets = [], []
    for done, record in enumerate(records, start=1):
        try:
            image = engine.read(record.path)  # as the engine's own predictions read it
        except ImageReadError:
            image = None  # an unreadable image is left out of the comparison; it is not an export problem
        if image is not None:
            views.extend(engine.views([image]))
            targets.append(engine.classes.index(record.label) if record.label in engine.classes else -1)
        read(done)
    return views, np.array(targets)


def _check_onnx_signature(session, info: ModelInfo) -> None:
    shape = session.get_inputs()[0].shape
    size = info.preprocessing.input_size
    if list(shape[1:]) != [3, size, size]:
        raise WarmstartError(f"the ONNX input is {shape}, but model.json says 3x{size}x{size}")
    outputs = session.get_outputs()[0].shape
    if outputs[-1] != len(info.classes):
        raise WarmstartError(f"the ONNX output has {outputs[-1]} classes, model.json lists {len(info.classes)}")


def verify_export(
    run: RunDir | str | Path, folder: str | Path | None = None, limit: int = 500, on_progress: OnProgress | None = None
) -> list[FormatAgreement]:
    """Run the exported ONNX (float and int8) and TorchScript models on up to ``limit`` validation images and compare.

    Args:
        run: the exported run.
        folder: its export folder (default ``RUN/export``).
        limit: most validation images used.
        on_progress: ``(done, total, what)`` (see :mod:`transfer_core.reporting`): images read, then images
            run through the engine and through each exported file.

    Returns:
        One :class:`FormatAgreement` per ONNX or TorchScript file in the folder.
    """
    from .export import read_metadata

    run = run if isinstance(run, RunDir) else RunDir(run)
    folder = Path(folder) if folder else run.path / "export"
    info, _ = read_metadata(folder)
    engine = Predictor.from_run(run)
    if engine.classes != info.classes or engine.preprocessing != info.preprocessing:
        raise WarmstartError(f"The export in '{folder}' does not belong to run '{run.name}' (classes or preprocessing differ).")
    views, targets = _validation_views(run, engine, limit, on_progress)
    if not views:
        raise WarmstartError("No readable validation images to check the export on.")
    batch = engine.inputs(views=views)
    expected = engine.probabilities(inputs=batch, on_batch=phase(on_progress, len(batch), "images run through the engine"))
    engine_accuracy = float((expected.argmax(1) == targets).mean())
    results = []
    files = (("onnx", "model.onnx", _run_onnx), ("onnx-int8", "model.int8.onnx", _run_onnx), ("torchscript", "model.torchscript.pt", _run_torchscript))
    for name, file, run_format in files:
        path, quantized = folder / file, name == "onnx-int8"
        if not path.exists():
            continue
        try:
            got = run_format(path, batch, info, phase(on_progress, len(batch), f"images run through {path.name}"))
        except WarmstartError as exc:
            results.append(FormatAgreement(name, len(batch), None, None, str(exc), quantized=quantized))
            continue
        except Exception as exc:
            results.append(FormatAgreement(name, len(batch), None, None, f"{type(exc).__name__}: {exc}", quantized=quantized))
            continue
        agreement = float((got.argmax(1) == expected.argmax(1)).mean())
        results.append(FormatAgreement(name, len(batch), agreement, float(np.abs(got - expected).max()),
                                       accuracy=float((got.argmax(1) == targets).mean()), engine_accuracy=engine_accuracy,
                                       quantized=quantized))
    return results


def _run_onnx(path: Path, batch: torch.Tensor, info: ModelInfo, on_batch: Callable[[int], None]) -> np.ndarray:
    try:
        import onnxruntime
    except ImportError:
        raise WarmstartError("onnxruntime is not installed, so the ONNX file could not be checked") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _check_onnx_signature(session, info)
    outputs = []
    for start in range(0, len(batch), 64):
        outputs.append(session.run(None, {"image": batch[start : start + 64].numpy()})[0])
        on_batch(start + len(outputs[-1]))
    return np.concatenate(outputs)


def _run_torchscript(path: Path, batch: torch.Tensor, info: ModelInfo, on_batch: Callable[[int], None]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream, still the widest runtime
        module = torch.jit.load(str(path), map_location="cpu").eval()
    out = run_inference(module, batch, "cpu", batch_size=64, on_batch=on_batch).numpy()
    if out.shape[1] != len(info.classes):
        raise WarmstartError(f"the TorchScript output has {out.shape[1]} classes, model.json lists {len(info.classes)}")
    return out
