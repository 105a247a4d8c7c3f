"""Augmentation of whole uint8 batches on the training device.

On a GPU, per-image augmentation on the CPU caps training at about a thousand images per
second, far below what the model itself runs at. Here a batch of cached uint8 images
(padded to one canvas, with each image's real height and width) travels to the device as
bytes, and one sampled affine grid per image does the random resized crop, flips and
rotation in a single ``grid_sample`` call; colour jitter is per-image arithmetic. Random
parameters are drawn on the CPU from the global generator, so a seeded run draws the same
augmentations on any device.

Images in the decoded-image cache are already resized to a little above the training size,
so the crop's downscale is small and bilinear sampling needs no antialiasing filter.
TrivialAugment's op table has no batched form; configs that use it stay on the per-image path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.registry import Preprocessing
from ..config import AugmentConfig

__all__ = ["BatchAugment", "pad_collate"]

# RGB <-> YIQ: hue is a rotation of the (I, Q) chroma plane.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
_GRAY = torch.tensor([0.299, 0.587, 0.114])


def pad_collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack uint8 CHW images of different sizes onto one zero canvas.

    Returns (images [B, 3, H, W] uint8, sizes [B, 2] as (height, width), labels [B]).
    """
    height = max(image.shape[1] for image, _ in batch)
    width = max(image.shape[2] for image, _ in batch)
    images = torch.zeros(len(batch), 3, height, width, dtype=torch.uint8)
    sizes = torch.empty(len(batch), 2, dtype=torch.long)
    for i, (image, _) in enumerate(batch):
        images[i, :, : image.shape[1], : image.shape[2]] = image
        sizes[i, 0], sizes[i, 1] = image.shape[1], image.shape[2]
    labels = torch.tensor([int(label) for _, label in batch])
    return images, sizes, labels


