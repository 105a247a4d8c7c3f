"""Benchmark: reading a folder of photos into the decoded-image cache, Pillow's way against the JPEG shortcut.

    python bench/decode.py [--data DIR] [--repeats 7] [--side 256]

Both readers fill a fresh :class:`DecodedImageCache` from every image under ``--data`` (default:
300 generated 320x240 JPEG photos) with the cache's own reader threads, taking turns in this one
process; the fastest of ``--repeats`` is reported for each, with their ratio, after checking that
both gave every image the same pixels. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer_core.data.decode import shrink_to_tensor  # noqa: E402
from transfer_core.data.image_cache import DecodedImageCache, LabeledImages  # noqa: E402
from transfer_core.data.images import IMAGE_EXTENSIONS, open_rgb  # noqa: E402
from transfer_core.data.records import ImageRecord  # noqa: E402


class PillowOnlyCache(DecodedImageCache):
    """The cache as it read every file before the JPEG shortcut: through Pillow."""

    def decode(self, path: str) -> torch.Tensor:
        return shrink_to_tensor(open_rgb(path), self.short_side)


def generated_photos(folder: Path, n: int = 300) -> Path:
    """Smooth gradients with noise, saved as ordinary 4:2:0 JPEGs (photo-sized, photo-like to compress)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:240, 0:320]
    for i in range(n):
        base = np.stack([x * rng.uniform(0.3, 0.8), y * rng.uniform(0.3, 1.0), (x + y) * rng.uniform(0.1, 0.4)], axis=2)
        pixels = (base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{i:03d}.jpg", quality=90)
    return folder


def fill(cache_type: type[DecodedImageCache], records: list[ImageRecord], side: int) -> tuple[float, DecodedImageCache]:
    cache = cache_type(side)
    images = LabeledImages(records, {"x": 0}, cache)
    started = time.perf_counter()
    images.warm()
    return time.perf_counter() - started, cache


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a folder of images (searched recursively); default: generated JPEG photos")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--side", type=int, default=256, help="short side the cache keeps (256 for a 224 px model)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data) if args.data else generated_photos(Path(tmp))
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        records = [ImageRecord(str(p), "x") for p in paths]
        times: dict[str, list[float]] = {"pillow": [], "shortcut": []}
        caches = {}
        for _ in range(args.repeats):
            for name, cache_type in (("pillow", PillowOnlyCache), ("shortcut", DecodedImageCache)):
                seconds, caches[name] = fill(cache_type, records, args.side)
                times[name].append(seconds)
        same = all(torch.equal(caches["pillow"].get(str(p)), caches["shortcut"].get(str(p))) for p in paths)
    pillow, shortcut = min(times["pillow"]), min(times["shortcut"])
    print(f"{len(paths)} images from {args.data or 'generated JPEGs'}, short side {args.side}, fastest of {args.repeats}")
    print(f"Pillow only: {pillow * 1000:.1f} ms   with the JPEG shortcut: {shortcut * 1000:.1f} ms   "
          f"ratio {pillow / shortcut:.2f}x   identical pixels: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
