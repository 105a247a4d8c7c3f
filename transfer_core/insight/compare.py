"""Comparing runs: which settings differ, and the from-scratch baseline of a transfer run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import Strategy, TrainConfig

__all__ = ["config_differences", "flatten_config", "scratch_baseline"]


def flatten_config(config: TrainConfig) -> dict[str, Any]:
    """One level of keys (augmentation fields as ``augment.<name>``), for tables."""
    values = config.to_dict()
    augment = values.pop("augment")
    values.update({f"augment.{k}": v for k, v in augment.items()})
    return values


def config_differences(configs: Sequence[TrainConfig]) -> list[str]:
    """Settings whose value is not the same in every config (in config field order)."""
    flat = [flatten_config(c) for c in configs]
    if len(flat) < 2:
        return []
    return [key for key in flat[0] if any(f.get(key) != flat[0].get(key) for f in flat[1:])]


def scratch_baseline(config: TrainConfig) -> TrainConfig:
    """The same architecture, data, epochs and seed, from random weights.

    Random features are worthless frozen, so every layer trains, at one learning rate
    (nothing pretrained to protect), without the head warm-up or L2-SP (which pull toward
    the pretrained start).
    """
    return config.replace(
        pretrained=False, strategy=Strategy.FULL, backbone_lr_factor=1.0, head_warmup_epochs=0, l2sp=0.0, lr=None
    )
