"""Decode each image once, keep it as a small uint8 tensor, and serve it to training.

JPEG decoding dominates a small-model epoch on a CPU. Images are decoded, oriented and
resized (short side a little above the training size, so random crops still have room) the
first time they are read, and kept in memory up to a byte budget; past the budget the rest
stream from disk on every read, which is slower but never runs out of memory.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.utils.data import Dataset

from ..memory import cache_budget
from ..parallel import take_turns
from .decode import read_image_tensor
from .images import ImageReadError
from .records import ImageRecord

__all__ = ["DecodedImageCache", "LabeledImages", "clear_image_caches", "image_cache_budget", "shared_image_cache"]

DEFAULT_CACHE_BYTES = 4 * 1024**3  # a cache built directly; the shared ones size themselves (image_cache_budget)
IMAGE_CACHE_SHARE = 0.4  # of the available memory: room for features, the model and the rest of the machine


class DecodedImageCache:
    """Memory-bounded store of decoded, resized images as uint8 CHW tensors.

    Thread-safe: the app's worker thread and a preview may read at once.
    """

    def __init__(self, short_side: int, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.short_side = short_side
        self.max_bytes = max_bytes
        self.bytes_used = 0
        self.streamed = 0  # reads that could not be cached because the budget was full
        self._items: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def decode(self, path: str) -> torch.Tensor:
        """Decode and resize one file without caching it."""
        return read_image_tensor(path, self.short_side)

    @staticmethod
    def _key(path: str) -> str:
        """The path plus size and modification time, so a replaced file is decoded again."""
        try:
            stat = os.stat(path)
        except OSError:
            raise ImageReadError("file not found") from None
        return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"

    def get(self, path: str) -> torch.Tensor:
        """The cached tensor for ``path``, decoding it on first use. Raises ImageReadError."""
        key = self._key(path)
        tensor = self._items.get(key)
        if tensor is not None:
            return tensor
        tensor = self.decode(path)
        with self._lock:
            if key in self._items:
                return self._items[key]
            if self.bytes_used + tensor.numel() <= self.max_bytes:
                self._items[key] = tensor
                self.bytes_used += tensor.numel()
            else:
                self.streamed += 1
        return tensor

    @property
    def fits_everything(self) -> bool:
        return self.streamed == 0


class LabeledImages(Dataset):
    """(image tensor, class index) pairs read through a :class:`DecodedImageCache`."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        class_to_idx: dict[str, int],
        cache: DecodedImageCache,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.records = list(records)
        self.targets = [class_to_idx[r.label] for r in self.records]
        self.cache = cache
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.cache.get(self.records[i].path)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[i]

    def warm(
        self,
        on_error: Callable[[ImageRecord, ImageReadError], None] | None = None,
        on_read: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Decode every image once (filling the cache); returns the indices that failed.

        ``on_read`` is called with the number of images read so far (failed ones included), about
        every quarter of a second and at the end; ``on_error`` then gets each failure, in order.
        """
        def read(i: int) -> ImageReadError | None:
            try:
                self.cache.get(self.records[i].path)
            except ImageReadError as exc:
                return exc
            return None

        # Decoding releases the GIL: one reader per core reads a folder about twice as fast on two.
        readers = min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=readers, thread_name_prefix="read-images") as pool:
            errors = take_turns(pool, readers, len(self.records), read, on_progress=on_read)
        failed = [i for i, error in enumerate(errors) if error is not None]
        if on_error:
            for i in failed:
                on_error(self.records[i], errors[i])  # type: ignore[arg-type]
        return failed

    def subset(self, indices: Sequence[int]) -> LabeledImages:
        """A copy holding only the given positions, in that order (one process's share of a multi-process run)."""
        out = copy.copy(self)
        out.records = [self.records[i] for i in indices]
        out.targets = [self.targets[i] for i in indices]
        return out

    def without(self, indices: Sequence[int]) -> LabeledImages:
        """A copy without the given positions (e.g. files that failed to decode)."""
        drop = set(indices)
        return self.subset([i for i in range(len(self.records)) if i not in drop])

    def joined(self, others: Sequence[LabeledImages]) -> LabeledImages:
        """This dataset's images then each of ``others``', all read with this one's transform (so the
        others' must do the same to an image) from the decoded-image cache they share."""
        if any(other.cache is not self.cache for other in others):
            raise ValueError("Datasets read from different decoded-image caches cannot be joined.")
        out = copy.copy(self)
        out.records = self.records + [r for other in others for r in other.records]
        out.targets = self.targets + [t for other in others for t in other.targets]
        return out

    def with_transform(self, transform: Callable[[torch.Tensor], torch.Tensor]) -> LabeledImages:
        out = copy.copy(self)
        out.transform = transform
        return out


_SHARED: dict[int, DecodedImageCache] = {}
_SHARED_LOCK = threading.Lock()


def image_cache_budget(available: int | None = None) -> int:
    """Bytes of decoded images a shared cache may keep: 40 % of the memory available now (at least
    256 MiB), or ``WARMSTART_IMAGE_CACHE_BYTES``. A dataset smaller than that takes only what it needs;
    a larger one streams the rest from disk instead of pushing the machine into swap."""
    return cache_budget(IMAGE_CACHE_SHARE, 256 * 1024**2, "WARMSTART_IMAGE_CACHE_BYTES", available)


def shared_image_cache(short_side: int) -> DecodedImageCache:
    """The process-wide cache for one resize target, so a second run on the same data decodes nothing."""
    with _SHARED_LOCK:
        if short_side not in _SHARED:
            others = sum(cache.bytes_used for cache in _SHARED.values())  # already taken from what is available
            _SHARED[short_side] = DecodedImageCache(short_side, max(0, image_cache_budget() - others))
        return _SHARED[short_side]


def clear_image_caches() -> None:
    """Drop every shared decoded-image cache (benchmarks use it for a cold start)."""
    with _SHARED_LOCK:
        _SHARED.clear()
