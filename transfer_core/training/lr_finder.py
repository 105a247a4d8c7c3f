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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..data.augment import eval_transform, train_transform
from ..models.registry import get_backbone
from ..config import TrainConfig
from ..data.splits import load_run_split
from ..errors import WarmstartError
from ..features.cache import encode_cached, run_feature_key
from ..data.image_cache import LabeledImages, cache_side_for, shared_image_cache
from ..models.transfer import TransferModel, freeze_bn_of_frozen_layers, make_optimizer, set_trainable_groups, trainable_groups_at

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


def find_lr(
    config: TrainConfig, start_lr: float = 1e-6, end_lr: float = 1.0, steps: int = 100, image_steps: int = 40
) -> LRFinderResult:
    """Run the range test for ``config`` (its data, backbone, strategy, optimizer, batch size).

    ``steps`` applies on cached features, ``image_steps`` when images go through the network.
    The rate found is for the head; the backbone keeps its ``backbone_lr_factor``.
    """
    if not 0 < start_lr < end_lr:
        raise WarmstartError("The learning-rate range must go from a small positive rate to a larger one.")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    train, _ = load_run_split(config)
    classes = train.classes
    if len(classes) < 2:
        raise WarmstartError("The learning-rate finder needs at least two classes.")
    spec = get_backbone(config.backbone)
    size = config.image_size or spec.preprocessing.input_size
    pre = dataclasses.replace(spec.preprocessing, input_size=size)
    model = TransferModel(spec.build(pretrained=config.pretrained), len(classes), config.dropout)
    n_trainable = trainable_groups_at(config, 0, len(model.backbone.groups))
    set_trainable_groups(model, n_trainable)
    cache = shared_image_cache(cache_side_for(size, pre.crop_pct))
    class_to_idx = {c: i for i, c in enumerate(classes)}
    on_features = n_trainable == 0
    if on_features:
        images = LabeledImages(train.records, class_to_idx, cache, eval_transform(pre, size))
        images = images.without(images.warm())
        key = run_feature_key(config, spec, pre, "features", [r.path for r in images.records])
        features = encode_cached(model.backbone, images, key, torch.device("cpu"))
        dataset, forward, total = TensorDataset(features, torch.tensor(images.targets)), model.head, steps
    else:
        images = LabeledImages(train.records, class_to_idx, cache, train_transform(pre, config.augment, size))
        dataset, forward, total = images.without(images.warm()), model, image_steps
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=torch.Generator().manual_seed(config.seed))
    optimizer = make_optimizer(model, config.replace(lr=start_lr))
    base = [group["lr"] / start_lr for group in optimizer.param_groups]  # keeps the backbone/head ratio
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    model.train()
    freeze_bn_of_frozen_layers(model)
    lrs, losses, average, best = [], [], 0.0, math.inf
    batches = iter(loader)
    for step in range(total):
        lr = start_lr * (end_lr / start_lr) ** (step / max(total - 1, 1))
        for group, ratio in zip(optimizer.param_groups, base):
            group["lr"] = lr * ratio
        try:
            xb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            xb, yb = next(batches)
        loss = criterion(forward(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        average = 0.9 * average + 0.1 * loss.item()
        smoothed = average / (1 - 0.9 ** (step + 1))
        if not math.isfinite(smoothed) or (step > 5 and smoothed > 4 * best):
            break
        best = min(best, smoothed)
        lrs.append(lr)
        losses.append(smoothed)
    if len(lrs) < 5:
        raise WarmstartError("The loss diverged at once; lower the start of the range or check the data.")
    return LRFinderResult(lrs, losses, _suggest(np.array(lrs), np.array(losses)), time.perf_counter() - started, on_features)
