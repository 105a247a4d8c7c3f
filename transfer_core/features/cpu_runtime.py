"""The fastest forward pass a CPU offers for a network that does not change: ONNX Runtime.

On a laptop CPU, ONNX Runtime runs EfficientNet-Lite0 several times faster than eager PyTorch
(measured in ``bench/run.py``), and feature extraction is most of what people wait for. A frozen
network (a pretrained backbone, a frozen prefix of one, or a finished model) is exported to ONNX
once, checked against PyTorch on a random batch, kept on disk under a key naming the network,
its weights and its input shape, and reused by every later job. When the export or the check
fails (some timm models do not export), the caller keeps eager PyTorch and is told why in one line.

How it runs matters as much as which runtime: one single-threaded run per core, each on a
couple of images, beats one multi-threaded run on a large batch. ``bench/run.py``'s floors
measured EfficientNet-Lite0 over 210 images on two cores at 0.50 s this way against 0.72 s as
one two-thread session at batch 64 (Lite2 1.4x, ResNet-50 1.03x): small batches keep a layer's
activations in the core's cache, and independent runs never wait for each other between layers.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..parallel import openmp_threads, take_turns

__all__ = ["OnnxForward", "cpu_runtime_enabled", "onnx_forward"]

AGREEMENT_TOLERANCE = 1e-4  # largest |ONNX − PyTorch| accepted, relative to the output's scale

MICRO_BATCH = 2  # images per single-threaded run (bench/run.py: 1-4 are equally fast, 8 slower, 32 much slower)
STREAM_CHUNK = 256  # inputs read before they run (256 uint8 crops at 224 px: 38 MB; float inputs 4x that)
MAX_SESSIONS = 8  # sessions kept in memory (each holds a copy of its network's weights)
_SESSIONS: OrderedDict[str, OnnxForward | str] = OrderedDict()  # key → ready forward, or why not
_LOCK = threading.Lock()


def cpu_runtime_enabled() -> bool:
    """The CPU fast paths (ONNX Runtime for frozen networks, channels-last training) are on unless
    ``WARMSTART_CPU_RUNTIME=torch`` asks for plain eager PyTorch (an escape hatch, and the benchmark's baseline)."""
    return os.environ.get("WARMSTART_CPU_RUNTIME", "onnx").lower() != "torch"


class _AsModule(nn.Module):
    """Wraps a forward callable of ``module`` so the exporter can trace it."""

    def __init__(self, module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner, self._forward = module, forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)


class OnnxForward:
    """A batch → output function backed by an ONNX Runtime session (float32 tensor out).

    The input is float32, or uint8 images when the graph begins with the normalisation
    (``onnx_forward(..., normalise=...)``): ONNX Runtime then does in the same pass what
    PyTorch would have done as three more passes over the batch.

    A batch is cut into runs of ``micro_batch`` images, each single-threaded, ``workers`` at a
    time (default: one per thread PyTorch uses); see the module's docstring for why.
    """

    def __init__(self, path: Path, workers: int | None = None, micro_batch: int = MICRO_BATCH) -> None:
        import onnxruntime

        self.workers = max(1, workers or torch.get_num_threads())
        self.micro_batch = micro_batch
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # the parallelism is across runs (a session serves concurrent runs)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_dtype = torch.uint8 if self.session.get_inputs()[0].type == "tensor(uint8)" else torch.float32
        self.path = path
        # The workers' own PyTorch work (cropping) runs on one thread each: such small operations cost
        # 2.7x the CPU time on PyTorch's threads, which would also compete with the other workers' runs.
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="onnx", initializer=openmp_threads, initargs=(1,))
            if self.workers > 1 else None
        )

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().to(self.input_dtype).numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) <= self.micro_batch:
            return self._run(x)
        return torch.cat(self._run_all(list(x)))

    def _run_all(
        self, inputs: list[torch.Tensor], on_done: Callable[[int], None] | None = None, every: int = 64,
    ) -> list[torch.Tensor]:
        """Outputs for ``inputs``, in order: ``micro_batch`` of them per run, ``workers`` runs at a time;
        ``on_done`` hears how many inputs are done after about every ``every`` of them and at the end."""
        parts = [inputs[start : start + self.micro_batch] for start in range(0, len(inputs), self.micro_batch)]
        runs_done = (lambda k: on_done(min(k * self.micro_batch, len(inputs)))) if on_done is not None else None
        return take_turns(  # each part stacked by the worker that runs it; the caller wakes for progress only
            self._pool, self.workers, len(parts), lambda i: self._run(torch.stack(parts[i])),
            on_progress=runs_done, every=max(1, every // self.micro_batch) if on_done else None,
        )

    def stream(
        self, read: Callable[[int], torch.Tensor], n: int, on_progress: Callable[[int], None] | None = None, every: int = 64,
    ) -> Iterator[torch.Tensor]:
        """The outputs for inputs ``read(0)`` … ``read(n - 1)``, in order, a chunk at a time;
        ``on_progress`` hears how many inputs have been run after about every ``every`` of them, as
        they are done (a pass timed by its progress, :class:`~transfer_core.features.speed.PassClock`,
        needs the moments), not when their chunk is.

        ``read`` runs in the workers, so it must draw no random numbers (the order of draws would
        depend on thread timing) and must not call this forward itself.

        The workers read (crop, say) a chunk of inputs side by side, then run it. Over 210 flower
        photos and Lite0 on two cores that took 0.54 s, against 0.57 s with each worker reading its
        own two images just before running them (the reads push the network out of the core's
        cache) and 0.58 s reading in the caller's thread with PyTorch's own threads.
        """
        for start in range(0, n, STREAM_CHUNK):
            positions = range(start, min(start + STREAM_CHUNK, n))
            inputs = take_turns(self._pool, self.workers, len(positions), lambda k: read(positions[k]))
            yield from self._run_all(inputs, (lambda done, before=start: on_progress(before + done)) if on_progress else None, every)


def _cache_dir() -> Path:
    from ..workspace import home

    return home() / "cache" / "onnx"


def _export(module: nn.Module, forward: Callable, example: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notices are not the user's concern
            torch.onnx.export(
                _AsModule(module, forward).eval(), (example,), str(tmp), dynamo=False, opset_version=17,
                input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check(module: nn.Module, forward: Callable, fast: OnnxForward, example: torch.Tensor) -> str | None:
    """None when ONNX Runtime agrees with PyTorch on ``example``, else the reason it does not."""
    was_training = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
            expected = forward(example).float()
    finally:
        for m, training in was_training.items():
            m.training = training
    got = fast(example)
    if got.shape != expected.shape:
        return f"ONNX output shape {tuple(got.shape)} differs from PyTorch's {tuple(expected.shape)}"
    scale = max(1.0, float(expected.abs().max()))
    difference = float((got - expected).abs().max())
    if difference > AGREEMENT_TOLERANCE * scale:
        return f"ONNX Runtime differs from PyTorch by {difference:.1e}"
    return None


def onnx_forward(
    module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], key: str, input_shape: tuple[int, ...],
    normalise: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> OnnxForward | str:
    """ONNX Runtime for ``forward`` (a function of ``module``'s frozen weights), or why not.

    Args:
        module: the network whose weights ``forward`` uses (exported and checked in eval mode).
        forward: batch → output.
        key: names the network and its weights (e.g. backbone, weights id, depth); the input
            shape is added here.
        input_shape: one input's shape, e.g. ``(3, 224, 224)``.
        normalise: uint8 images → ``forward``'s float input (a
            :class:`~transfer_core.data.augment.Normalise`); when given, the graph takes uint8
            images and normalises them itself. Its ``repr`` must name its numbers (it joins the key).

    Returns:
        A ready :class:`OnnxForward`, or a one-line reason why eager PyTorch must be used.
    """
    if normalise is not None:
        key, forward = f"{key}|uint8 {normalise!r}", _after(normalise, forward)
    full_key = hashlib.sha256(f"{key}|{tuple(input_shape)}|{torch.__version__}".encode()).hexdigest()[:24]
    with _LOCK:
        found = _SESSIONS.get(full_key)
        if found is not None:
            _SESSIONS.move_to_end(full_key)
            return found
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return _remember(full_key, "onnxruntime is not installed")
        generator = torch.Generator().manual_seed(0)
        if normalise is None:
            example = torch.randn(2, *input_shape, generator=generator)
        else:
            example = torch.randint(0, 256, (2, *input_shape), generator=generator, dtype=torch.uint8)
        path = _cache_dir() / f"{full_key}.onnx"
        try:
            problem = "not exported yet"
            if path.exists():  # exported by an earlier process: checked again before it is trusted
                fast = OnnxForward(path)
                problem = _check(module, forward, fast, example)
            if problem is not None:
                _export(module, forward, example, path)
                fast = OnnxForward(path)
                problem = _check(module, forward, fast, example)
        except Exception as exc:  # exporters raise anything; eager PyTorch still works
            path.unlink(missing_ok=True)
            return _remember(full_key, f"ONNX export not possible ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        if problem is not None:
            path.unlink(missing_ok=True)
            return _remember(full_key, problem)
        return _remember(full_key, fast)


def _after(normalise: Callable, forward: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda images: forward(normalise(images))


def _remember(key: str, value: OnnxForward | str) -> OnnxForward | str:
    _SESSIONS[key] = value
    while len(_SESSIONS) > MAX_SESSIONS:
        _SESSIONS.popitem(last=False)
    return value