class BatchAugment:
    """``augment`` applied to a padded uint8 batch, returning normalised float images of ``size``.

    With no augmentation it reproduces the evaluation crop (resize, centre crop), so the
    same path can feed training without augmentation.
    """

    def __init__(self, pre: Preprocessing, augment: AugmentConfig, size: int | None = None) -> None:
        if not self.supports(augment):
            raise ValueError("TrivialAugment has no batched form; use the per-image transform.")
        self.pre = pre
        self.augment = augment
        self.size = size or pre.input_size

    @staticmethod
    def supports(augment: AugmentConfig) -> bool:
        return not augment.trivial_augment

    def __call__(self, images: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        device = images.device
        n, _, canvas_h, canvas_w = images.shape
        theta = self._affine(sizes.cpu().double(), canvas_h, canvas_w).to(device=device, dtype=torch.float32)
        grid = F.affine_grid(theta, [n, 3, self.size, self.size], align_corners=False)
        grid, outside = self._keep_inside(grid, sizes.to(device), canvas_h, canvas_w)
        x = F.grid_sample(images.float().div_(255.0), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = x.masked_fill(outside.unsqueeze(1), 0.0)
        if self.augment.color_jitter > 0:
            x = self._jitter(x)
        mean = torch.tensor(self.pre.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.pre.std, device=device).view(1, 3, 1, 1)
        return (x - mean) / std

    @staticmethod
    def _keep_inside(grid: torch.Tensor, sizes: torch.Tensor, canvas_h: int, canvas_w: int):
        """Clamp samples to each image's own pixels, so neither padding nor a neighbour bleeds in.

        Points beyond the image (only rotation produces them) are reported, to be filled
        with black as torchvision's rotation does.
        """
        x = (grid[..., 0] + 1) * canvas_w / 2  # pixel coordinates, edges at 0 and w
        y = (grid[..., 1] + 1) * canvas_h / 2
        h = sizes[:, 0].view(-1, 1, 1).to(grid.dtype)
        w = sizes[:, 1].view(-1, 1, 1).to(grid.dtype)
        outside = (x < -1e-3) | (y < -1e-3) | (x > w + 1e-3) | (y > h + 1e-3)
        x = torch.minimum(x.clamp(min=0.5), w - 0.5)
        y = torch.minimum(y.clamp(min=0.5), h - 0.5)
        return torch.stack([x * 2 / canvas_w - 1, y * 2 / canvas_h - 1], dim=-1), outside

    def _affine(self, sizes: torch.Tensor, canvas_h: int, canvas_w: int) -> torch.Tensor:
        """One 2x3 matrix per image mapping output coordinates into the padded canvas."""
        n = sizes.shape[0]
        h, w = sizes[:, 0], sizes[:, 1]
        aug = self.augment
        if aug.crop_scale_min < 1.0:
            # Random resized crop: area fraction in [scale_min, 1], aspect ratio in [3/4, 4/3] (log-uniform).
            area = h * w * (aug.crop_scale_min + (1 - aug.crop_scale_min) * torch.rand(n, dtype=torch.double))
            log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * torch.rand(n, dtype=torch.double)
            ratio = torch.exp(log_ratio)
            crop_w = torch.sqrt(area * ratio).clamp(max=w)
            crop_h = torch.sqrt(area / ratio).clamp(max=h)
            left = (w - crop_w) * torch.rand(n, dtype=torch.double)
            top = (h - crop_h) * torch.rand(n, dtype=torch.double)
        else:
            # Evaluation crop: the centred square that resize-then-centre-crop keeps.
            side = torch.minimum(h, w) * self.pre.crop_pct
            crop_w = crop_h = side
            left, top = (w - side) / 2, (h - side) / 2
        flip_x = torch.where(torch.rand(n, dtype=torch.double) < aug.hflip, -1.0, 1.0)
        flip_y = torch.where(torch.rand(n, dtype=torch.double) < aug.vflip, -1.0, 1.0)
        angle = torch.deg2rad((torch.rand(n, dtype=torch.double) * 2 - 1) * aug.rotation)
        cos, sin = torch.cos(angle), torch.sin(angle)
        half_w, half_h = crop_w / 2 * flip_x, crop_h / 2 * flip_y
        center_x, center_y = left + crop_w / 2, top + crop_h / 2
        # Pixel position = centre + R(angle) @ (half_w * u, half_h * v); then to the canvas's [-1, 1].
        theta = torch.empty(n, 2, 3, dtype=torch.double)
        theta[:, 0, 0] = 2 / canvas_w * cos * half_w
        theta[:, 0, 1] = 2 / canvas_w * -sin * half_h
        theta[:, 0, 2] = 2 / canvas_w * center_x - 1
        theta[:, 1, 0] = 2 / canvas_h * sin * half_w
        theta[:, 1, 1] = 2 / canvas_h * cos * half_h
        theta[:, 1, 2] = 2 / canvas_h * center_y - 1
        return theta

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast, saturation and hue, each with its own factor per image."""
        n, device, s = x.shape[0], x.device, self.augment.color_jitter

        def factor(spread: float) -> torch.Tensor:
            return (1 + (torch.rand(n) * 2 - 1) * spread).clamp(min=0).view(n, 1, 1, 1).to(device)

        brightness, contrast, saturation = factor(s), factor(s), factor(s)
        hue = ((torch.rand(n) * 2 - 1) * min(0.5, s / 4) * 2 * math.pi).to(device)
        gray_weights = _GRAY.to(device).view(1, 3, 1, 1)
        x = (x * brightness).clamp(0, 1)
        mean_gray = (x * gray_weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        x = ((x - mean_gray) * contrast + mean_gray).clamp(0, 1)
        gray = (x * gray_weights).sum(1, keepdim=True)
        x = ((x - gray) * saturation + gray).clamp(0, 1)
        cos, sin = torch.cos(hue), torch.sin(hue)
        rotation = torch.zeros(n, 3, 3, device=device)
        rotation[:, 0, 0] = 1
        rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
        rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
        matrix = _YIQ_TO_RGB.to(device) @ rotation @ _RGB_TO_YIQ.to(device)
        return torch.einsum("nij,njhw->nihw", matrix, x).clamp(0, 1)
