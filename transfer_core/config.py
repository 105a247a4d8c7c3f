"""Typed run configuration shared by the app, the CLI and the tests.

One frozen dataclass describes a whole training run; it validates itself on creation and
round-trips through JSON, so the exact recipe is saved inside every run folder.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import WarmstartError

__all__ = [
    "DEFAULT_EMA_DECAY",
    "AugmentConfig",
    "AugmentPreset",
    "Balance",
    "OptimizerName",
    "Schedule",
    "Strategy",
    "TrainConfig",
]


class Strategy(StrEnum):
    """Which backbone parameters train."""

    FROZEN = "frozen"  # feature extraction: only the new head trains
    PARTIAL = "partial"  # the last N blocks and the head train
    FULL = "full"  # everything trains
    GRADUAL = "gradual"  # start frozen, unfreeze one more block every K epochs


class AugmentPreset(StrEnum):
    NONE = "none"
    LIGHT = "light"
    STANDARD = "standard"
    STRONG = "strong"


class OptimizerName(StrEnum):
    SGD = "sgd"
    ADAM = "adam"
    ADAMW = "adamw"


class Schedule(StrEnum):
    ONE_CYCLE = "onecycle"
    COSINE = "cosine"
    STEP = "step"
    CONSTANT = "constant"


class Balance(StrEnum):
    """How to compensate for classes with few images."""

    NONE = "none"
    CLASS_WEIGHTS = "class_weights"  # weight the loss by inverse class frequency
    SAMPLER = "sampler"  # draw batches so every class is seen equally often


AUTO_BACKBONE = "auto"  # a backbone name that means "the shoot-out's winner" (see insight/backbone_choice.py)
DEFAULT_EMA_DECAY = 0.999  # what "EMA on" means in the app and on the command line: a long run averages ~1,000 steps


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise WarmstartError(message)


def _coerce_enum(enum_type: type[StrEnum], value: Any, setting: str) -> StrEnum:
    try:
        return enum_type(str(value).lower())
    except ValueError:
        choices = ", ".join(member.value for member in enum_type)
        raise WarmstartError(f"Unknown {setting} '{value}'; choose one of: {choices}.") from None


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; every field at its default means "no augmentation".

    Probabilities are in [0, 1]; ``crop_scale_min`` < 1 turns on a random resized crop
    that keeps between that fraction and all of the image area.
    """

    hflip: float = 0.0
    vflip: float = 0.0
    rotation: float = 0.0  # maximum degrees either way
    crop_scale_min: float = 1.0
    color_jitter: float = 0.0  # strength of brightness/contrast/saturation changes
    trivial_augment: bool = False
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"{name} must be a probability between 0 and 1, got {value}.")
        _check(0.0 <= self.rotation <= 180.0, f"rotation must be between 0 and 180 degrees, got {self.rotation}.")
        _check(
            0.05 <= self.crop_scale_min <= 1.0,
            f"crop_scale_min must be between 0.05 and 1, got {self.crop_scale_min}.",
        )
        _check(0.0 <= self.color_jitter <= 1.0, f"color_jitter must be between 0 and 1, got {self.color_jitter}.")
        _check(self.mixup_alpha >= 0.0, f"mixup_alpha must be 0 (off) or positive, got {self.mixup_alpha}.")
        _check(self.cutmix_alpha >= 0.0, f"cutmix_alpha must be 0 (off) or positive, got {self.cutmix_alpha}.")

    @classmethod
    def from_preset(cls, preset: AugmentPreset | str) -> AugmentConfig:
        """The augmentation of a named preset."""
        preset = _coerce_enum(AugmentPreset, preset, "augmentation preset")
        return _AUGMENT_PRESETS[preset]

    @property
    def is_none(self) -> bool:
        """True when training sees the same inputs every epoch (so features can be cached)."""
        return self == AugmentConfig()

    @property
    def mixes_batches(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @property
    def preset_name(self) -> str | None:
        """The preset this equals, or None for a custom mix."""
        return next((p.value for p, cfg in _AUGMENT_PRESETS.items() if cfg == self), None)


_AUGMENT_PRESETS: dict[AugmentPreset, AugmentConfig] = {
    AugmentPreset.NONE: AugmentConfig(),
    AugmentPreset.LIGHT: AugmentConfig(hflip=0.5, crop_scale_min=0.7),
    AugmentPreset.STANDARD: AugmentConfig(hflip=0.5, rotation=10.0, crop_scale_min=0.35, color_jitter=0.2),
    AugmentPreset.STRONG: AugmentConfig(
        hflip=0.5, crop_scale_min=0.25, trivial_augment=True, mixup_alpha=0.2, cutmix_alpha=1.0
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result.

    ``lr`` is the learning rate of the new head (None: :attr:`head_lr` picks one); the backbone trains at
    ``lr * backbone_lr_factor`` (discriminative learning rates). ``image_size`` of None uses
    the backbone's own input size. Before any backbone layer trains, the new head is first
    fitted alone for ``head_warmup_epochs`` on cached features (linear probing, then fine-tuning),
    so the random head's gradients do not distort the pretrained features.

    ``batch_augment`` decides where per-epoch augmentation runs: ``on`` augments whole uint8 batches
    on the training device (see :mod:`transfer_core.batch_augment`), ``off`` per image on the CPU,
    ``auto`` batched on a GPU and per image on a CPU (TrivialAugment is always per image).

    ``augment_views`` > 0 (frozen backbone with augmentation, no mixup/cutmix): that many augmented
    views of each image go through the backbone once and the epochs cycle through them; cheaper
    than new views every epoch, at the price of fewer distinct views.

    ``unlabeled`` names a pool of images without classes (:mod:`transfer_core.data.pool`): the ones a
    person has labelled (in the labels file beside it) join the training images, never validation, so
    runs of successive labelling rounds are measured on the same images. ``pseudo_labels_from`` adds
    self-training: that run's predictions on the rest of the pool with probability at least
    ``pseudo_threshold`` join training too, at most ``pseudo_cap`` per class (see
    :func:`~transfer_core.insight.selection.pseudo_labels`); the run keeps the list it trained on.

    ``teacher`` names a finished run to distil from (:mod:`transfer_core.training.distillation`): the loss
    becomes ``distill_alpha`` · KL(teacher ‖ student at ``distill_temperature``) · T² + (1 − alpha) · the
    usual loss, the teacher seeing each batch as the student does.

    ``ema_decay`` > 0 validates and saves a moving average of the weights instead of the last ones
    (:mod:`transfer_core.training.averaging`); only where backbone layers train, since a frozen
    backbone's head is a convex fit that settles without averaging.
    """

    data: str = ""
    val_data: str | None = None
    corrections: str | None = None  # a corrections file (relabelled / excluded images), see transfer_core.corrections
    unlabeled: str | None = None  # an unlabelled pool (folder or zip); its images labelled so far join training
    pseudo_labels_from: str | None = None  # a finished run whose confident predictions on the pool also join training
    pseudo_threshold: float = 0.9
    pseudo_cap: int = 20  # pseudo-labels per class at most
    teacher: str | None = None  # a finished run whose outputs this run learns from too (knowledge distillation)
    distill_alpha: float = 0.5  # weight of the teacher's soft targets against the labels
    distill_temperature: float = 4.0  # softening of both outputs in the distillation term
    val_split: float = 0.2
    backbone: str = "efficientnet_lite0"
    strategy: Strategy = Strategy.FROZEN
    trainable_blocks: int = 2
    head_warmup_epochs: int = 5
    unfreeze_every: int = 1
    epochs: int = 10
    batch_size: int = 32
    image_size: int | None = None
    lr: float | None = None
    backbone_lr_factor: float = 0.1
    optimizer: OptimizerName = OptimizerName.ADAMW
    momentum: float = 0.9
    schedule: Schedule = Schedule.ONE_CYCLE
    step_epochs: int = 5
    step_gamma: float = 0.1
    weight_decay: float = 1e-2
    dropout: float = 0.2
    label_smoothing: float = 0.1
    l2sp: float = 0.0
    early_stopping_patience: int = 0
    grad_clip: float = 0.0
    balance: Balance = Balance.NONE
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    augment_views: int = 0
    batch_augment: str = "auto"
    ema_decay: float = 0.0  # 0 = off; else the longest memory of the weights' moving average (see training/averaging.py)
    seed: int = 0
    device: str = "auto"
    pretrained: bool = True

    def __post_init__(self) -> None:
        # Accept plain strings (JSON, CLI) and store the enum members.
        for name, enum_type, label in (
            ("strategy", Strategy, "strategy"),
            ("optimizer", OptimizerName, "optimizer"),
            ("schedule", Schedule, "schedule"),
            ("balance", Balance, "balance mode"),
        ):
            object.__setattr__(self, name, _coerce_enum(enum_type, getattr(self, name), label))
        object.__setattr__(self, "device", str(self.device))
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig(**self.augment))
        elif isinstance(self.augment, str):
            object.__setattr__(self, "augment", AugmentConfig.from_preset(self.augment))
        _check(0.0 < self.val_split < 1.0, f"val_split must be between 0 and 1 (exclusive), got {self.val_split}.")
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}.")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}.")
        _check(
            self.image_size is None or 32 <= self.image_size <= 1024,
            f"image_size must be between 32 and 1024 pixels, got {self.image_size}.",
        )
        _check(
            self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), f"lr must be a positive number, got {self.lr}."
        )
        _check(
            0.0 <= self.backbone_lr_factor <= 10.0,
            f"backbone_lr_factor must be between 0 and 10, got {self.backbone_lr_factor}.",
        )
        _check(self.trainable_blocks >= 1, f"trainable_blocks must be at least 1, got {self.trainable_blocks}.")
        _check(self.head_warmup_epochs >= 0, f"head_warmup_epochs must be 0 (off) or more, got {self.head_warmup_epochs}.")
        _check(self.unfreeze_every >= 1, f"unfreeze_every must be at least 1 epoch, got {self.unfreeze_every}.")
        _check(self.weight_decay >= 0, f"weight_decay must be 0 or positive, got {self.weight_decay}.")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}.")
        _check(0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        _check(self.l2sp >= 0, f"l2sp strength must be 0 (off) or positive, got {self.l2sp}.")
        _check(self.early_stopping_patience >= 0, "early_stopping_patience must be 0 (off) or a positive number of epochs.")
        _check(self.grad_clip >= 0, f"grad_clip must be 0 (off) or positive, got {self.grad_clip}.")
        _check(0 <= self.augment_views <= 64, f"augment_views must be between 0 (off) and 64, got {self.augment_views}.")
        _check(
            self.batch_augment in ("auto", "on", "off"),
            f"batch_augment must be auto, on or off, got '{self.batch_augment}'.",
        )
        _check(
            self.ema_decay == 0.0 or 0.5 <= self.ema_decay < 1.0,
            f"ema_decay must be 0 (off) or at least 0.5 and below 1, e.g. 0.999; got {self.ema_decay}.",
        )
        _check(
            self.ema_decay == 0.0 or self.strategy is not Strategy.FROZEN,
            "Weight averaging (EMA) needs a strategy that fine-tunes the backbone (partial, full or gradual); "
            "turn it off for a frozen backbone.",
        )
        _check(0.0 < self.pseudo_threshold <= 1.0, f"pseudo_threshold must be in (0, 1], e.g. 0.9; got {self.pseudo_threshold}.")
        _check(self.pseudo_cap >= 1, f"pseudo_cap must be at least 1 image per class, got {self.pseudo_cap}.")
        _check(
            self.pseudo_labels_from is None or self.unlabeled is not None,
            "Pseudo-labels need an unlabelled pool for the run to label; give the pool too (--unlabeled).",
        )
        _check(0.0 <= self.distill_alpha <= 1.0, f"distill_alpha must be between 0 (labels only) and 1 (teacher only), got {self.distill_alpha}.")
        _check(0.5 <= self.distill_temperature <= 50, f"distill_temperature must be between 0.5 and 50, e.g. 4; got {self.distill_temperature}.")
        _check(
            self.teacher is None or self.augment_views == 0,
            "Distillation needs the teacher to see each augmented view, and cached augmented views (augment_views) "
            "keep no images; set augment_views to 0 when distilling.",
        )
        _check(self.step_epochs >= 1, f"step_epochs must be at least 1, got {self.step_epochs}.")
        _check(0.0 < self.step_gamma <= 1.0, f"step_gamma must be in (0, 1], got {self.step_gamma}.")
        _check(0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1), got {self.momentum}.")
        _check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            f"Unknown device '{self.device}'; choose auto, cpu or cuda.",
        )

    @property
    def head_lr(self) -> float:
        """``lr``, or the recommended one: a head on frozen features takes a larger step than fine-tuning."""
        if self.lr is not None:
            return self.lr
        return 1e-2 if self.strategy is Strategy.FROZEN else 3e-3

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as their string values)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, StrEnum):
                out[key] = value.value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict such as ``to_dict()`` wrote; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        _check(not unknown, f"Unknown config setting(s): {', '.join(unknown)}.")
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
