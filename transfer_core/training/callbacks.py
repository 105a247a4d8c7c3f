"""The hooks of the training loop, and the callbacks that every run uses.

A callback sees the loop at a small fixed set of moments and never reaches into it beyond
the documented fields (``loop.epoch``, ``loop.history``, ``loop.should_stop``, ...). Anything
that must survive a restart lives in ``state_dict()``; the run's resume file stores every
callback's state under its ``name``, so a resumed run continues with the same best epoch,
patience counter and warm-up status as the uninterrupted one.

Callbacks also receive the run's typed events (:meth:`Callback.on_event`): the run-store
writer, the CLI progress bar and the TensorBoard logger are event callbacks.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..models.transfer import TransferModel, frozen_batch_norms, set_trainable_groups
from ..runs.checkpoint_files import resume_bytes, write_checkpoint
from ..runs.store import HeldWrites
from .events import CheckpointSaved, EpochEnded, RunEvent, StepEnded
from .model_state import ModelState, snapshot

if TYPE_CHECKING:
    from ..runs.shared_weights import SharedWeights
    from .loop import Loop, StepOutput

__all__ = [
    "BackboneFreezing",
    "Callback",
    "CallbackList",
    "CheckpointTimer",
    "EarlyStopping",
    "EventLog",
    "ModelCheckpoint",
    "ModelState",
    "ProgressEvents",
    "ResumeCheckpoint",
    "StopRequestFile",
    "SubscriberCallback",
]


class Callback:
    """No-op hooks; subclasses override what they need. ``name`` keys the saved state."""

    name = "callback"

    def on_fit_start(self, loop: Loop) -> None: ...

    def on_train_epoch_start(self, loop: Loop) -> None: ...

    def on_train_batch_start(self, loop: Loop, step: int) -> None: ...

    def on_train_batch_end(self, loop: Loop, output: StepOutput) -> None: ...

    def on_validation_start(self, loop: Loop) -> None: ...

    def on_validation_end(self, loop: Loop, record: dict[str, float]) -> None: ...

    def on_fit_end(self, loop: Loop) -> None: ...

    def on_event(self, event: RunEvent) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CallbackList:
    """Calls a hook on every callback in order; collects and restores their states by name."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {c.name: c.state_dict() for c in self.callbacks if c.state_dict()}

    def load_state_dict(self, states: dict[str, dict[str, Any]]) -> None:
        for callback in self.callbacks:
            if callback.name in states:
                callback.load_state_dict(states[callback.name])


class SubscriberCallback(Callback):
    """A plain ``event -> None`` function as a callback; a failing display never kills a run."""

    name = "subscriber"

    def __init__(self, subscriber: Callable[[RunEvent], None]) -> None:
        self.subscriber = subscriber

    def on_event(self, event: RunEvent) -> None:
        try:
            self.subscriber(event)
        except Exception as exc:
            warnings.warn(f"Event subscriber {self.subscriber!r} failed: {exc}", stacklevel=2)


class EventLog(Callback):
    """The run-store writer: every event becomes one line of the run's ``metrics.jsonl``."""

    name = "event_log"

    def __init__(self, held: HeldWrites) -> None:
        self.held = held

    def on_event(self, event: RunEvent) -> None:
        self.held.append_line(event.to_json())


class StopRequestFile(Callback):
    """Stops the run when a file appears: how another process (the app) stops a training worker.

    One ``stat`` per batch is all it costs. The file is removed when the run ends, so resuming the
    run later does not stop it at once.
    """

    name = "stop_request_file"

    def __init__(self, path: Path, request_stop: Callable[[], None]) -> None:
        self.path, self.request_stop = path, request_stop

    def _check(self) -> None:
        if self.path.exists():
            self.request_stop()

    def on_train_epoch_start(self, loop: Loop) -> None:
        self._check()

    def on_train_batch_end(self, loop: Loop, output: StepOutput) -> None:
        self._check()

    def on_fit_end(self, loop: Loop) -> None:
        with contextlib.suppress(OSError):  # an unwritable folder: the next resume clears it (JobManager.resume)
            self.path.unlink(missing_ok=True)


