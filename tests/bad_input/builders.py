"""Programmatic builders for every kind of bad or unusual input the bad-input suite checks.

Each builder writes one file and returns its path; nothing is stored in the repository.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..conftest import make_image


def png_with_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but which holds no pixel data (a bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def jpeg_bytes(color=(120, 30, 60), size=(64, 64), **save_args) -> bytes:
    buffer = io.BytesIO()
    make_image(color, size=size).save(buffer, format="JPEG", **save_args)
    return buffer.getvalue()


def corrupt_jpeg(path: Path) -> Path:
    data = bytearray(jpeg_bytes(size=(120, 120)))
    data[200:600] = b"\x00" * 400  # scribble over the entropy-coded data and tables
    path.write_bytes(bytes(data[:400]) + b"\xff\xd9")
    return path


def truncated_jpeg(path: Path) -> Path:
    data = jpeg_bytes(size=(200, 200))
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_png(path: Path) -> Path:
    buffer = io.BytesIO()
    make_image((10, 200, 10), size=(120, 120)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[:300])
    return path


def animated_gif(path: Path) -> Path:
    frames = [Image.new("RGB", (40, 40), c) for c in ((230, 20, 20), (20, 20, 230))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def sixteen_bit_png(path: Path) -> Path:
    Image.fromarray(np.linspace(0, 65535, 1600).reshape(40, 40).astype(np.uint16)).save(path)
    return path


def cmyk_jpeg(path: Path) -> Path:
    make_image((30, 160, 90)).convert("CMYK").save(path, format="JPEG")
    return path


def palette_alpha_png(path: Path) -> Path:
    image = make_image((30, 160, 90)).convert("P")
    image.info["transparency"] = 0
    image.save(path, transparency=0)
    return path


def exif_rotated_jpeg(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    make_image((200, 100, 50), size=(60, 30)).save(path, format="JPEG", exif=exif)
    return path


def grayscale_png(path: Path) -> Path:
    make_image((90, 90, 90)).convert("L").save(path)
    return path


def tiny_png(path: Path) -> Path:
    make_image((5, 5, 250), size=(8, 8)).save(path)
    return path


def large_jpeg(path: Path) -> Path:
    Image.new("RGB", (4000, 3000), (60, 120, 180)).save(path, format="JPEG", quality=50)
    return path


def zip_of(path: Path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    """A zip with the given entries; ``symlinks`` maps entry names to link targets."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return path
