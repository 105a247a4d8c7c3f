"""Memory of activations computed by frozen backbone parts, shared by every process of a workspace.

Features of a frozen pretrained network depend only on the image files, the preprocessing,
the backbone and its weights, and how deep into it they were taken. Keyed by exactly those,
a second run on the same data (another head, more epochs, a shoot-out then a real run)
skips the forward passes entirely, and a changed setting can never reuse a stale entry.

Entries live in memory and in ``$WARMSTART_HOME/feature-cache/`` (one safetensors file per key,
the least recently used removed beyond the byte budget): each run trains in its own process,
so a shoot-out in the app and the run after it share features only through the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import Dataset

from ..memory import cache_budget
from ..models.registry import BackboneSpec, Preprocessing, WeightsSource
from ..workspace import home
from .inference import run_inference

__all__ = [
    "FeatureCache", "encode_cached", "encode_cached_sets", "feature_key", "network_key", "run_feature_key", "run_network_key",
    "shared_feature_cache", "weights_id",
]


def _file_identity(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns


def weights_id(spec: BackboneSpec, pretrained: bool, seed: int) -> str:
    """Names the weights features come from; test and from-scratch networks are random, so seed-dependent."""
    real_weights = pretrained and spec.source is not WeightsSource.LOCAL
    return "pretrained" if real_weights else f"random-seed-{seed}"


def feature_key(
    backbone: str,
    weights: str,
    preprocessing: Preprocessing,
    image_size: int,
    depth: str,
    paths: Sequence[str],
) -> str:
    """A digest of everything that decides the cached tensor's content.

    Args:
        backbone: registry name.
        weights: which weights ("pretrained", or "random-seed-N" for untrained baselines).
        preprocessing: normalisation and resize policy.
        image_size: input size actually used.
        depth: "features" for pooled features, or "stage-N" for the input of stage N.
        paths: the image files, in dataset order (their size and mtime are included).
    """
    description = {
        "backbone": backbone,
        "weights": weights,
        "preprocessing": preprocessing.to_dict(),
        "image_size": image_size,
        "depth": depth,
        "files": [_file_identity(p) for p in paths],
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def network_key(backbone: str, weights: str) -> str:
    """Names a network and its weights (not the images): the key of its exported fast forward."""
    return f"{backbone}|{weights}"


def run_network_key(config, spec: BackboneSpec) -> str:
    """:func:`network_key` of a :class:`~transfer_core.config.TrainConfig`'s starting backbone."""
    return network_key(config.backbone, weights_id(spec, config.pretrained, config.seed))


def run_feature_key(config, spec: BackboneSpec, preprocessing: Preprocessing, depth: str, paths: Sequence[str]) -> str:
    """:func:`feature_key` for a :class:`~transfer_core.config.TrainConfig`'s backbone and weights.

    The trainer, the LR finder and the embedding map all key through here, so they share cache entries.
    """
    weights = weights_id(spec, config.pretrained, config.seed)
    return feature_key(config.backbone, weights, preprocessing, preprocessing.input_size, depth, paths)


