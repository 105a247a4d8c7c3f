"""Optimisers, schedules, samplers and loss terms built from a :class:`TrainConfig`.

Parameter groups are the unit of learning rate (fastai's habit): the head trains at the
configured rate and the backbone at ``backbone_lr_factor`` of it, and biases and norm
weights get no weight decay. Every parameter is in the optimiser even while frozen (its
gradient stays None, so it is skipped), so gradual unfreezing never needs a new optimiser.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import RandomSampler, Sampler, WeightedRandomSampler

from ..config import Balance, OptimizerName, Schedule, TrainConfig
from ..models.transfer import TransferModel

__all__ = ["class_weights", "l2sp_penalty", "make_optimizer", "make_sampler", "make_scheduler", "optimizer_param_groups"]


def optimizer_param_groups(model: TransferModel, lr: float, backbone_lr_factor: float, weight_decay: float) -> list[dict]:
    """Head and backbone at their own learning rates; no weight decay on biases and norms."""
    out = []
    for part, part_lr in ((model.backbone, lr * backbone_lr_factor), (model.head, lr)):
        decay, no_decay = [], []
        for param in part.parameters():
            (no_decay if param.ndim <= 1 else decay).append(param)
        name = "head" if part is model.head else "backbone"
        out.append({"name": name, "params": decay, "lr": part_lr, "weight_decay": weight_decay})
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


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """The config's learning-rate schedule, stepped once per optimiser step."""
    total = config.epochs * steps_per_epoch
    if config.schedule is Schedule.ONE_CYCLE:
        # PyTorch's warm-up ends on step pct_start·total − 1; on step 0 exactly (4 steps in all) it divides by zero.
        warmup = 0.25 if total * 0.25 != 1 else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total, pct_start=warmup
        )
    if config.schedule is Schedule.COSINE:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule is Schedule.STEP:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_epochs * steps_per_epoch, gamma=config.step_gamma)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def make_sampler(config: TrainConfig, targets: list[int], n_classes: int, generator: torch.Generator) -> Sampler:
    """Shuffling, or class-balanced sampling with replacement, drawn from the run's ``generator``."""
    if config.balance is Balance.SAMPLER:
        counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
        weights = torch.tensor([1.0 / counts[t] for t in targets], dtype=torch.double)
        return WeightedRandomSampler(weights, num_samples=len(targets), replacement=True, generator=generator)
    return RandomSampler(range(len(targets)), generator=generator)


def class_weights(config: TrainConfig, targets: list[int], n_classes: int, device: torch.device) -> torch.Tensor | None:
    """Inverse-frequency loss weights when the config balances by weighting, else None."""
    if config.balance is not Balance.CLASS_WEIGHTS:
        return None
    counts = np.bincount(targets, minlength=n_classes).astype(np.float32)
    weights = counts.sum() / (n_classes * np.maximum(counts, 1))
    return torch.tensor(weights, device=device)


def l2sp_penalty(model: TransferModel, reference: dict[str, torch.Tensor], strength: float) -> torch.Tensor:
    """λ/2 · ‖w − w_pretrained‖² over the backbone weights that train now."""
    terms = [
        (param - reference[name]).pow(2).sum()
        for name, param in model.backbone.named_parameters()
        if param.requires_grad
    ]
    if not terms:
        return torch.zeros((), device=next(model.parameters()).device)
    return 0.5 * strength * torch.stack(terms).sum()
