import torch

from transfer_core import AugmentConfig, Preprocessing, augment_previews, batch_mixer, eval_transform, train_transform

from ..conftest import make_image


def test_previews_are_n_distinct_images_of_the_training_size():
    image = make_image((200, 30, 30), size=(80, 60), noise=60)
    views = augment_previews(image, AugmentConfig.from_preset("strong"), n=6, size=48, seed=1)
    assert len(views) == 6 and all(v.size == (48, 48) for v in views)
    assert len({v.tobytes() for v in views}) > 1
    again = augment_previews(image, AugmentConfig.from_preset("strong"), n=6, size=48, seed=1)
    assert [v.tobytes() for v in again] == [v.tobytes() for v in views]


def test_no_augmentation_previews_are_identical():
    views = augment_previews(make_image((1, 2, 3)), AugmentConfig(), n=3, size=32, seed=0)
    assert len({v.tobytes() for v in views}) == 1


def test_mixup_preview_blends_the_partner():
    red, blue = make_image((255, 0, 0), noise=0), make_image((0, 0, 255), noise=0)
    views = augment_previews(red, AugmentConfig(mixup_alpha=1.0), n=4, size=32, seed=0, partner=blue)
    assert any(0 < v.getpixel((16, 16))[2] for v in views)


def test_transforms_produce_normalised_tensors():
    pre = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    image = torch.full((3, 50, 40), 255, dtype=torch.uint8)
    out = eval_transform(pre)(image)
    assert out.shape == (3, 32, 32) and torch.allclose(out, torch.ones_like(out))
    every_option = AugmentConfig(hflip=0.5, vflip=0.5, rotation=20, crop_scale_min=0.3, color_jitter=0.3, trivial_augment=True)
    assert train_transform(pre, every_option)(image).shape == (3, 32, 32)


def test_batch_mixer_makes_soft_labels():
    mixer = batch_mixer(AugmentConfig(mixup_alpha=0.4, cutmix_alpha=1.0), num_classes=3)
    x, y = mixer(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
    assert y.shape == (4, 3) and torch.allclose(y.sum(1), torch.ones(4))
    assert batch_mixer(AugmentConfig(), 3) is None
