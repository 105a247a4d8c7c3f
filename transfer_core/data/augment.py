"""Training and evaluation transforms built with torchvision transforms v2.

All transforms take the decoded-image cache's uint8 CHW tensors and end in a normalised
float tensor of the backbone's input size. Mixup and CutMix act on whole batches, so they
are returned separately by :func:`batch_mixer`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..models.registry import Preprocessing
from ..config import AugmentConfig
from ..randomness import seeded_scope

__all__ = ["augment_previews", "batch_mixer", "eval_transform", "eval_view", "normalise", "train_transform"]


def _interpolation(name: str) -> v2.InterpolationMode:
    return v2.InterpolationMode(name) if name in {m.value for m in v2.InterpolationMode} else v2.InterpolationMode.BILINEAR


def _to_model_input(pre: Preprocessing) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std))]


def _geometry(pre: Preprocessing, size: int, augment: AugmentConfig) -> list[v2.Transform]:
    """Random crop/flip/rotate/colour ops on uint8 images, ending at ``size`` x ``size``."""
    interpolation = _interpolation(pre.interpolation)
    ops: list[v2.Transform] = []
    if augment.crop_scale_min < 1.0:
        ops.append(v2.RandomResizedCrop(size, scale=(augment.crop_scale_min, 1.0), interpolation=interpolation, antialias=True))
    else:
        ops += [v2.Resize(round(size / pre.crop_pct), interpolation=interpolation, antialias=True), v2.CenterCrop(size)]
    if augment.hflip > 0:
        ops.append(v2.RandomHorizontalFlip(augment.hflip))
    if augment.vflip > 0:
        ops.append(v2.RandomVerticalFlip(augment.vflip))
    if augment.rotation > 0:
        ops.append(v2.RandomRotation(augment.rotation, interpolation=v2.InterpolationMode.BILINEAR))
    if augment.color_jitter > 0:
        s = augment.color_jitter
        ops.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(0.5, s / 4)))
    if augment.trivial_augment:
        ops.append(v2.TrivialAugmentWide())
    return ops


def eval_transform(pre: Preprocessing, size: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize the short side, centre-crop, normalise: what validation and prediction use."""
    size = size or pre.input_size
    return v2.Compose(_geometry(pre, size, AugmentConfig()) + _to_model_input(pre))


def eval_view(pre: Preprocessing, size: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The evaluation crop as a uint8 image (no normalising): the pixels an explanation is drawn on."""
    return v2.Compose(_geometry(pre, size or pre.input_size, AugmentConfig()))


def normalise(pre: Preprocessing) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 image → the normalised float input: ``eval_transform`` is ``eval_view`` followed by this."""
    return v2.Compose(_to_model_input(pre))


def train_transform(
    pre: Preprocessing, augment: AugmentConfig, size: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-image training transform for ``augment`` (mixup/cutmix excluded)."""
    size = size or pre.input_size
    return v2.Compose(_geometry(pre, size, augment) + _to_model_input(pre))


def batch_mixer(augment: AugmentConfig, num_classes: int) -> Callable | None:
    """Mixup and/or CutMix over a batch (labels become soft), or None when both are off."""
    mixers: list[v2.Transform] = []
    if augment.mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=augment.mixup_alpha, num_classes=num_classes))
    if augment.cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=augment.cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def augment_previews(
    image: Image.Image | torch.Tensor,
    augment: AugmentConfig,
    n: int = 8,
    size: int = 224,
    pre: Preprocessing | None = None,
    seed: int | None = None,
    partner: Image.Image | torch.Tensor | None = None,
) -> list[Image.Image]:
    """``n`` augmented versions of one image, as the model would see them (before normalising).

    With mixup or cutmix on, each version is mixed with ``partner`` (another image, e.g. of
    another class) the way a batch would mix them, so the preview shows that effect too.
    """
    pre = pre or Preprocessing(input_size=size)
    to_tensor = lambda im: im if isinstance(im, torch.Tensor) else F.pil_to_tensor(im.convert("RGB"))
    tensor = to_tensor(image)
    ops = v2.Compose(_geometry(pre, size, augment))
    # Previews draw from their own generator, never from the numbers a run in another thread is using.
    with seeded_scope(seed if seed is not None else secrets.randbits(31)):
        out = []
        other = ops(to_tensor(partner)) if partner is not None else None
        mixer = batch_mixer(augment, 2)
        for _ in range(n):
            view = ops(tensor)
            if mixer is not None and other is not None:
                batch = torch.stack([view, other]).float() / 255.0
                mixed, _ = mixer(batch, torch.tensor([0, 1]))
                view = (mixed[0] * 255).round().clamp(0, 255).to(torch.uint8)
            out.append(F.to_pil_image(view))
        return out
