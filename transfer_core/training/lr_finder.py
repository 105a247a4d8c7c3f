"""Learning-rate range test: train briefly while the learning rate grows exponentially.

The loss first barely moves (rate too small), then falls fastest, then blows up (too large).
A good rate sits on the steepest part of the fall, before the minimum. With a frozen
backbone the test runs on cached features and takes a second; otherwise it runs a few
dozen real batches through the trainable part of the network.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..data.augment import eval_transform, train_transform
from ..models.registry import get_backbone
from ..config import TrainConfig
from ..data.splits import load_run_split
from ..errors import WarmstartError
from ..features.cache import encode_cached, run_feature_key, run_network_key
from ..data.decode import cache_side_for
from ..data.image_cache import LabeledImages, shared_image_cache
from ..models.transfer import TransferModel, set_trainable_groups, trainable_groups_at
from .batches import batch_loader
from .callbacks import BackboneFreezing, Callback
from .loop import Loop, StepOutput, head_only_threads
from .optim import make_optimizer
from ..randomness import RunRandomness, seeded_scope
from ..reporting import OnProgress, phase
from .trainer import resolve_device

__all__ = ["LRFinderResult", "find_lr"]


@dataclass(frozen=True)
class LRFinderResult:
    lrs: list[float]
    losses: list[float]  # smoothed
    suggestion: float
    seconds: float
    on_features: bool  # True when the test ran on cached frozen features


def _suggest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The rate of steepest descent before the minimum; the minimum's rate / 10 as a fallback."""
    lowest = int(losses.argmin())
    skip = max(1, len(lrs) // 10)  # the first points are noise around the starting loss
    if lowest - skip >= 3:
        slope = np.gradient(losses[: lowest + 1], np.log10(lrs[: lowest + 1]))
        return float(lrs[skip + int(slope[skip:].argmin())])
    return float(lrs[lowest] / 10)


class _RangeTest(Callback):
    """Raises the learning rate exponentially each step and records the smoothed loss until it blows up."""

    name = "lr_range_test"

    def __init__(
        self, start_lr: float, end_lr: float, total: int, ratios: list[float], on_step: Callable[[int], None] = lambda n: None
    ) -> None:
        self.start_lr, self.end_lr, self.total, self.ratios, self.on_step = start_lr, end_lr, total, ratios, on_step
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self._count, self._average, self._best, self._lr = 0, 0.0, math.inf, start_lr

    def on_train_batch_start(self, loop: Loop, step: int) -> None:
        self._lr = self.start_lr * (self.end_lr / self.start_lr) ** (self._count / max(self.total - 1, 1))
        for group, ratio in zip(loop.optimizer.param_groups, self.ratios):
            group["lr"] = self._lr * ratio

    def on_train_batch_end(self, loop: Loop, output: StepOutput) -> None:
        self._count += 1
        self.on_step(self._count)
        self._average = 0.9 * self._average + 0.1 * output.loss
        smoothed = self._average / (1 - 0.9**self._count)
        if not math.isfinite(smoothed) or (self._count > 6 and smoothed > 4 * self._best):
            loop.should_stop = True
            return
        self._best = min(self._best, smoothed)
        self.lrs.append(self._lr)
        self.losses.append(smoothed)
        if self._count >= self.total:
            loop.should_stop = True


def find_lr(
    config: TrainConfig,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 100,
    image_steps: int = 40,
    on_progress: OnProgress | None = None,
) -> LRFinderResult:
    """Run the range test for ``config`` (its data, backbone, strategy, optimizer, batch size).

    ``steps`` applies on cached features, ``image_steps`` when images go through the network.
    The rate found is for the head; the backbone keeps its ``backbone_lr_factor``.

    Args:
        on_progress: ``(done, total, what)`` (see :mod:`transfer_core.reporting`): training images read,
            then (frozen backbone) images encoded, then range-test steps taken; a test whose loss blows
            up stops before ``total`` steps.
    """
    if not 0 < start_lr < end_lr:
        raise WarmstartError("The learning-rate range must go from a small positive rate to a larger one.")
    started = time.perf_counter()
    train, _ = load_run_split(config)
    classes = train.classes
    if len(classes) < 2:
        raise WarmstartError("The learning-rate finder needs at least two classes.")
    device = resolve_device(config.device)
    spec = get_backbone(config.backbone)
    size = config.image_size or spec.preprocessing.input_size
    pre = dataclasses.replace(spec.preprocessing, input_size=size)
    with seeded_scope(config.seed):  # the same starting weights as the run itself
        model = TransferModel(spec.build(pretrained=config.pretrained), len(classes), config.dropout).to(device)
    n_trainable = trainable_groups_at(config, 0, len(model.backbone.groups))
    set_trainable_groups(model, n_trainable)
    cache = shared_image_cache(cache_side_for(size, pre.crop_pct))
    class_to_idx = {c: i for i, c in enumerate(classes)}
    on_features = n_trainable == 0
    transform = eval_transform(pre, size) if on_features else train_transform(pre, config.augment, size)
    images = LabeledImages(train.records, class_to_idx, cache, transform)
    images = images.without(images.warm(on_read=phase(on_progress, len(images), "reading images")))
    if on_features:
        key = run_feature_key(config, spec, pre, "features", [r.path for r in images.records])
        encoded = phase(on_progress, len(images), f"encoding images with {config.backbone}")
        features = encode_cached(model.backbone, images, key, device, on_batch=encoded, weights=run_network_key(config, spec))
        dataset, forward, total = TensorDataset(features, torch.tensor(images.targets)), model.head, steps
    else:
        dataset, forward, total = images, model, image_steps
    randomness = RunRandomness(config.seed, device)
    loader = batch_loader(dataset, config.batch_size, generator=randomness.sampler)
    optimizer = make_optimizer(model, config.replace(lr=start_lr))
    ratios = [group["lr"] / start_lr for group in optimizer.param_groups]
    test = _RangeTest(start_lr, end_lr, total, ratios, phase(on_progress, total, "range-test steps"))
    loop = Loop(
        module=model, forward=forward, optimizer=optimizer, criterion=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        train_data=loader, device=device, randomness=randomness,
        callbacks=[BackboneFreezing(model, lambda epoch: n_trainable), test],
        threads=head_only_threads(device) if on_features else None,
    )
    loop.fit(epochs=math.ceil(total / max(len(loader), 1)))
    if len(test.lrs) < 5:
        raise WarmstartError("The loss diverged at once; lower the start of the range or check the data.")
    lrs, losses = np.array(test.lrs), np.array(test.losses)
    return LRFinderResult(test.lrs, test.losses, _suggest(lrs, losses), time.perf_counter() - started, on_features)