class BackboneFreezing(Callback):
    """Sets which backbone groups train at the start of each epoch (frozen, partial, full, gradual).

    Frozen BatchNorm layers are put back in eval mode after the loop's ``train()``, so a few
    small batches of new data never overwrite their ImageNet statistics.
    """

    name = "backbone_freezing"

    def __init__(self, model: TransferModel, trainable_at: Callable[[int], int]) -> None:
        self.model, self.trainable_at = model, trainable_at
        self.trainable_groups = 0
        self._applied: int | None = None  # the trainable count the model's flags were last set for
        self._frozen_norms: list[nn.Module] = []

    def on_train_epoch_start(self, loop: Loop) -> None:
        self.trainable_groups = self.trainable_at(loop.epoch)
        if self.trainable_groups != self._applied:  # walking the whole network once per change is enough
            set_trainable_groups(self.model, self.trainable_groups)
            self._frozen_norms, self._applied = frozen_batch_norms(self.model), self.trainable_groups
        for norm in self._frozen_norms:
            if norm.training:  # only the loop's train() of the whole model (partial, full) undoes it
                norm.eval()


class ProgressEvents(Callback):
    """Turns loop hooks into the run's :class:`StepEnded` and :class:`EpochEnded` events."""

    name = "progress_events"

    def __init__(self, emit: Callable[[RunEvent], None], epochs: int, freezing: BackboneFreezing) -> None:
        self.emit, self.epochs, self.freezing = emit, epochs, freezing

    def on_train_batch_end(self, loop: Loop, output: StepOutput) -> None:
        self.emit(
            StepEnded(
                epoch=loop.epoch + 1, step=output.step + 1, steps=loop.steps_per_epoch,
                global_step=loop.global_step, loss=output.loss, lr=output.lr,
            )
        )

    def on_validation_end(self, loop: Loop, record: dict[str, float]) -> None:
        self.emit(
            EpochEnded(epochs=self.epochs, seconds=loop.epoch_seconds, trainable_groups=self.freezing.trainable_groups, **record)
        )


def _better(candidate: dict[str, float], best: dict[str, float] | None) -> bool:
    """Higher validation accuracy wins; equal accuracy is broken by lower validation loss."""
    if best is None:
        return True
    acc, best_acc = candidate["val_accuracy"], best["val_accuracy"]
    return acc > best_acc or (acc == best_acc and candidate["val_loss"] < best["val_loss"])


class CheckpointTimer:
    """Decides after which epochs the checkpoint files are written: once ``interval_s`` seconds have
    passed since the last write, and always at the end of the run.

    Why: an epoch of a frozen run trains only the new last layer on cached features and takes
    milliseconds, while serialising and writing a backbone's weights takes tens of them; writing
    after every such epoch made checkpoints a quarter of a frozen run (bench/run.py). Fine-tuning
    epochs last longer than the interval, so they still write after every epoch. A run killed
    outright loses at most ``interval_s`` seconds of training; a stopped one loses nothing.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_write = time.monotonic()
        self._decided: tuple[int, bool] | None = None

    def due(self, epoch: int) -> bool:
        """Whether ``epoch``'s checkpoints are written now; the same answer for every caller in that epoch."""
        if self._decided is None or self._decided[0] != epoch:
            now = time.monotonic()
            due = now - self._last_write >= self.interval_s
            if due:
                self._last_write = now
            self._decided = (epoch, due)
        return self._decided[1]


