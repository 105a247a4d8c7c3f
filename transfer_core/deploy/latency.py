"""What each exported file costs where it will run: its size and its time per image, measured here.

Measured at export time on the machine that exports, with the runtime each format is made for
(ONNX Runtime for the ``.onnx`` files, PyTorch for TorchScript and for the safetensors weights
rebuilt by Warmstart), at batch 1 (one photo at a time: a phone, a camera trap) and batch 32 (a
folder of photos). Each timing is the median of several runs after a warm-up, so a single
hiccup of the machine does not decide it. The numbers are written to ``latency.json`` beside the
files, so the Export page and the model card show them without measuring again.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import WarmstartError

__all__ = ["LATENCY_FILE", "FormatCost", "RunCost", "cost_table", "measure_export", "measure_latency", "measure_run", "read_latency"]

LATENCY_FILE = "latency.json"
FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "torchscript": "model.torchscript.pt", "safetensors": "model.safetensors"}


@dataclass(frozen=True)
class FormatCost:
    """One exported format's file size and milliseconds per image at batch 1 and batch 32 (None: could not run)."""

    format: str
    file: str
    megabytes: float
    ms_per_image_batch1: float | None
    ms_per_image_batch32: float | None
    error: str | None = None


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: first-call allocations and lazy initialisation are not what a user waits for each time
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _runner(name: str, path: Path, folder: Path) -> Callable[[np.ndarray], object]:
    if name.startswith("onnx"):
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda batch: session.run(None, {"image": batch})
    if name == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu").eval()
    else:
        from .export import load_exported

        module = load_exported(folder).model.eval()

    def run(batch: np.ndarray) -> object:
        with torch.inference_mode():
            return module(torch.from_numpy(batch))

    return run


def measure_latency(folder: str | Path, input_size: int, repeats: int = 5) -> list[FormatCost]:
    """Time every model file in the export ``folder`` and write ``latency.json`` there.

    Args:
        input_size: the model's square input side in pixels (``model.json``'s).
        repeats: timed runs per batch size (the median counts), after one warm-up run.
    """
    folder = Path(folder)
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 3, input_size, input_size)).astype(np.float32)
    many = rng.standard_normal((32, 3, input_size, input_size)).astype(np.float32)
    costs = []
    for name, file in FILES.items():
        path = folder / file
        if not path.exists():
            continue
        megabytes = path.stat().st_size / 1e6
        try:
            run = _runner(name, path, folder)
            single = _median_seconds(lambda: run(one), repeats) * 1000
            batched = _median_seconds(lambda: run(many), max(2, repeats // 2)) * 1000 / len(many)
            costs.append(FormatCost(name, file, megabytes, single, batched))
        except (WarmstartError, RuntimeError, ValueError, OSError, ImportError) as exc:
            costs.append(FormatCost(name, file, megabytes, None, None, f"{type(exc).__name__}: {exc}"))
    with contextlib.suppress(OSError):  # a read-only folder: the costs are still returned and shown, only not kept
        (folder / LATENCY_FILE).write_text(json.dumps([asdict(c) for c in costs], indent=1), encoding="utf-8")
    return costs


def measure_export(folder: str | Path, checks) -> list[FormatCost]:
    """Time every file of an export just checked (``checks``: its :func:`~transfer_core.deploy.verify.verify_export`
    results) and write both into the model card's deployment section: what the Export page and ``export`` do last."""
    from .export import read_metadata
    from .model_card import add_deployment_section

    costs = measure_latency(folder, read_metadata(Path(folder))[0].preprocessing.input_size)
    add_deployment_section(folder, checks, costs)
    return costs


def read_latency(folder: str | Path) -> list[FormatCost]:
    """The costs measured at export time ([] when there are none, or the file is unreadable)."""
    try:
        raw = json.loads((Path(folder) / LATENCY_FILE).read_text(encoding="utf-8"))
        return [FormatCost(**item) for item in raw]
    except (OSError, ValueError, TypeError):
        return []


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def cost_table(costs: list[FormatCost]) -> str:
    """The costs as a Markdown table (the model card's, and what ``export`` prints)."""
    lines = ["| format | file | size (MB) | ms per image, batch 1 | ms per image, batch 32 |", "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {c.format} | {c.file} | {c.megabytes:.1f} | {_ms(c.ms_per_image_batch1)} | {_ms(c.ms_per_image_batch32)} |"
              for c in costs]
    return "\n".join(lines)


@dataclass(frozen=True)
class RunCost:
    """A trained run's model as the app runs it on a CPU: parameters and ms per image at batch 1 and 32."""

    parameters: int
    ms_per_image_batch1: float
    ms_per_image_batch32: float


def measure_run(run, repeats: int = 5) -> RunCost:
    """Parameters and CPU time per image of ``run``'s model in PyTorch (what Compare shows for teacher and
    students side by side; exported files have their own, per format, in :func:`measure_latency`)."""
    from .predict import load_trained_model

    model, info = load_trained_model(run)
    model = model.to("cpu").eval()
    size = info["preprocessing"]["input_size"]
    rng = np.random.default_rng(0)
    one = torch.from_numpy(rng.standard_normal((1, 3, size, size)).astype(np.float32))
    many = torch.from_numpy(rng.standard_normal((32, 3, size, size)).astype(np.float32))
    with torch.inference_mode():
        single = _median_seconds(lambda: model(one), repeats) * 1000
        batched = _median_seconds(lambda: model(many), max(2, repeats // 2)) * 1000 / len(many)
    return RunCost(sum(p.numel() for p in model.parameters()), single, batched)
