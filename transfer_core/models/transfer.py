"""The transfer model (pretrained backbone + new head), freezing strategies and parameter groups.

Parameter groups are the unit of both freezing and learning rate: a strategy only says how
many backbone groups, counted from the output end, train at a given epoch. BatchNorm layers
whose parameters are all frozen are kept in eval mode, so their ImageNet statistics are not
overwritten by a few small batches of the new data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .backbone import Backbone
from .registry import get_backbone
from ..config import Strategy, TrainConfig

__all__ = [
    "HeadDropout",
    "ParameterCounts",
    "StrategyParameters",
    "TransferModel",
    "count_parameters",
    "freeze_bn_of_frozen_layers",
    "frozen_batch_norms",
    "parameter_counts",
    "set_trainable_groups",
    "trainable_groups_at",
]


class HeadDropout(nn.Dropout):
    """``nn.Dropout`` that draws its CPU training mask by comparing uniform numbers with ``p``.

    Why: on a CPU PyTorch draws dropout's mask element by element (``bernoulli_``); a vectorised
    ``rand`` and a comparison give the same keep probability in half the time. A frozen run's step
    on cached features is little more than dropout and one linear layer: forward and backward over
    32 Lite0 features took 260 µs with ``nn.Dropout`` and 150 µs this way on a 2-core CPU. Other
    devices, evaluation, ``inplace`` and ``p`` of 0 or 1 go through ``nn.Dropout`` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or self.inplace or not 0.0 < self.p < 1.0:
            return super().forward(x)
        keep = torch.rand(x.shape, device=x.device) >= self.p  # drawn in float32 whatever x's dtype (bf16 has 8 bits)
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))  # one scaled mask: forward and backward one product each


class TransferModel(nn.Module):
    """Backbone features → dropout → linear classifier for the new classes."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(HeadDropout(dropout), nn.Linear(backbone.num_features, num_classes))

    def forward(self, x: torch.Tensor, start_stage: int = 0) -> torch.Tensor:
        return self.head(self.backbone(x, start=start_stage))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


def trainable_groups_at(config: TrainConfig, epoch: int, n_groups: int) -> int:
    """How many backbone groups (from the output end) train in ``epoch`` (0-based)."""
    if config.strategy is Strategy.FROZEN:
        return 0
    if config.strategy is Strategy.PARTIAL:
        return min(config.trainable_blocks, n_groups)
    if config.strategy is Strategy.FULL:
        return n_groups
    # Gradual: head only for the first K epochs, then one more group every K epochs.
    return min(epoch // config.unfreeze_every, n_groups)


def frozen_batch_norms(model: nn.Module) -> list[nn.Module]:
    """Every BatchNorm whose own parameters are all frozen (their statistics must not move either)."""
    norms = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            own = list(module.parameters(recurse=False))
            if own and not any(p.requires_grad for p in own):
                norms.append(module)
    return norms


def freeze_bn_of_frozen_layers(model: nn.Module) -> None:
    """Put every BatchNorm whose own parameters are all frozen into eval mode."""
    for module in frozen_batch_norms(model):
        module.eval()


def set_trainable_groups(model: TransferModel, n_trainable: int) -> None:
    """Freeze all backbone groups except the last ``n_trainable``; the head always trains."""
    groups = model.backbone.group_parameters()
    first_trainable = len(groups) - n_trainable
    for index, group in enumerate(groups):
        for param in group:
            param.requires_grad_(index >= first_trainable)
    for param in model.head.parameters():
        param.requires_grad_(True)


def first_trainable_stage(model: TransferModel, n_trainable: int) -> int:
    """Index of the first stage that has a trainable parameter; stages before it are a fixed prefix.

    For backbones whose groups do not align with stages, nothing can be skipped unless
    everything is frozen.
    """
    stages = model.backbone.stages
    if n_trainable == 0:
        return len(stages)
    if not model.backbone.stage_aligned:
        return 0
    return len(stages) - n_trainable


@dataclass(frozen=True)
class ParameterCounts:
    trainable: int
    frozen: int

    @property
    def total(self) -> int:
        return self.trainable + self.frozen


def count_parameters(model: TransferModel) -> ParameterCounts:
    """Trainable vs frozen parameters as the model is set now."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return ParameterCounts(trainable, frozen)


@dataclass(frozen=True)
class StrategyParameters:
    """What a strategy trains: the backbone's block count and the parameter counts at the first
    and the last epoch (they differ only when gradual unfreezing opens blocks on the way)."""

    groups: int
    first_epoch: ParameterCounts
    last_epoch: ParameterCounts


def parameter_counts(config: TrainConfig, n_classes: int) -> StrategyParameters:
    """Trainable and frozen parameters of ``config``'s backbone, strategy and a head for ``n_classes``.

    Builds the model without pretrained weights (the counts do not depend on them), so it works
    offline and downloads nothing.

    Args:
        config: the backbone and the strategy fields (``strategy``, ``trainable_blocks``,
            ``unfreeze_every``, ``epochs``) are read; the rest is ignored.
        n_classes: classes of the new head.

    Returns:
        The counts at the first and the last epoch, and the number of backbone blocks.
    """
    model = TransferModel(get_backbone(config.backbone).build(pretrained=False), num_classes=n_classes)
    groups = len(model.backbone.groups)
    counts = []
    for epoch in (0, config.epochs - 1):
        set_trainable_groups(model, trainable_groups_at(config, epoch, groups))
        counts.append(count_parameters(model))
    return StrategyParameters(groups, *counts)
