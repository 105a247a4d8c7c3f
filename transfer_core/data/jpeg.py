"""Plain JPEG photos straight to pixels with libjpeg-turbo, without Pillow's Python-level work.

Reading a folder of photos is mostly JPEG decoding, done by one reader thread per core. Pillow
decodes with libjpeg-turbo too, but first parses the file's markers in Python and then copies
the pixels twice on the way to a tensor, holding the interpreter lock for both, so two readers
never ran fully side by side. simplejpeg calls libjpeg-turbo with the same settings Pillow uses
(accurate DCT, smooth chroma upsampling) and writes straight into a numpy array, with the lock
released. Filling the decoded-image cache from flowers-mini's 210 photos on two cores took 30 ms
instead of 49 (1.6x, ``bench/decode.py``), pixel for pixel the same (``tests/engine/test_jpeg.py``).

Only the plain case takes this path: a colour (YCbCr) or greyscale JPEG without an EXIF
rotation, within the pixel limit. Everything else (CMYK, a rotated phone photo, a PNG, a file
libjpeg-turbo complains about) gets None and is read by Pillow, which also words every error.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

try:
    import simplejpeg
except ImportError:  # an optional speed-up: Pillow reads the same files
    simplejpeg = None

__all__ = ["JPEG_START", "decode_plain_jpeg"]

JPEG_START = b"\xff\xd8\xff"  # how every JPEG file begins
_START_OF_SCAN = 0xDA
_APP1 = 0xE1
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_XMP_ORIENTATION = b"tiff:Orientation"
_PLAIN_COLOURSPACES = frozenset({"YCbCr", "Gray"})  # what Pillow also reads as RGB or L and converts alike


def decode_plain_jpeg(data: bytes, max_pixels: int) -> np.ndarray | None:
    """Decode a plain JPEG straight to pixels, exactly as Pillow would.

    Args:
        data: the whole file.
        max_pixels: the pixel limit (see :mod:`transfer_core.limits`); a larger image is left to
            Pillow, which refuses it with the limit's name.

    Returns:
        The ``(height, width, 3)`` uint8 RGB pixels, or None when Pillow must read the file.
    """
    if simplejpeg is None or not data.startswith(JPEG_START):
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        if colourspace not in _PLAIN_COLOURSPACES or not 0 < height * width <= max_pixels or _needs_pillow(data):
            return None
        return simplejpeg.decode_jpeg(data, colorspace="RGB")  # strict: a recoverable error raises too
    except ValueError:  # corrupt or truncated: Pillow's reading says which
        return None


def _needs_pillow(data: bytes) -> bool:
    """Whether Pillow would turn this photo upright (an EXIF or XMP orientation other than 1), or
    the header segments are anything but plain: then Pillow reads the file and decides."""
    exif_segments, position = [], 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return True  # not where a marker should be
        marker = data[position + 1]
        if marker == _START_OF_SCAN:
            break
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position + 4 : position + 2 + length]
        if marker == _APP1 and segment.startswith(_EXIF_HEADER):
            exif_segments.append(segment)
        elif marker == _APP1 and _XMP_ORIENTATION in segment:  # Pillow's fallback when EXIF has none
            return True
        position += 2 + length
    else:
        return True  # the header never ended
    if not exif_segments:
        return False
    if len(exif_segments) > 1:  # Pillow joins them; rare enough to leave to it
        return True
    exif = Image.Exif()
    try:
        exif.load(exif_segments[0])
    except Exception:  # Pillow's EXIF parser raises several types on damaged data
        return True
    return exif.get(_ORIENTATION_TAG, 1) != 1
