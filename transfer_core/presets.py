"""Named recipes (Quick / Balanced / Best accuracy / Auto) that set every training choice at once.

Auto is Quick's recipe on the backbone that a shoot-out on the training images picks when the run
starts (see :mod:`transfer_core.insight.backbone_choice`); the other presets keep the chosen backbone.
"""

from __future__ import annotations

from .config import AUTO_BACKBONE, AugmentConfig, TrainConfig
from .errors import WarmstartError

__all__ = ["PRESETS", "PRESET_DESCRIPTIONS", "apply_preset"]

_BASE = dict(
    optimizer="adamw",
    schedule="onecycle",
    weight_decay=1e-2,
    label_smoothing=0.1,
    l2sp=0.0,
    grad_clip=0.0,
    early_stopping_patience=0,
    balance="none",
    batch_size=32,
    image_size=None,
    lr=None,
    backbone_lr_factor=0.1,
    head_warmup_epochs=5,
    unfreeze_every=1,
    ema_decay=0.0,  # every preset sets it, so choosing Quick (frozen) after turning averaging on is never refused
)

PRESETS: dict[str, dict] = {
    "Quick": {**_BASE, "strategy": "frozen", "epochs": 8, "dropout": 0.2, "augment": AugmentConfig.from_preset("none")},
    "Balanced": {
        **_BASE,
        "strategy": "partial",
        "trainable_blocks": 2,
        "epochs": 10,
        "dropout": 0.2,
        "augment": AugmentConfig.from_preset("light"),
    },
    "Best accuracy": {
        **_BASE,
        "strategy": "full",
        "epochs": 15,
        "dropout": 0.3,
        "l2sp": 1e-3,
        "grad_clip": 1.0,
        "early_stopping_patience": 4,
        "augment": AugmentConfig.from_preset("standard"),
    },
}
# Frozen, like Quick: the shoot-out's cached training features then make the run's first pass free.
PRESETS["Auto"] = {**PRESETS["Quick"], "backbone": AUTO_BACKBONE}

PRESET_DESCRIPTIONS = {
    "Quick": "Frozen backbone, cached features: seconds on a laptop CPU; a strong baseline.",
    "Balanced": "Fine-tunes the last two blocks with light augmentation: usually a little better, minutes on a CPU.",
    "Best accuracy": "Fine-tunes everything with standard augmentation, L2-SP and early stopping: slow on a CPU, best on a GPU.",
    "Auto": "Quick's recipe on the backbone a shoot-out on your training images picks when training starts; the log says why.",
}


def apply_preset(config: TrainConfig, name: str) -> TrainConfig:
    """``config`` with every setting of preset ``name`` (data and seed are kept, and the backbone except by Auto)."""
    if name not in PRESETS:
        raise WarmstartError(f"Unknown preset '{name}'; choose one of: {', '.join(PRESETS)}.")
    return config.replace(**PRESETS[name])
