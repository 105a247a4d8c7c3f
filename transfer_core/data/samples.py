"""Built-in sample datasets: one offline, two downloaded on demand.

The offline sample renders scikit-learn's bundled handwritten digits (real scans, 8x8 grey
levels) to PNG files in ``class/image`` folders, so a first run needs nothing but the
installed packages. The larger samples are public photo sets fetched when online; offline
they fail with one sentence instead of a stack trace.
"""

from __future__ import annotations

import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .archives import extract_zip
from .sources import dataset_root
from ..errors import WarmstartError

__all__ = ["SAMPLES", "Sample", "prepare_sample"]


@dataclass(frozen=True)
class Sample:
    key: str
    title: str
    description: str
    offline: bool
    url: str | None = None
    images: int = 0


SAMPLES: dict[str, Sample] = {
    s.key: s
    for s in (
        Sample(
            "digits",
            "Handwritten digits (offline)",
            "Scans of handwritten digits 0-9 from scikit-learn, 30 per class. Trains in seconds.",
            offline=True,
            images=300,
        ),
        Sample(
            "ants_bees",
            "Ants and bees (download, 45 MB)",
            "The PyTorch transfer-learning tutorial's photos: about 240 training and 150 validation images.",
            offline=False,
            url="https://download.pytorch.org/tutorial/hymenoptera_data.zip",
            images=397,
        ),
        Sample(
            "flowers",
            "Flowers (download, 220 MB)",
            "TensorFlow's flower photos: 3,670 images of daisies, dandelions, roses, sunflowers and tulips.",
            offline=False,
            url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
            images=3670,
        ),
    )
}


def _render_digits(dest: Path, per_class: int, size: int) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts = {label: 0 for label in range(10)}
    for image, label in zip(digits.images, digits.target):
        label = int(label)
        if counts[label] >= per_class:
            continue
        # 0..16 ink levels → dark ink on white paper, enlarged smoothly.
        pixels = (255 - image / 16.0 * 255).clip(0, 255).astype(np.uint8)
        picture = Image.fromarray(pixels, "L").resize((size, size), Image.Resampling.BICUBIC).convert("RGB")
        folder = dest / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"digit_{label}_{counts[label]:03d}.png")
        counts[label] += 1


def _download(sample: Sample, dest: Path, timeout: float) -> None:
    archive = dest.with_suffix(".download")
    try:
        with urllib.request.urlopen(sample.url, timeout=timeout) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        archive.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise WarmstartError(
            f"Could not download the '{sample.title}' sample ({reason}); this machine seems offline, "
            "so use the offline digits sample or upload your own images."
        ) from None
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if sample.url.endswith(".zip"):
        extracted, _ = extract_zip(archive, staging)
        extracted.rename(staging / "data")
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(staging / "data", filter="data")
    archive.unlink(missing_ok=True)
    staging.rename(dest)


def prepare_sample(key: str, root: str | Path, per_class: int = 30, size: int = 64, timeout: float = 20.0) -> Path:
    """Make a sample dataset available under ``root`` and return its folder (idempotent).

    Raises:
        WarmstartError: for an unknown sample, or when a download is needed and fails.
    """
    if key not in SAMPLES:
        raise WarmstartError(f"Unknown sample '{key}'; choose one of: {', '.join(SAMPLES)}.")
    sample = SAMPLES[key]
    dest = Path(root) / key
    done = dest / ".complete"
    if not done.exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if sample.offline:
            _render_digits(dest / "data", per_class, size)
        else:
            _download(sample, dest, timeout)
        done.touch()
    return dataset_root(dest / "data")
