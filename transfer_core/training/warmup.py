"""Head warm-up: fit the new head alone on frozen features before fine-tuning the backbone.

A randomly initialised head sends large, meaningless gradients into pretrained layers during
the first steps of fine-tuning. Fitting it first on features computed once (a linear probe,
seconds) means fine-tuning starts from a sensible classifier. The warm-up is the same
training loop run over the head alone; its state (done or not) survives a resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .batches import batch_loader
from .callbacks import Callback
from ..randomness import RunRandomness

if TYPE_CHECKING:
    from .loop import Loop

__all__ = ["HeadWarmup"]

Features = Callable[[], "tuple[torch.Tensor, list[int]] | None"]


class HeadWarmup(Callback):
    """Before the first epoch, train ``head`` for ``epochs`` epochs on the features ``features()`` returns.

    Args:
        head: the classifier to warm up.
        features: computes (features, class indices) of the training images, or None when
            they would not fit in memory (then there is no warm-up).
        epochs, lr, weight_decay, batch_size: the warm-up's own recipe (AdamW).
        seed: seeds the warm-up's shuffling and dropout.
        on_start: told the number of images once the features are ready.
    """

    name = "head_warmup"

    def __init__(
        self, head: nn.Module, features: Features, *, epochs: int, lr: float, weight_decay: float,
        batch_size: int, seed: int, on_start: Callable[[int], None] | None = None,
    ) -> None:
        self.head, self.features, self.epochs = head, features, epochs
        self.lr, self.weight_decay, self.batch_size, self.seed = lr, weight_decay, batch_size, seed
        self.on_start = on_start
        self.done = False

    def on_fit_start(self, loop: Loop) -> None:
        if self.done or self.epochs <= 0:
            return
        self.done = True
        found = self.features()
        if found is None:
            return
        features, targets = found
        if self.on_start is not None:
            self.on_start(len(features))
        from .loop import Loop, head_only_threads  # the warm-up is an inner run of the same loop

        randomness = RunRandomness(self.seed, loop.device)
        warmup = Loop(
            module=self.head,
            forward=self.head,
            optimizer=torch.optim.AdamW(self.head.parameters(), lr=self.lr, weight_decay=self.weight_decay),
            # The run's own loss on the labels: a distillation loss's teacher logits belong to the run's batches, not these.
            criterion=getattr(loop.criterion, "hard", loop.criterion),
            train_data=batch_loader(TensorDataset(features, torch.tensor(targets)), self.batch_size, generator=randomness.sampler),
            device=loop.device,
            randomness=randomness,
            stop_event=loop.stop_event,
            threads=head_only_threads(loop.device),
        )
        warmup.fit(self.epochs)

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = bool(state.get("done", True))
