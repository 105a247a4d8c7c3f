"""Weights no step of a run changes, kept once on disk and hard-linked into each run folder.

Why: a frozen run's checkpoint is almost all backbone, which no step changes: 18 MB for
EfficientNet-Lite0 (100 MB for ResNet-50), the same bytes in every frozen run on that backbone.
Writing them took 9 to 33 ms of a 0.65 s Lite0 run on a 2-core CPU, and every run took the disk
space again. Instead the run folder gets ``backbone.safetensors``, a hard link to one copy in the
workspace cache, and ``best.safetensors`` keeps only the entries training changes (the new head).
A run folder stays complete on its own: deleting the cache or another run leaves it whole, and
:meth:`~transfer_core.runs.store.RunDir.load_checkpoint` joins the two files. Where the file
system refuses hard links (another disk, some network shares), the run writes its whole
checkpoint as before.

The copy is named after the backbone, its weights' source and their names and shapes, not their
values, so a copy found on disk is compared with the model's weights (once per process, about
4 ms for Lite0) before anything links to it; one that differs is replaced.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..workspace import home
from .held import HeldWrites
from .checkpoint_files import checkpoint_tensors, save_tensors_file
from .store import SHARED_WEIGHTS_FILE, atomic_write

__all__ = ["SHARED_WEIGHTS_FILE", "SharedWeights", "shared_folder"]

_CHECKED: dict[Path, tuple[int, int]] = {}  # copies this process wrote or compared: path -> (inode, mtime)
_LOCK = threading.Lock()


def shared_folder() -> Path:
    """Where the shared copies live (the workspace's cache: deleting it loses no run)."""
    return home() / "cache" / "frozen-weights"


class SharedWeights:
    """The unchanging entries of a run's state (a frozen backbone's), for linking into its folder.

    Args:
        network: names the backbone and its weights
            (:func:`~transfer_core.features.cache.run_network_key`).
        tensors: the entries as the model holds them; read only when the copy is written or compared.
    """

    def __init__(self, network: str, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors
        self.keys = frozenset(tensors)
        layout = "|".join(f"{k}:{tuple(v.shape)}:{v.dtype}" for k, v in sorted(tensors.items()))
        self.path = shared_folder() / f"{hashlib.sha256(f'{network}|{layout}'.encode()).hexdigest()[:24]}.safetensors"

    def link_into(self, held: HeldWrites) -> bool:
        """Link the copy into the run as ``backbone.safetensors``, writing the copy first if there is
        none yet. False when that cannot be done; the run's checkpoint must then hold these weights."""
        inode = self._checked_copy()
        return inode is not None and held.link(SHARED_WEIGHTS_FILE, self.path, inode)

    def _checked_copy(self) -> int | None:
        """The inode of a copy holding exactly these weights, or None when the disk refuses one."""
        with _LOCK:
            try:
                stat = self.path.stat() if self.path.exists() else None
                if stat is not None and _CHECKED.get(self.path) == (stat.st_ino, stat.st_mtime_ns):
                    return stat.st_ino
                if stat is None or not self._same_as(self.path):
                    stat = self._write()
            except OSError:  # a full or read-only disk
                return None
            _CHECKED[self.path] = (stat.st_ino, stat.st_mtime_ns)
            return stat.st_ino

    def _same_as(self, path: Path) -> bool:
        try:
            found = load_file(path)
        except (OSError, SafetensorError):  # damaged: replaced like a differing copy
            return False
        mine = checkpoint_tensors(self.tensors)
        return found.keys() == mine.keys() and all(torch.equal(found[k], v) for k, v in mine.items())

    def _write(self) -> os.stat_result:
        """Write the copy atomically; the status of the file written, so a copy another process puts
        in its place at the same moment is never taken for this one."""
        written: list[os.stat_result] = []

        def write(tmp: Path) -> None:
            save_tensors_file(checkpoint_tensors(self.tensors), tmp)
            written.append(tmp.stat())

        atomic_write(self.path, write)
        return written[0]
