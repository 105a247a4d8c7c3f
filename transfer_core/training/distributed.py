"""One run on several processes: the process group, sharding and gathering.

Warmstart scales the way timm's ``train.py``, torchvision's reference scripts and Lightning do:
``torchrun`` starts N copies of the same command, each learns its rank from the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), and they train one model with
DistributedDataParallel (NCCL between GPUs, Gloo between CPU processes)::

    torchrun --standalone --nproc-per-node=2 -m transfer_core train DATA --out RUN

What this module decides, so the rest of the engine does not have to:

- **Who writes.** Only rank 0 writes the run folder, events, TensorBoard and exports; the other
  ranks compute the same things and wait at barriers.
- **Who reads which images.** Work that is done once (frozen-feature extraction, validation) is
  split by position, ``rank::world_size``, and gathered back into the original order, so N
  processes extract N times faster and every image counts exactly once (no padded duplicates).
- **What a batch means.** ``batch_size`` is the global batch: every rank walks the same shuffled
  order (the run's generators are seeded identically everywhere) and takes its slice of each
  global batch (:class:`ShardedBatchSampler`), so results do not depend on N beyond floating-point
  noise.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler, Subset, TensorDataset

from ..errors import WarmstartError
from ..runs.store import HeldWrites

T = TypeVar("T")

__all__ = ["SINGLE", "DiscardedWrites", "Distributed", "ShardedBatchSampler", "SynchronisedForward", "distributed_from_env", "take"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: ``rank`` of ``world_size`` (1 = an ordinary single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and reports."""
        return self.rank == 0

    def from_main(self, make: Callable[[], T]) -> T:
        """``make()`` on rank 0 and its (picklable) result on every rank; a WarmstartError raised
        there is raised on every rank, so no rank waits for an answer that never comes."""
        if not self.enabled:
            return make()
        box: list[Any] = [None, None]
        if self.is_main:
            try:
                box[0] = make()
            except WarmstartError as exc:
                box[1] = str(exc)
        dist.broadcast_object_list(box, src=0)
        if box[1] is not None:
            raise WarmstartError(box[1])
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shard(self, n: int) -> list[int]:
        """The positions of ``n`` items this rank handles: ``rank, rank + world, ...``."""
        return list(range(self.rank, n, self.world_size))

    def gather_rows(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """Rows computed for :meth:`shard` on every rank → all ``n`` rows in their original order.

        Shards differ in length by at most one row; they are padded to equal length for the
        collective and the padding is dropped, so no row is counted twice.
        """
        if not self.enabled:
            return local
        longest = -(-n // self.world_size)
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded.to(self._collective_device()))
        out = local.new_empty((n, *local.shape[1:]))
        for rank, part in enumerate(parts):
            rows = range(rank, n, self.world_size)
            out[list(rows)] = part[: len(rows)].to(out.device)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any: a stop asked of one process stops all
        at the same step (a rank that stopped alone would leave the others waiting forever)."""
        if not self.enabled:
            return flag
        return self.sum([float(flag)])[0] > 0

    def share_buffers(self, module: nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics). Each rank updates them
        from its own slice of the batch; DDP re-broadcasts them only at the next forward, so
        without this the ranks would validate and save slightly different models after an epoch."""
        if not self.enabled:
            return
        device = self._collective_device()
        for buffer in module.buffers():
            moved = buffer.data.to(device)
            dist.broadcast(moved, src=0)
            buffer.data.copy_(moved)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (epoch totals: loss, correct, seen)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def _collective_device(self) -> torch.device:
        """NCCL moves CUDA tensors; Gloo moves CPU tensors."""
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


SINGLE = Distributed()


class DiscardedWrites(HeldWrites):
    """The run-folder writes of a rank other than 0: none (rank 0 writes for all of them)."""

    def write(self, name: str, data: bytes) -> None:
        """Dropped: rank 0 writes the same file."""

    def write_with(self, name: str, write: Callable[[Path], None], as_bytes: Callable[[], bytes]) -> None:
        """Dropped: rank 0 writes the same file."""

    def append_line(self, line: str) -> None:
        """Dropped: rank 0 appends the same event."""


def distributed_from_env(device_type: str) -> Distributed:
    """The process group a launcher set up, joining it on first use.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) this initialises the default
    process group, NCCL for CUDA and Gloo otherwise; a process group created by the caller (a test
    with a file rendezvous, say) is used as it is. Anything else is a single process.
    """
    if dist.is_available() and dist.is_initialized():
        return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not dist.is_available():
        return SINGLE
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank)


class ShardedBatchSampler(Sampler[list[int]]):
    """Global batches of ``batch_size`` from ``sampler``; yields this rank's slice of each.

    Every rank draws the same order (same generator seed), so together the ranks see exactly
    the batches one process would. For each slice it records this rank's *share* of the global
    batch, ``(images of its own, images in the global batch)``, which the loop reads with
    :meth:`next_share` to weight its loss: DistributedDataParallel averages gradients over ranks,
    and weighting each rank's mean loss by ``own * world_size / global`` makes that average the
    global batch's mean even when a short last batch does not split evenly. A rank left without
    images in a last batch smaller than the world gets one repeated image with weight zero: every
    rank must join each gradient all-reduce.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, distributed: Distributed) -> None:
        self.sampler, self.batch_size, self.distributed = sampler, batch_size, distributed
        self._shares: deque[tuple[int, int]] = deque()

    def __iter__(self) -> Iterator[list[int]]:
        self._shares.clear()
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield self._slice(batch)
                batch = []
        if batch:
            yield self._slice(batch)

    def _slice(self, batch: list[int]) -> list[int]:
        own = batch[self.distributed.rank :: self.distributed.world_size]
        self._shares.append((len(own), len(batch)))
        return own or batch[:1]

    def next_share(self) -> tuple[int, int]:
        """(own images, global batch size) of the next batch the loop trains on, in order."""
        return self._shares.popleft()

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)  # type: ignore[arg-type]


def take(inputs, indices: list[int]):
    """The items of ``inputs`` (a tensor, a dataset of decoded images, of tensors, or any dataset) at ``indices``."""
    if isinstance(inputs, torch.Tensor):
        return inputs[indices]
    if isinstance(inputs, TensorDataset):
        return TensorDataset(*(t[indices] for t in inputs.tensors))
    if hasattr(inputs, "subset"):
        return inputs.subset(indices)  # keeps what the inference path knows about the images (their transform)
    return Subset(inputs, indices)


class SynchronisedForward:
    """``module`` under DistributedDataParallel, wrapped again whenever which parameters train changes.

    DDP records at construction which parameters need gradients and all-reduces only those, so a
    layer unfrozen later (gradual or partial unfreezing) would never be synchronised and the
    ranks would drift apart without an error. Re-wrapping at each change of the trainable set
    (once per unfreezing stage; a cheap check of the ``requires_grad`` flags per step) fixes that
    and re-broadcasts rank 0's weights. The alternative, a learning rate of 0 for frozen groups under
    one wrapper, would make every step compute and all-reduce gradients for layers that never move.
    """

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        self.module, self.device = module, device
        self._trainable: tuple[bool, ...] | None = None
        self._wrapped: nn.Module | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        trainable = tuple(p.requires_grad for p in self.module.parameters())
        if trainable != self._trainable:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._wrapped = DistributedDataParallel(self.module, device_ids=ids)
            self._trainable = trainable
        return self._wrapped(x)  # type: ignore[misc]
