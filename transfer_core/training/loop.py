"""The one training loop: ``fit`` → ``train_one_epoch`` / ``validate``, with callbacks.

Every optimiser step in the engine happens here: a run's epochs, the head warm-up before
fine-tuning and the LR range test are all this loop with different callbacks. What differs
between them (which module, which inputs, what happens after each step) is passed in;
the loop itself only steps, measures and calls hooks.

Random numbers: batches are fetched and run forward inside the run's
:meth:`~transfer_core.training.randomness.RunRandomness.scope`, because torchvision's
transforms, mixup/cutmix and dropout draw from torch's process-wide generator. The
generators restart from (seed, epoch) at each epoch, so a resumed run repeats exactly.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..features.inference import autocast_for, run_inference, to_device
from ..parallel import openmp_threads
from .callbacks import Callback, CallbackList
from .distributed import SINGLE, Distributed, take
from ..randomness import RunRandomness

__all__ = ["SMALL_STEP_THREADS", "Loop", "StepOutput", "head_only_threads", "loss_and_accuracy"]

Batch = Any
PreparedBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, loss target, class indices
SMALL_STEP_THREADS = 1  # ``threads`` for a loop that trains only a head on cached features on a CPU


def head_only_threads(device: torch.device) -> int | None:
    """``threads`` for a loop that trains only a new head on cached features (see :class:`Loop`)."""
    return SMALL_STEP_THREADS if device.type == "cpu" else None


@dataclass(frozen=True)
class StepOutput:
    """What one optimiser step produced, as callbacks see it."""

    step: int  # 0-based within the epoch
    loss: float
    lr: float


def loss_and_accuracy(probabilities: np.ndarray, targets: list[int]) -> tuple[float, float]:
    """Cross-entropy and accuracy of softmax outputs against class indices."""
    probs = torch.as_tensor(probabilities, dtype=torch.float64)
    y = torch.as_tensor(targets)
    loss = torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), y).item()
    accuracy = (probs.argmax(1) == y).double().mean().item()
    return float(loss), float(accuracy)


class Loop:
    """Train ``module`` with ``optimizer`` on ``train_data``; validate after each epoch if given data.

    Args:
        module: the network being trained (its mode is set here; its state goes into resume files).
        forward: what runs on a prepared input batch (the whole model, or only its trainable part).
        optimizer, criterion: the usual.
        train_data: an iterable of batches (a DataLoader), re-iterated every epoch.
        device: where batches go.
        scheduler: stepped after every optimiser step, if given.
        prepare_batch: raw batch → (inputs, loss target, class indices) on the device; augmentation
            on the device and mixup happen here. Default: first and last items of the batch.
        penalty: an extra loss term (L2-SP) computed from the module.
        grad_clip: largest gradient norm (0 = no clipping).
        val_inputs, val_targets, val_forward: validation inputs (a tensor or a dataset), their
            class indices and the forward to run on them; without them there is no validation.
        randomness: the run's generators (see module docstring); a private one from seed 0 by default.
        callbacks: hooks, called in order.
        stop_event: set from any thread to stop before the next batch.
        steps_per_epoch: for progress events; by default ``len(train_data)``.
        lr_group: name prefix of the parameter group whose learning rate is reported.
        batch_size: validation batch size.
        channels_last: image batches in channels-last layout (default: on CUDA); match the module's layout.
        mixed_precision: bf16 autocast for training steps (default: on CUDA only; the trainer also turns it
            on for convolutional training on CPUs with native bf16).
        distributed: this process's rank in a multi-process run (see :mod:`.distributed`): validation is
            split across ranks and gathered, epoch metrics are summed over ranks, a stop on any rank stops all.
        batch_share: with ``distributed``, returns (own images, global batch size) for each training batch
            in order (:meth:`ShardedBatchSampler.next_share`), to weight the loss.
        threads: PyTorch's CPU threads for this loop's steps (default: its own setting). A new head
            trained on cached features is a few tiny operations per step, as fast on one thread, and on
            two they stall whenever another program takes a core from the second: with one core busy,
            a frozen run's five epochs took 0.03 s on one thread against 0.14 s (``bench/busy_core.py``).
    """

    def __init__(
        self,
        *,
        module: nn.Module,
        forward: Callable[[torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        train_data: Iterable[Batch],
        device: torch.device,
        scheduler: Any = None,
        prepare_batch: Callable[[Batch], PreparedBatch] | None = None,
        penalty: Callable[[], torch.Tensor] | None = None,
        grad_clip: float = 0.0,
        val_inputs: Any = None,
        val_targets: list[int] | None = None,
        val_forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
        randomness: RunRandomness | None = None,
        callbacks: Iterable[Callback] = (),
        stop_event: threading.Event | None = None,
        steps_per_epoch: int | None = None,
        lr_group: str = "head",
        batch_size: int = 64,
        channels_last: bool | None = None,
        mixed_precision: bool | None = None,
        distributed: Distributed = SINGLE,
        batch_share: Callable[[], tuple[int, int]] | None = None,
        threads: int | None = None,
    ) -> None:
        self.module, self.forward, self.optimizer, self.criterion = module, forward, optimizer, criterion
        self.train_data, self.device, self.scheduler = train_data, device, scheduler
        self.prepare_batch = prepare_batch or self._default_prepare
        self.penalty, self.grad_clip = penalty, grad_clip
        self.val_inputs, self.val_targets, self.val_forward = val_inputs, val_targets, val_forward or forward
        self.randomness = randomness or RunRandomness(0, device)
        self.callbacks = CallbackList(callbacks)
        self.stop_event = stop_event or threading.Event()
        self.steps_per_epoch = steps_per_epoch if steps_per_epoch is not None else len(train_data)  # type: ignore[arg-type]
        self.lr_group, self.batch_size, self.channels_last = lr_group, batch_size, channels_last
        self.mixed_precision = mixed_precision
        self.distributed, self.batch_share = distributed, batch_share
        self.threads = threads
        self.epoch = 0  # 0-based epoch in progress (or last finished)
        self.global_step = 0
        self.epoch_seconds = 0.0
        self.should_stop = False  # set by callbacks: end the run after this epoch (or step)
        self.interrupted = False  # the last epoch did not run to its end
        self.history: list[dict[str, float]] = []

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, epochs: int, start_epoch: int = 0) -> None:
        """Run epochs ``start_epoch`` .. ``epochs - 1`` unless stopped."""
        with openmp_threads(self.threads) if self.threads else contextlib.nullcontext():
            self._fit(epochs, start_epoch)

    def _fit(self, epochs: int, start_epoch: int) -> None:
        self.callbacks.call("on_fit_start", self)
        for epoch in range(start_epoch, epochs):
            self.epoch = epoch
            self.global_step = epoch * self.steps_per_epoch
            self.randomness.reseed(epoch)
            started = time.perf_counter()
            train_metrics = self.train_one_epoch()
            if train_metrics is None:
                self.interrupted = True
                break
            self.distributed.share_buffers(self.module)
            if self.val_inputs is not None:
                self.callbacks.call("on_validation_start", self)  # weight averaging swaps its average in here
                val_loss, val_accuracy = loss_and_accuracy(*self.validate())
                self.epoch_seconds = time.perf_counter() - started
                record = {"epoch": epoch + 1, **train_metrics, "val_loss": val_loss, "val_accuracy": val_accuracy, "lr": self.current_lr()}
                self.history.append(record)
                self.callbacks.call("on_validation_end", self, record)
            if self.should_stop:
                break
        self.callbacks.call("on_fit_end", self)

    def train_one_epoch(self) -> dict[str, float] | None:
        """One pass over ``train_data``; the mean loss and accuracy, or None if stopped part-way."""
        self._running(self.forward).train()
        self.callbacks.call("on_train_epoch_start", self)
        loss_sum, correct, seen = 0.0, 0, 0
        batches = iter(self.train_data)
        step = 0
        while True:
            with self.randomness.scope():
                batch = next(batches, None)
                if batch is None:
                    break
                if self.distributed.any(self.should_stop or self.stop_event.is_set()):
                    return None
                self.callbacks.call("on_train_batch_start", self, step)
                x, target, y = self.prepare_batch(batch)
                with autocast_for(self.device, self.mixed_precision):
                    logits = self.forward(x)
            loss = self.criterion(logits.float(), target)
            n = y.shape[0]
            weight = 1.0
            if self.batch_share is not None:  # this rank's share of the global batch (see ShardedBatchSampler)
                n, global_n = self.batch_share()
                weight = n * self.distributed.world_size / global_n
            total = loss * weight if weight != 1.0 else loss
            if self.penalty is not None:
                total = total + self.penalty()
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if self.grad_clip > 0:
                nn.utils.clip_grad_norm_([p for p in self.module.parameters() if p.requires_grad], self.grad_clip)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            if n:
                loss_sum += loss.item() * n
                correct += int((logits.argmax(1) == y).sum())
            seen += n
            self.global_step += 1
            self.callbacks.call("on_train_batch_end", self, StepOutput(step, loss.item(), self.current_lr()))
            step += 1
        loss_sum, correct, seen = self.distributed.sum([loss_sum, correct, seen])
        return {"train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1)}

    def validate(self) -> tuple[np.ndarray, list[int]]:
        """Softmax probabilities over the validation inputs, in order, and their class indices."""
        logits, targets = self.validation_logits()
        return logits.softmax(1).numpy(), targets

    def validation_logits(self) -> tuple[torch.Tensor, list[int]]:
        """Raw outputs over the validation inputs, in order, and their class indices (the report calibrates them).

        In a multi-process run each rank runs its share of the inputs and the shares are gathered,
        so every rank sees every image's outputs exactly once."""
        n = len(self.val_inputs)
        inputs = take(self.val_inputs, self.distributed.shard(n)) if self.distributed.enabled else self.val_inputs
        logits = run_inference(
            self.val_forward, inputs, self.device, module=self._running(self.val_forward), batch_size=self.batch_size, channels_last=self.channels_last
        )
        return self.distributed.gather_rows(logits, n), list(self.val_targets or [])

    # -- helpers -------------------------------------------------------------------------------
    def _running(self, forward: Callable[[torch.Tensor], torch.Tensor]) -> nn.Module:
        """The module whose mode a step or a validation sets: the forward itself when it is one (a frozen
        run's new head alone, not the backbone it never runs), else the whole module."""
        return forward if isinstance(forward, nn.Module) else self.module

    def _default_prepare(self, batch: Batch) -> PreparedBatch:
        x, y = to_device(batch[0], self.device, self.channels_last), batch[-1].to(self.device, non_blocking=True)
        return x, y, y

    def current_lr(self) -> float:
        groups = self.optimizer.param_groups
        named = [g for g in groups if str(g.get("name", "")).startswith(self.lr_group)]
        return float((named or groups)[0]["lr"])

    def state_dict(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
        """Everything a resumed run needs after the current epoch (see :class:`ResumeCheckpoint`);
        ``weights``: the module's state dict, when the caller has a cheaper way to read it."""
        return {
            "epoch": self.epoch,
            "model": self.module.state_dict() if weights is None else weights,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "history": self.history,
            "callbacks": self.callbacks.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        self.callbacks.load_state_dict(state.get("callbacks", {}))
