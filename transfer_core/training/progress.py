"""The command line's view of a run: a progress bar per epoch on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from .callbacks import Callback
from .events import Event, RunEvent

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """Prints what a run does as it happens; a tqdm bar for the steps when ``stream`` is a terminal.

    Piped output (a log file, CI) gets one line per one-off pass and per epoch, never a bar's
    carriage returns.
    """

    name = "progress_bar"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.bar = None

    def on_event(self, event: RunEvent) -> None:
        kind = event.kind
        if kind is Event.CACHED:
            self._print(event.message)
        elif kind is Event.STARTED:
            self._print(
                f"Training on {event.train_size} images, validating on {event.val_size}, "
                f"{len(event.classes)} classes, device {event.device}."
            )
        elif kind is Event.STEP and self.interactive:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=event.steps, desc=f"epoch {event.epoch}", file=self.stream, leave=False)
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{event.loss:.3f}")
        elif kind is Event.EPOCH:
            self._close_bar()
            self._print(
                f"epoch {event.epoch}/{event.epochs}  train loss {event.train_loss:.3f} acc {event.train_accuracy:.3f}  "
                f"val loss {event.val_loss:.3f} acc {event.val_accuracy:.3f}  ({event.seconds:.1f} s)"
            )
        elif kind in (Event.STOPPED, Event.FAILED):
            self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
