"""Open any supported image file as an upright 8-bit RGB picture, or say why not.

Photos arrive in every mode Pillow knows: EXIF-rotated JPEGs, CMYK scans, 16-bit PNGs,
palette images with transparency, animated GIFs. The model wants RGB, so this module is the
one place that normalises them, and the one place that refuses decompression bombs before
their pixels are allocated.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import WarmstartError
from ..limits import input_limits

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "ImageReadError", "open_rgb", "read_image_size"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# 64 megapixels by default (WARMSTART_MAX_IMAGE_PIXELS): far beyond any photo a classifier
# needs, far below what exhausts memory.
MAX_IMAGE_PIXELS = 64_000_000


class ImageReadError(WarmstartError):
    """A file that is not a usable image; the message is the reason, without the file name."""


ImageSource = str | Path | bytes | BinaryIO


def _open(source: ImageSource, max_pixels: int) -> Image.Image:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked next
            return Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(f"image is larger than the limit of {max_pixels:,} pixels (decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageReadError("not a readable image (unknown or corrupt format)") from None
    except FileNotFoundError:
        raise ImageReadError("file not found") from None
    except OSError as exc:
        raise ImageReadError(f"cannot be read ({exc})") from None


def _check_size(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageReadError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageReadError(
            f"image is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,} "
            "(WARMSTART_MAX_IMAGE_PIXELS)"
        )


def read_image_size(source: ImageSource, max_pixels: int | None = None) -> tuple[int, int]:
    """Read only the header: (width, height), or ImageReadError. Cheap enough for scanning folders."""
    max_pixels = max_pixels or input_limits().max_image_pixels
    with _open(source, max_pixels) as image:
        _check_size(image, max_pixels)
        return image.size


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparent areas become white."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit grayscale: rescale the actual value range to 0..255 instead of clipping.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        array = ((array - low) * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return image.convert("RGB")
    return image


def open_rgb(source: ImageSource, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file into an upright, fully loaded 8-bit RGB image.

    Args:
        source: a path, the file's bytes, or a binary file object.
        max_pixels: refuse images with more pixels than this before decoding them
            (default: the configured limit, see :mod:`transfer_core.limits`).

    Returns:
        A loaded ``PIL.Image`` in mode RGB (first frame of animations, EXIF orientation applied).

    Raises:
        ImageReadError: with the reason (corrupt, truncated, empty, too large, not an image).
    """
    max_pixels = max_pixels or input_limits().max_image_pixels
    with _open(source, max_pixels) as image:
        _check_size(image, max_pixels)
        try:
            image.seek(0)
            image.load()
            # In place: without an orientation tag the default returns a copy of every photo, which
            # was a quarter of reading a folder of small photos.
            ImageOps.exif_transpose(image, in_place=True)
            rgb = _to_rgb(image)
            rgb.load()
        except (OSError, SyntaxError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            if "truncated" in reason.lower():
                raise ImageReadError("image data is truncated (the file is incomplete)") from None
            raise ImageReadError(f"image data is corrupt ({reason})") from None
        except Image.DecompressionBombError:
            raise ImageReadError(f"image is larger than the limit of {max_pixels:,} pixels") from None
    return rgb
