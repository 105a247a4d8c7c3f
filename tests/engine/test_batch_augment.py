"""Batched on-device augmentation: same crop as evaluation, honest randomness, usable in training."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from transfer_core import Trainer
from transfer_core.data.augment import eval_transform
from transfer_core.models.registry import Preprocessing
from transfer_core.data.batch_augment import BatchAugment, pad_collate
from transfer_core.config import AugmentConfig

PRE = Preprocessing(input_size=48)


def _gradient(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return (torch.stack([xs, ys, (xs + ys) / 2]) * 255).round().to(torch.uint8)


def _batch(*images: torch.Tensor):
    return pad_collate([(image, i) for i, image in enumerate(images)])


def test_pad_collate_keeps_each_image_and_its_size():
    a, b = _gradient(50, 70), _gradient(64, 40)
    images, sizes, labels = _batch(a, b)
    assert images.shape == (2, 3, 64, 70) and images.dtype == torch.uint8
    assert sizes.tolist() == [[50, 70], [64, 40]] and labels.tolist() == [0, 1]
    assert torch.equal(images[1, :, :64, :40], b) and int(images[1, :, :, 40:].sum()) == 0


def test_without_augmentation_it_matches_the_evaluation_crop():
    images, sizes, _ = _batch(_gradient(55, 80), _gradient(90, 56))
    out = BatchAugment(PRE, AugmentConfig(), 48)(images, sizes)
    for i, image in enumerate((_gradient(55, 80), _gradient(90, 56))):
        reference = eval_transform(PRE, 48)(image)
        assert out[i].shape == reference.shape
        assert (out[i] - reference).abs().mean() < 0.03  # bilinear grid vs antialiased resize


@pytest.mark.parametrize("preset", ["light", "standard"])
def test_padding_never_leaks_into_crops(preset):
    """A white image padded onto a larger canvas stays white: crops stay inside the real image."""
    white = torch.full((3, 40, 90), 255, dtype=torch.uint8)
    images, sizes, _ = _batch(white, _gradient(90, 40))
    augment = dataclasses.replace(AugmentConfig.from_preset(preset), rotation=0.0, color_jitter=0.0)
    torch.manual_seed(0)
    for _ in range(5):
        out = BatchAugment(PRE, augment, 48)(images, sizes)
        restored = out[0] * torch.tensor(PRE.std).view(3, 1, 1) + torch.tensor(PRE.mean).view(3, 1, 1)
        assert restored.min() > 0.99


def test_flip_mirrors_the_crop_and_seed_fixes_the_draw():
    images, sizes, _ = _batch(_gradient(48, 60))
    plain = BatchAugment(PRE, AugmentConfig(), 48)(images, sizes)
    flipped = BatchAugment(PRE, AugmentConfig(hflip=1.0), 48)(images, sizes)
    assert torch.allclose(flipped, plain.flip(-1), atol=1e-4)
    augment = BatchAugment(PRE, AugmentConfig.from_preset("standard"), 48)
    torch.manual_seed(3)
    first = augment(images, sizes)
    torch.manual_seed(3)
    assert torch.equal(first, augment(images, sizes))
    assert not torch.equal(first, augment(images, sizes))


def test_colour_jitter_changes_colours_within_range():
    images, sizes, _ = _batch(*[_gradient(48, 48)] * 8)
    torch.manual_seed(0)
    out = BatchAugment(PRE, AugmentConfig(color_jitter=0.5), 48)(images, sizes)
    restored = out * torch.tensor(PRE.std).view(1, 3, 1, 1) + torch.tensor(PRE.mean).view(1, 3, 1, 1)
    assert restored.min() >= -1e-5 and restored.max() <= 1 + 1e-5
    per_image_means = restored.mean((1, 2, 3))
    assert per_image_means.std() > 0.01  # each image drew its own factors


def test_trivial_augment_stays_per_image():
    assert not BatchAugment.supports(AugmentConfig(trivial_augment=True))
    with pytest.raises(ValueError):
        BatchAugment(PRE, AugmentConfig(trivial_augment=True))


def test_training_with_batched_augmentation_learns(tiny_config, tmp_path):
    config = tiny_config.replace(strategy="full", augment="standard", batch_augment="on", epochs=3)
    trainer = Trainer(config, tmp_path / "run")
    result = trainer.fit()
    assert result.status == "finished" and result.report["val_accuracy"] >= 2 / 3
    again = Trainer(config, tmp_path / "again").fit()
    assert again.report["history"] == result.report["history"]  # seeded: the same draws every time
