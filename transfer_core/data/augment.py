"""Training and evaluation transforms built with torchvision transforms v2.

All transforms take the decoded-image cache's uint8 CHW tensors and end in a normalised
float tensor of the backbone's input size. Mixup and CutMix act on whole batches, so they
are returned separately by :func:`batch_mixer`.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..models.registry import Preprocessing
from ..config import AugmentConfig
from ..randomness import seeded_scope

__all__ = ["EvalTransform", "Normalise", "augment_previews", "batch_mixer", "eval_transform", "eval_view", "normalise", "train_transform"]


def _interpolation(name: str) -> v2.InterpolationMode:
    return v2.InterpolationMode(name) if name in {m.value for m in v2.InterpolationMode} else v2.InterpolationMode.BILINEAR


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


class Normalise:
    """uint8 image or batch of images → the model's normalised float input, in one fused pass.

    The same arithmetic as ``ToDtype(scale=True)`` then ``Normalize`` (x / 255 − mean) / std, written
    as one multiply-add on a single new buffer: on a whole batch it is about twice as fast as the two
    torchvision steps and, unlike them, cheap enough to run once per batch instead of once per image.
    """

    def __init__(self, pre: Preprocessing) -> None:
        mean, std = torch.tensor(pre.mean, dtype=torch.float32), torch.tensor(pre.std, dtype=torch.float32)
        self.scale = (1.0 / (255.0 * std)).view(-1, 1, 1)
        self.shift = (-mean / std).view(-1, 1, 1)

    def __repr__(self) -> str:  # names the numbers: an exported graph that includes them is keyed by it
        return f"Normalise(scale={self.scale.flatten().tolist()}, shift={self.shift.flatten().tolist()})"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = images.to(torch.float32, copy=True)
        return out.mul_(self.scale.to(out.device)).add_(self.shift.to(out.device))


class EvalTransform:
    """Resize the short side, centre-crop, normalise: what validation and prediction use.

    Kept in its two parts so the inference path (:func:`~transfer_core.features.inference.run_inference`)
    can crop each image (``view``, uint8) and normalise whole batches (``normalise``); called on one
    image it does both, with the same arithmetic.
    """

    def __init__(self, pre: Preprocessing, size: int | None = None) -> None:
        self.view = v2.Compose(_geometry(pre, size or pre.input_size, AugmentConfig()))
        self.normalise = Normalise(pre)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.view(image))


def eval_transform(pre: Preprocessing, size: int | None = None) -> EvalTransform:
    """The evaluation transform for ``pre`` at ``size`` (default: the backbone's input size)."""
    return EvalTransform(pre, size)


def eval_view(pre: Preprocessing, size: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The evaluation crop as a uint8 image (no normalising): the pixels an explanation is drawn on."""
    return EvalTransform(pre, size).view


def normalise(pre: Preprocessing) -> Normalise:
    """uint8 image(s) → the normalised float input: ``eval_transform`` is ``eval_view`` followed by this."""
    return Normalise(pre)


def train_transform(
    pre: Preprocessing, augment: AugmentConfig, size: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-image training transform for ``augment`` (mixup/cutmix excluded); without per-image
    augmentation it is the evaluation transform itself, so inference reads it a batch at a time."""
    size = size or pre.input_size
    if dataclasses.replace(augment, mixup_alpha=0.0, cutmix_alpha=0.0).is_none:
        return EvalTransform(pre, size)
    return v2.Compose([*_geometry(pre, size, augment), Normalise(pre)])


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