class ModelCheckpoint(Callback):
    """Keeps the best epoch's weights (in memory, and as ``best.safetensors`` when the timer says
    so and at the end of the run) and says so with an event when the file is written."""

    name = "checkpoint"

    def __init__(
        self, model: torch.nn.Module, held: HeldWrites, file_name: str, emit: Callable[[RunEvent], None], timer: CheckpointTimer,
        weights: ModelState | None = None, shared: SharedWeights | None = None,
    ) -> None:
        self.model, self.held, self.file_name, self.emit, self.timer = model, held, file_name, emit, timer
        self.weights = weights or ModelState(model)  # reads the model's state
        self.constant = self.weights.constant  # state-dict keys no step of this run changes (see :func:`snapshot`)
        self.shared = shared  # unchanging weights the run folder links to instead of writing them
        self.best: dict[str, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None  # None after a resume: the file has it
        self._unwritten = False

    def on_validation_end(self, loop: Loop, record: dict[str, float]) -> None:
        candidate = {"epoch": record["epoch"], "val_accuracy": record["val_accuracy"], "val_loss": record["val_loss"]}
        if _better(candidate, self.best):
            self.best = candidate
            self.best_state = snapshot(self.weights(), self.constant)
            self._unwritten = True
        if self._unwritten and self.timer.due(loop.epoch):
            self._write()

    def on_fit_end(self, loop: Loop) -> None:
        if self._unwritten:
            self._write()

    def restore_best(self, load_file: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Put the best epoch's weights back into the model: from memory, only the entries training
        changed (a frozen backbone's are still in place), or all of them from ``load_file()`` when an
        earlier process kept them (a resumed run)."""
        if self.best_state is None:
            self.model.load_state_dict(load_file())
            return
        self.weights.restore(self.best_state)

    def _write(self) -> None:
        assert self.best is not None and self.best_state is not None
        self._unwritten = False
        state = self.best_state
        if self.shared is not None and not self.shared.link_into(self.held):
            self.shared = None  # no hard link here: this and later writes hold every weight
        if self.shared is not None:
            state = {k: v for k, v in state.items() if k not in self.shared.keys}
        write_checkpoint(self.held, self.file_name, state, shared=self.shared is not None)
        if self.file_name not in self.held.files:
            self.emit(CheckpointSaved(path=str(self.held.run.path / self.file_name), **self.best))

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without a lower validation loss (0 = never)."""

    name = "early_stopping"

    def __init__(self, patience: int, epochs: int, min_delta: float = 1e-6) -> None:
        self.patience, self.epochs, self.min_delta = patience, epochs, min_delta
        self.best_loss = math.inf
        self.bad_epochs = 0
        self.stopped = False

    def on_validation_end(self, loop: Loop, record: dict[str, float]) -> None:
        if record["val_loss"] < self.best_loss - self.min_delta:
            self.best_loss, self.bad_epochs = record["val_loss"], 0
        else:
            self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience and record["epoch"] < self.epochs:
            self.stopped = loop.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss, self.bad_epochs = state["best_loss"], state["bad_epochs"]


class ResumeCheckpoint(Callback):
    """Writes the loop's whole state (weights, optimiser, schedule, history, every callback's
    state) after an epoch when the timer says so, and, when the run is stopped before its last
    epoch, the last finished epoch's state (a copy of it is kept until then), so an interrupted
    run continues as if it never stopped. Goes last, after the callbacks whose state it saves."""

    name = "resume_checkpoint"

    def __init__(self, held: HeldWrites, file_name: str, timer: CheckpointTimer, weights: ModelState | None = None) -> None:
        """``weights`` reads the loop's module (its own ``state_dict()`` without one)."""
        self.held, self.file_name, self.timer, self.weights = held, file_name, timer, weights
        self.constant = weights.constant if weights is not None else frozenset()
        self._unwritten: dict[str, Any] | None = None  # the last finished epoch's state, not yet on disk

    def on_validation_end(self, loop: Loop, record: dict[str, float]) -> None:
        model = self.weights() if self.weights is not None else None
        if self.timer.due(loop.epoch):
            self._unwritten = None
            self.held.write(self.file_name, resume_bytes(loop.state_dict(model)))
        else:  # the loop's tensors change in the next epoch: keep a copy of this epoch's end
            state = loop.state_dict(model)
            weights = snapshot(state.pop("model"), self.constant)
            self._unwritten = {**copy.deepcopy(state), "model": weights}

    def on_fit_end(self, loop: Loop) -> None:
        # Only a run that stopped before its end is ever resumed: a finished one skips the write.
        if self._unwritten is not None and loop.interrupted:
            self.held.write(self.file_name, resume_bytes(self._unwritten))
        self._unwritten = None
