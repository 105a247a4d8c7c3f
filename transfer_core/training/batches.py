"""Training batches from a dataset, fetched a whole batch at a time when the inputs are tensors.

A DataLoader normally fetches a batch item by item and stacks the items again. For a run on
cached inputs (a frozen backbone's features, a frozen prefix's activations), that per-item
Python work *is* the epoch: the head's own step takes a fraction of it. A
:class:`~torch.utils.data.TensorDataset` can instead be indexed with the batch's list of
positions, one gather per tensor. The sampler, its generator and so the batches and their order
stay exactly those of the per-item loader, so a run's results do not depend on which path ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, TensorDataset

__all__ = ["batch_loader"]


def batch_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    generator: torch.Generator,
    sampler: Sampler[int] | None = None,
    batch_sampler: Iterable[list[int]] | None = None,
    pin_memory: bool = False,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """A loader over ``dataset`` in batches of ``batch_size`` drawn by ``sampler`` (default: a
    shuffle from ``generator``), or in the batches ``batch_sampler`` yields.

    Tensors are gathered a batch at a time (see the module's docstring); any other dataset
    goes through the usual per-item fetch and ``collate_fn``.

    Args:
        dataset: a :class:`TensorDataset` (cached inputs) or any map-style dataset.
        batch_size: items per batch (ignored when ``batch_sampler`` is given).
        generator: the run's sampler generator (the loader also draws its base seed from it).
        sampler: the order to draw items in; default a shuffle from ``generator``.
        batch_sampler: whole batches of positions instead (one rank's share in a multi-process run).
        pin_memory: pin batches for a faster copy to a GPU.
        collate_fn: how items become a batch, for datasets other than tensors.
    """
    if batch_sampler is None and sampler is None:
        sampler = RandomSampler(range(len(dataset)), generator=generator)  # what shuffle=True would draw
    if isinstance(dataset, TensorDataset) and collate_fn is None:
        batches = batch_sampler if batch_sampler is not None else BatchSampler(sampler, batch_size, drop_last=False)
        # batch_size=None: each "index" the sampler yields is a whole batch's positions, which
        # TensorDataset answers with one indexing per tensor.
        return DataLoader(dataset, batch_size=None, sampler=batches, generator=generator, pin_memory=pin_memory)
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, generator=generator, pin_memory=pin_memory, collate_fn=collate_fn)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, generator=generator, pin_memory=pin_memory, collate_fn=collate_fn)
