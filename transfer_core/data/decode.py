"""An image file as the uint8 tensor every model input starts from: decoded, upright, shrunk.

Training (through the decoded-image cache), validation and prediction all read files here, so a
model sees the same pixels when it predicts as it did when it was validated.
"""

from __future__ import annotations

import os

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from ..limits import input_limits
from .images import open_rgb
from .jpeg import JPEG_START, decode_plain_jpeg

__all__ = ["as_image_tensor", "cache_side_for", "read_image_tensor", "shrink_to_tensor"]


def cache_side_for(image_size: int, crop_pct: float = 0.875) -> int:
    """Short side to keep in the cache so a centre crop of ``image_size`` has its usual margin."""
    return int(round(image_size / crop_pct))


def shrink_to_tensor(image: Image.Image, short_side: int) -> torch.Tensor:
    """Downscale (never upscale) so the short side is ``short_side``; uint8 CHW tensor.

    Training, validation and prediction all pass through here, so a model sees the same
    pixels at prediction time as it did during validation.
    """
    if image.mode != "RGB":  # convert() copies even an RGB image
        image = image.convert("RGB")
    width, height = image.size
    scale = short_side / min(width, height)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return F.pil_to_tensor(image)


def as_image_tensor(image: Image.Image | torch.Tensor, short_side: int) -> torch.Tensor:
    """A PIL image shrunk as :func:`shrink_to_tensor` does; a tensor it already made passes through."""
    return image if isinstance(image, torch.Tensor) else shrink_to_tensor(image, short_side)


def read_image_tensor(path: str | os.PathLike, short_side: int) -> torch.Tensor:
    """Read an image file as :func:`shrink_to_tensor` makes it.

    Plain JPEG photos skip Pillow's slower way to the same pixels (see :mod:`.jpeg`); any other
    file goes to Pillow by its path, without being read whole first.

    Args:
        path: the file.
        short_side: the largest short side kept (see :func:`cache_side_for`).

    Returns:
        A uint8 ``(3, height, width)`` tensor.

    Raises:
        ImageReadError: with the reason the file cannot be used.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(len(JPEG_START))
            if data == JPEG_START:
                data += file.read()
    except OSError:
        data = b""  # Pillow, reading the path, words why it cannot be read
    if not data.startswith(JPEG_START):
        return shrink_to_tensor(open_rgb(path), short_side)
    pixels = decode_plain_jpeg(data, input_limits().max_image_pixels)
    if pixels is None:  # a JPEG Pillow must read (rotated, CMYK, damaged...): from the bytes already read
        return shrink_to_tensor(open_rgb(data), short_side)
    if min(pixels.shape[:2]) > short_side:  # Pillow's own resize, so the pixels stay the same
        return shrink_to_tensor(Image.fromarray(pixels), short_side)
    return torch.from_numpy(pixels).permute(2, 0, 1)
