"""Random numbers a run owns, so nothing else in the process can change its results.

The samplers take a :class:`torch.Generator` directly. Three things a run needs cannot: the
torchvision v2 transforms, dropout and a fresh layer's initialisation all draw from torch's
process-wide generator. A Streamlit server shares that generator between every session's
thread (augmentation previews, the shoot-out, the LR finder), so a run that simply reseeded
it would get whatever numbers were left after the page's work.

:class:`RunRandomness` keeps the run's own generator state and lends it to the process-wide
generator only inside :meth:`RunRandomness.scope`, under one process-wide lock; on leaving, it
takes its advanced state back and restores what was there before. Every engine function that
draws from the process-wide generator does so inside a scope (:func:`seeded_scope` for
one-off work), so runs with the same seed give the same numbers whatever else is going on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["RunRandomness", "seeded_scope"]

_PROCESS_GENERATOR_LOCK = threading.RLock()


def _seed_for(*parts: int) -> int:
    """One 63-bit seed from several integers (a run seed and an epoch, say), stable across versions."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 31
    return value & 0x7FFFFFFFFFFFFFFF


class RunRandomness:
    """The generators of one run: ``sampler`` for shuffling, and a private state for everything else.

    Args:
        seed: the run's seed.
        device: the training device; on CUDA its generator is lent and taken back as well.
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        self.seed = seed
        self.device = torch.device(device)
        self.sampler = torch.Generator()
        self._ops = torch.Generator()
        self._cuda = torch.Generator(device=self.device) if self.device.type == "cuda" else None
        self.reseed(0)

    def reseed(self, *parts: int) -> None:
        """Restart every generator from the run seed and ``parts`` (the epoch, say).

        Seeding each epoch from (seed, epoch) is what lets a run resumed after epoch k draw
        exactly what the uninterrupted run drew in epoch k + 1.
        """
        self.sampler.manual_seed(_seed_for(self.seed, 1, *parts))
        self._ops.manual_seed(_seed_for(self.seed, 2, *parts))
        if self._cuda is not None:
            self._cuda.manual_seed(_seed_for(self.seed, 3, *parts))

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Run the block with this run's numbers in torch's process-wide generator(s)."""
        with _PROCESS_GENERATOR_LOCK:
            saved = torch.get_rng_state()
            saved_cuda = torch.cuda.get_rng_state(self.device) if self._cuda is not None else None
            torch.set_rng_state(self._ops.get_state())
            if self._cuda is not None:
                torch.cuda.set_rng_state(self._cuda.get_state(), self.device)
            try:
                yield
            finally:
                self._ops.set_state(torch.get_rng_state())
                torch.set_rng_state(saved)
                if self._cuda is not None:
                    self._cuda.set_state(torch.cuda.get_rng_state(self.device))
                    torch.cuda.set_rng_state(saved_cuda, self.device)


@contextmanager
def seeded_scope(seed: int) -> Iterator[None]:
    """One-off seeded work (building a model, a preview) that neither disturbs nor is disturbed by a run."""
    with RunRandomness(seed).scope():
        yield
