"""TensorBoard logging: the run's recorded events as scalars, for people who read runs there.

Users of timm, fastai and Lightning look at curves in TensorBoard; this callback writes the
same numbers the run store records (loss per step, learning rate, per-epoch train and
validation loss and accuracy, epoch time, the final metrics) to a TensorBoard log folder.
``tensorboard`` is an optional dependency: without it, asking for this logger says how to get it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import WarmstartError
from .callbacks import Callback
from .events import CheckpointSaved, EpochEnded, RunEvent, RunFailed, RunFinished, RunStarted, RunStopped, StepEnded

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Callback):
    """Writes scalars to ``log_dir`` as the run's events arrive.

    Args:
        log_dir: the TensorBoard log folder (``tensorboard --logdir`` on it, or on its parent to
            compare runs).

    Raises:
        WarmstartError: when the ``tensorboard`` package is not installed.
    """

    name = "tensorboard"

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise WarmstartError(
                "TensorBoard logging needs the 'tensorboard' package; install it with "
                "'pip install tensorboard==2.21.0' or leave out --tensorboard."
            ) from None
        self.log_dir = Path(log_dir)
        try:
            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        except OSError as exc:
            raise WarmstartError(f"Cannot write TensorBoard logs to '{self.log_dir}' ({exc.strerror or exc}).") from None
        self.steps_per_epoch = 1

    def on_event(self, event: RunEvent) -> None:
        add = self.writer.add_scalar
        if isinstance(event, RunStarted):
            self.steps_per_epoch = max(event.steps_per_epoch, 1)
        elif isinstance(event, StepEnded):
            add("train/loss_per_step", event.loss, event.global_step)
            add("train/learning_rate", event.lr, event.global_step)
        elif isinstance(event, EpochEnded):
            step = event.epoch * self.steps_per_epoch
            for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
                split, metric = name.split("_", 1)
                add(f"{split}/{metric}", getattr(event, name), step)
            add("epoch/seconds", event.seconds, step)
            add("epoch/trainable_groups", event.trainable_groups, step)
        elif isinstance(event, CheckpointSaved):
            add("best/val_accuracy", event.val_accuracy, event.epoch * self.steps_per_epoch)
        elif isinstance(event, RunFinished):
            self.writer.add_text("run/summary", f"best epoch {event.best_epoch}: val accuracy {event.val_accuracy:.4f}, macro-F1 {event.macro_f1:.4f}")
        if isinstance(event, (RunFinished, RunStopped, RunFailed)):
            self.writer.flush()
        elif isinstance(event, EpochEnded):
            self.writer.flush()

    def on_fit_end(self, loop) -> None:
        self.writer.flush()