class FeatureCache:
    """A byte-bounded LRU of tensors in memory, backed by a folder when ``folder`` gives one; thread-safe.

    Args:
        max_bytes: budget of the memory part and, separately, of the folder.
        folder: called at each use (the workspace can change between calls, as in tests).
    """

    def __init__(self, max_bytes: int, folder: Callable[[], Path] | None = None) -> None:
        self.max_bytes = max_bytes
        self.folder = folder
        self.bytes_used = 0
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            tensor = self._items.get(key)
            if tensor is not None:
                self._items.move_to_end(key)
                return tensor
        tensor = self._read(key)
        if tensor is not None:
            self._remember(key, tensor)
        return tensor

    def put(self, key: str, tensor: torch.Tensor) -> None:
        if tensor.numel() * tensor.element_size() > self.max_bytes:
            return
        self._remember(key, tensor)
        self._write(key, tensor)

    def _remember(self, key: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        with self._lock:
            if key in self._items:
                return
            while self._items and self.bytes_used + size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self.bytes_used -= evicted.numel() * evicted.element_size()
            self._items[key] = tensor
            self.bytes_used += size

    # -- the folder: an optimisation, so any error there is a cache miss, never a failed run ----
    def _path(self, key: str) -> Path | None:
        return self.folder() / f"{key}.safetensors" if self.folder is not None else None

    def _read(self, key: str) -> torch.Tensor | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            tensor = load_file(str(path))["features"]
            os.utime(path)  # recently used: pruned last
            return tensor
        except Exception:
            path.unlink(missing_ok=True)
            return None

    def _write(self, key: str, tensor: torch.Tensor) -> None:
        path = self._path(key)
        if path is None or path.exists():
            return
        with contextlib.suppress(OSError):  # a full or read-only workspace: the features stay in memory, only not shared
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                save_file({"features": tensor.detach().to("cpu").contiguous()}, tmp)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
            self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        """Delete the least recently used files until the folder fits the budget."""
        files = sorted(folder.glob("*.safetensors"), key=lambda f: f.stat().st_mtime)
        total = sum(f.stat().st_size for f in files)
        for oldest in files:
            if total <= self.max_bytes:
                break
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget every entry, in memory and in the folder."""
        with self._lock:
            self._items.clear()
            self.bytes_used = 0
        path = self._path("x")
        if path is not None and path.parent.is_dir():
            for stale in path.parent.glob("*.safetensors"):
                stale.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._items)


# Features are small next to images (50,000 x 1,280 floats = 256 MB): 15 % of the memory available
# at start-up, at least 512 MiB, or WARMSTART_FEATURE_CACHE_BYTES; kept in memory and on disk.
_SHARED = FeatureCache(cache_budget(0.15, 512 * 1024**2, "WARMSTART_FEATURE_CACHE_BYTES"), folder=lambda: home() / "feature-cache")


def shared_feature_cache() -> FeatureCache:
    return _SHARED


def encode_cached(
    backbone: nn.Module,
    dataset: Dataset,
    key: str,
    device: torch.device,
    depth: int | None = None,
    batch_size: int = 64,
    max_bytes: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    weights: str | None = None,
    on_runtime: Callable[[str], None] | None = None,
) -> torch.Tensor | None:
    """Output of the frozen ``backbone`` over ``dataset`` (images, labels) once, through the shared cache.

    Args:
        depth: None for pooled features, N for the input of stage N (``forward_prefix``).
        max_bytes: give up (return None) when the result would exceed this.
        on_batch: called with the number of images done so far.
        weights: names the backbone and its weights (see :func:`network_key`); lets a CPU run
            the backbone through ONNX Runtime.
        on_runtime: told which runtime computed the features (nothing on a cache hit).
    """
    found = encode_cached_sets(
        backbone, [dataset], [key], device, join=lambda datasets: datasets[0], depth=depth, batch_size=batch_size,
        max_bytes=max_bytes, on_batch=on_batch, weights=weights, on_runtime=on_runtime,
    )
    return None if found is None else found[0]


def encode_cached_sets(
    backbone: nn.Module,
    datasets: Sequence[Dataset],
    keys: Sequence[str],
    device: torch.device,
    *,
    join: Callable[[list[Dataset]], Dataset],
    depth: int | None = None,
    batch_size: int = 64,
    max_bytes: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    weights: str | None = None,
    on_runtime: Callable[[str], None] | None = None,
) -> list[torch.Tensor] | None:
    """:func:`encode_cached` for several datasets, each cached under its own key.

    The datasets not cached yet run through the network as one pass. On a CPU that keeps the ONNX
    Runtime workers on one stream of work: with a pass per set both cores sat idle about 5 ms
    between a frozen run's validation and training images while one set's features were gathered
    and the next set's pass was set up (flowers-mini, a 0.6 s run). Meant for small outputs (pooled
    features): when several sets ran together, each set's rows are copied out of the pass's output,
    so that each cached tensor owns its memory and the cache's byte count stays true.

    Args:
        datasets: the sets, each of (image, label) items.
        keys: each set's cache key, in the same order.
        join: the sets not cached yet, in order → one dataset of their items one after the other.
        max_bytes: give up (return None) when any one set's output would exceed this.
        on_batch: hears the images done in all, the cached sets' counted first.
        depth, batch_size, weights, on_runtime: as for :func:`encode_cached`.

    Returns:
        One tensor per dataset, or None when ``max_bytes`` was exceeded (nothing new is cached then).
    """
    found: list[torch.Tensor | None] = [_SHARED.get(key) for key in keys]
    missing = [i for i, tensor in enumerate(found) if tensor is None]
    reused = sum(len(tensor) for tensor in found if tensor is not None)
    if on_batch and reused:
        on_batch(reused)
    if missing:
        sizes = [len(datasets[i]) for i in missing]
        if max_bytes is not None and max(sizes) > 0:
            # Every row has the same size, so "each set within max_bytes" is the whole pass within this:
            max_bytes = max_bytes * sum(sizes) // max(sizes)
        forward = backbone if depth is None else (lambda x: backbone.forward_prefix(x, depth))
        frozen_key = f"{weights}|depth={depth}" if weights else None
        result = run_inference(
            forward, join([datasets[i] for i in missing]), device, module=backbone, batch_size=batch_size, max_bytes=max_bytes,
            on_batch=(lambda done: on_batch(reused + done)) if on_batch else None, frozen_key=frozen_key, on_runtime=on_runtime,
        )
        if result is None:
            return None
        parts = result.split(sizes) if len(missing) > 1 else (result,)
        for i, part in zip(missing, parts):
            found[i] = part.clone() if len(missing) > 1 else part
            _SHARED.put(keys[i], found[i])
    return [tensor for tensor in found if tensor is not None]
