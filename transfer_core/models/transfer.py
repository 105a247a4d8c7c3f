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
from ..config import OptimizerName, Strategy, TrainConfig

__all__ = [
    "ParameterCounts",
    "TransferModel",
    "count_parameters",
    "freeze_bn_of_frozen_layers",
    "make_optimizer",
    "optimizer_param_groups",
    "set_trainable_groups",
    "trainable_groups_at",
]


class TransferModel(nn.Module):
    """Backbone features → dropout → linear classifier for the new classes."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.num_features, num_classes))

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


def freeze_bn_of_frozen_layers(model: nn.Module) -> None:
    """Put every BatchNorm whose own parameters are all frozen into eval mode."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            own = list(module.parameters(recurse=False))
            if own and not any(p.requires_grad for p in own):
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


def optimizer_param_groups(
    model: TransferModel, lr: float, backbone_lr_factor: float, weight_decay: float
) -> list[dict]:
    """Head and backbone at their own learning rates; no weight decay on biases and norms.

    All parameters are included even when frozen (their grads stay None, so optimizers skip
    them); gradual unfreezing then needs no new optimizer.
    """
    out = []
    for part, part_lr in ((model.backbone, lr * backbone_lr_factor), (model.head, lr)):
        decay, no_decay = [], []
        for param in part.parameters():
            (no_decay if param.ndim <= 1 else decay).append(param)
        name = "head" if part is model.head else "backbone"
        out.append({"name": f"{name}", "params": decay, "lr": part_lr, "weight_decay": weight_decay})
        out.append({"name": f"{name}_no_decay", "params": no_decay, "lr": part_lr, "weight_decay": 0.0})
    return [group for group in out if group["params"]]


def make_optimizer(model: TransferModel, config: TrainConfig) -> torch.optim.Optimizer:
    """The config's optimizer over :func:`optimizer_param_groups` (L2-SP replaces backbone weight decay)."""
    groups = optimizer_param_groups(model, config.head_lr, config.backbone_lr_factor, config.weight_decay)
    if config.l2sp > 0:  # L2-SP pulls toward the pretrained weights instead of toward zero
        for group in groups:
            if group["name"].startswith("backbone"):
                group["weight_decay"] = 0.0
    if config.optimizer is OptimizerName.SGD:
        return torch.optim.SGD(groups, lr=config.head_lr, momentum=config.momentum, nesterov=config.momentum > 0)
    if config.optimizer is OptimizerName.ADAM:
        return torch.optim.Adam(groups, lr=config.head_lr)
    return torch.optim.AdamW(groups, lr=config.head_lr)


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
