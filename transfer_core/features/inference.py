"""The one inference path: batching, device, autocast and memory layout in a single place.

Validation, feature extraction, prediction, export checks and the embedding map all run a
network forward without gradients. Doing that in one function means they all see the same
numbers: on a GPU every caller gets the same bf16 autocast and channels-last layout, so
``evaluate`` can never disagree with the ``report.json`` the training loop wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..data.augment import EvalTransform, Normalise
from .cpu_runtime import OnnxForward, cpu_runtime_enabled, onnx_forward

__all__ = ["autocast_for", "cpu_bf16_training", "eval_mode", "run_inference", "to_device", "weights_layout"]

Forward = Callable[[torch.Tensor], torch.Tensor]


def autocast_for(device: torch.device, enabled: bool | None = None):
    """bf16 autocast: by default on CUDA (about twice the throughput, same accuracy), a no-op elsewhere.
    ``enabled`` overrides the default (the trainer turns it on for CPU training steps, see
    :func:`cpu_bf16_training`)."""
    on = device.type == "cuda" if enabled is None else enabled
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


def cpu_bf16_training() -> bool:
    """Whether training steps on this CPU run under bf16 autocast: only where the CPU computes bf16
    natively (AVX512-BF16 or AMX, as oneDNN reports it), where bench/run.py measured about twice the
    fine-tuning throughput of fp32 channels-last at unchanged accuracy. Inference on a CPU stays fp32,
    so predictions and export checks keep full precision; ``WARMSTART_CPU_RUNTIME=torch`` turns it off."""
    if not cpu_runtime_enabled() or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool | None = None) -> torch.Tensor:
    """Move a batch to ``device``; image batches go channels-last for a model kept channels-last
    (by default on CUDA, whose convolutions prefer it; the trainer asks for it on CPUs too)."""
    x = x.to(device, non_blocking=device.type == "cuda")
    if (device.type == "cuda" if channels_last is None else channels_last) and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def weights_layout(channels_last: bool, device: torch.device, *, frozen: bool) -> torch.memory_format:
    """The memory layout for a model's weights when its batches are channels-last or not.

    A frozen network on a CPU only ever runs forward: through ONNX Runtime, which takes its weights
    as they are, or, where that is not possible, eager PyTorch, where channels-last inputs alone make
    it as fast (Lite0, batch 64: 0.81 s with its weights as they are, 0.88 s converted, measured
    once by hand). So its weights are not copied into the other layout, nor back when a checkpoint
    is written.
    """
    if not channels_last or (device.type == "cpu" and frozen):
        return torch.contiguous_format
    return torch.channels_last


@contextmanager
def eval_mode(module: nn.Module | None) -> Iterator[None]:
    """``module`` in eval mode for the block, then back to the mode it had (and its frozen BatchNorms with it).

    Only the modules that were training are switched, and switched back. Inside another ``eval_mode``
    of the same module (a frozen run's two feature sets share one) nothing is training, so nothing is
    switched: switching a backbone's few hundred modules costs about 0.4 ms each way for Lite0."""
    if module is None:
        yield
        return
    training = [m for m in module.modules() if m.training]
    if training:
        module.eval()
    try:
        yield
    finally:
        for m in training:
            m.training = True


def _reader(inputs: Dataset | torch.Tensor) -> tuple[Callable[[int], torch.Tensor], Normalise | None]:
    """One input at a time from a tensor or from a dataset of ``(input, label, ...)`` items, and
    what still turns it into a model input (None: nothing, it is one already).

    A dataset of images under the evaluation transform is read as uint8 crops, normalised later
    a whole batch at a time (see :class:`~transfer_core.data.augment.EvalTransform`): the same
    numbers, in one pass per batch instead of one per image, after the copy to a GPU (a quarter
    of the bytes) or inside ONNX Runtime's graph on a CPU.
    """
    if isinstance(inputs, torch.Tensor):
        return inputs.__getitem__, None
    transform = getattr(inputs, "transform", None)
    normalise = None
    if isinstance(transform, EvalTransform) and hasattr(inputs, "with_transform"):
        inputs, normalise = inputs.with_transform(transform.view), transform.normalise

    def read(i: int) -> torch.Tensor:
        item = inputs[i]
        return item[0] if isinstance(item, (list, tuple)) else item

    return read, normalise


def _batches(inputs: Dataset | torch.Tensor, read: Callable[[int], torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive batches of ``batch_size`` inputs (slices of a tensor, stacked items of a dataset)."""
    for start in range(0, len(inputs), batch_size):
        stop = min(start + batch_size, len(inputs))
        yield inputs[start:stop] if isinstance(inputs, torch.Tensor) else torch.stack([read(i) for i in range(start, stop)])


@torch.no_grad()
def run_inference(
    forward: Forward,
    inputs: Dataset | torch.Tensor,
    device: torch.device | str = "cpu",
    *,
    module: nn.Module | None = None,
    batch_size: int = 64,
    max_bytes: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    frozen_key: str | None = None,
    on_runtime: Callable[[str], None] | None = None,
    channels_last: bool | None = None,
) -> torch.Tensor | None:
    """``forward`` over every input, in order, as one float32 CPU tensor.

    On a CPU, a network whose weights do not change (``frozen_key`` names it and its weights)
    runs through ONNX Runtime, exported once and checked against PyTorch
    (:mod:`transfer_core.features.cpu_runtime`); eager PyTorch is the fallback.

    Args:
        forward: what to run on a batch (a model, its head, ``backbone.forward_prefix``...).
        inputs: a tensor of inputs, or a dataset (``__len__`` and ``__getitem__``) whose items are
            tensors or start with one.
        device: where to run.
        module: the network ``forward`` belongs to; it runs in eval mode and gets its mode back.
        batch_size: inputs per forward pass in PyTorch (ONNX Runtime runs a few at a time on each core).
        max_bytes: give up and return None once the outputs would exceed this many bytes.
        on_batch: called with the number of inputs done so far.
        frozen_key: names ``module``'s frozen weights; allows the ONNX Runtime path on a CPU.
        on_runtime: told which runtime ran, in a few words ("ONNX Runtime", or "PyTorch (reason)").
        channels_last: image batches in channels-last layout (default: on CUDA); match the model's layout.

    Returns:
        The concatenated outputs, or None when ``max_bytes`` was exceeded.
    """
    device = torch.device(device)
    outputs, used, done, reported = [], 0, 0, 0
    if isinstance(inputs, TensorDataset):  # cached features or activations: sliced, not read row by row
        inputs = inputs.tensors[0]
    if len(inputs) == 0:
        return torch.empty(0)
    with eval_mode(module):
        read, normalise = _reader(inputs)
        first = read(0)  # read once, to learn the input's shape
        read_once = lambda i: first if i == 0 else read(i)  # noqa: E731
        run = _fastest(forward, module, device, frozen_key, tuple(first.shape), on_runtime, normalise, channels_last)
        # ONNX Runtime's workers read inputs themselves when reading draws no random numbers (a
        # tensor, evaluation crops); augmented views are drawn here, in order, so a seed repeats them.
        streamed = isinstance(run, OnnxForward) and (isinstance(inputs, torch.Tensor) or normalise is not None)
        if streamed:  # it reports its progress as its workers go: the outputs come a whole chunk at a time
            results = run.stream(read_once, len(inputs), on_progress=on_batch, every=batch_size)
        else:
            results = (_on(device, run, x) for x in _batches(inputs, read_once, batch_size))
        try:
            for out in results:
                out = out.float().cpu()
                used += out.numel() * out.element_size()
                if max_bytes is not None and used > max_bytes:
                    return None
                outputs.append(out)
                done += len(out)
                if on_batch is not None and not streamed and (done - reported >= batch_size or done == len(inputs)):
                    on_batch(done)
                    reported = done
        finally:
            results.close()  # stops reading and running whatever is left (too much output, or an error)
    return torch.cat(outputs)


def _on(device: torch.device, run: Forward, x: torch.Tensor) -> torch.Tensor:
    """``run(x)`` under the device's autocast (bf16 on CUDA)."""
    with autocast_for(device):
        return run(x)


def _fastest(
    forward: Forward, module: nn.Module | None, device: torch.device, frozen_key: str | None, shape: tuple, on_runtime,
    normalise: Normalise | None, channels_last: bool | None,
) -> Forward:
    """What runs a batch of inputs as :func:`_reader` reads them: ONNX Runtime for a frozen network on a
    CPU when it exports and agrees (normalising inside its graph), else ``forward`` on ``device``."""

    def eager(x: torch.Tensor) -> torch.Tensor:
        x = to_device(x, device, channels_last)
        return forward(normalise(x) if normalise is not None else x)

    def say(runtime: str) -> None:
        if on_runtime is not None:
            on_runtime(runtime)

    if device.type != "cpu" or frozen_key is None or module is None or not cpu_runtime_enabled():
        say("PyTorch")
        return eager
    fast = onnx_forward(module, forward, frozen_key, shape, normalise)
    if isinstance(fast, str):
        say(f"PyTorch ({fast})")
        return eager
    say("ONNX Runtime")
    return fast
