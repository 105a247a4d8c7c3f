"""Weight averaging: validate and keep an exponential moving average (EMA) of the weights.

Fine-tuning with a small batch makes the weights wander around a good region from step to step;
an average of recent weights usually sits nearer its middle than any single step does, and
generalises a little better (Polyak averaging; timm's ``ModelEma``). It costs one extra copy of the
parameters and one interpolation per step, and no extra forward pass.

What the run does with it:

- After every optimiser step the average moves toward the live weights:
  ``average = decay * average + (1 - decay) * live``.
- The decay grows with the number of steps, ``decay_t = min(ema_decay, t / (t + 3))``, so a short
  run still averages. With that schedule step ``s`` weighs in proportion to ``s²``: the starting
  weights and the first noisy steps fade out and the last third of the steps so far carries 70 % of
  the weight. A long run reaches the cap ``ema_decay`` (0.999: the last ~1,000 steps) after about
  3,000 steps. A fixed 0.999 from the first step would leave a 50-step run almost at its starting
  weights.
- Validation runs on the average: it is copied into the model just before validation and the live
  weights are put back just after the callbacks that read the result (the checkpoint, early
  stopping), so the best checkpoint is chosen among averaged weights, and the saved model is the
  averaged one, while training continues from the live weights.
- BatchNorm statistics are not averaged: the average is validated with the live model's running
  statistics (themselves a moving average). In a multi-process run those are rank 0's, shared with
  every rank before validation, so all ranks validate the same model without another collective.
- Only parameters that train at a step are averaged; a frozen one equals its average already.
- The average and the step count are this callback's state, saved in the resume file, so a resumed
  run continues with the same average.
- It averages the network the trainer built, never a DistributedDataParallel wrapper around it, so
  the names match the saved checkpoint and every rank holds the same average.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..config import TrainConfig
from .callbacks import Callback

if TYPE_CHECKING:
    from .loop import Loop, StepOutput

__all__ = ["WeightAveraging", "averaging_decay", "weight_averaging"]

_RAMP = 3  # decay t / (t + 3): step s weighs in proportion to s² (see the module docstring)


def averaging_decay(step: int, max_decay: float) -> float:
    """The decay used at the ``step``-th update (1-based): ``min(max_decay, step / (step + 3))``."""
    return min(max_decay, step / (step + _RAMP))


class WeightAveraging(Callback):
    """Keeps an exponential moving average of ``model``'s parameters and validates it in their place.

    Args:
        model: the network being trained (not a DistributedDataParallel wrapper).
        max_decay: the longest memory the average reaches (``TrainConfig.ema_decay``).
    """

    name = "weight_averaging"

    def __init__(self, model: nn.Module, max_decay: float) -> None:
        self.model, self.max_decay = model, max_decay
        self.steps = 0
        self.average: dict[str, torch.Tensor] | None = None
        self._params = list(model.named_parameters())
        self._live: list[torch.Tensor] | None = None  # the live weights while the average is in the model

    def on_fit_start(self, loop: Loop) -> None:
        # After the head warm-up (an earlier callback) and after a resume loaded the saved average.
        if self.average is None:
            self.average = {name: p.detach().clone() for name, p in self._params}

    def on_train_batch_end(self, loop: Loop, output: StepOutput) -> None:
        assert self.average is not None
        self.steps += 1
        weight = 1.0 - averaging_decay(self.steps, self.max_decay)
        for name, p in self._params:
            if p.requires_grad:
                self.average[name].lerp_(p.detach(), weight)

    def on_validation_start(self, loop: Loop) -> None:
        assert self.average is not None
        self._live = [p.detach().clone() for _, p in self._params]
        for name, p in self._params:
            p.detach().copy_(self.average[name])  # in place on the parameter's own storage, outside autograd

    def on_validation_end(self, loop: Loop, record: dict[str, float]) -> None:
        # Runs after the checkpoint and early stopping read the averaged result, before the resume
        # file saves the model: training goes on from (and a resume restarts from) the live weights.
        if self._live is not None:
            for (_, p), live in zip(self._params, self._live):
                p.detach().copy_(live)
            self._live = None

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        saved = state["average"]
        if saved is not None:  # in the model's device and memory layout
            self.average = {name: torch.empty_like(p).copy_(saved[name]) for name, p in self._params}


def weight_averaging(config: TrainConfig, model: nn.Module) -> list[Callback]:
    """The run's averaging callback, as a list to splice into the trainer's: empty when ``ema_decay`` is 0."""
    return [WeightAveraging(model, config.ema_decay)] if config.ema_decay > 0 else []
