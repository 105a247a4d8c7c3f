"""The command line's view of a run: tqdm bars on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from ..progress_lines import ProgressLines
from .callbacks import Callback
from .events import Event, RunEvent

__all__ = ["ProgressBar"]

# What a one-off pass (CacheProgress.what) is called in a progress line.
_PASS_NAMES = {
    "index": "checking image files",
    "images": "reading images",
    "features": "computing features",
    "prefix": "running the frozen layers",
    "views": "computing features of altered copies",
    "pseudo": "labelling the pool with the earlier run",
}


class ProgressBar(Callback):
    """Prints what a run does as it happens: a tqdm bar per pass and per epoch when ``stream`` is a terminal.

    Piped output (a log file, CI) gets plain lines instead of a bar's carriage returns: each one-off
    pass (checking files, reading images, computing features) that runs longer than 2 s gets a line
    then, every 5 % or 10 s and at its end; an epoch's steps likewise once the epoch has run 10 s;
    and each epoch one line. ``clock`` (monotonic seconds) is for tests.
    """

    name = "progress_bar"

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.bar = None
        self.bar_phase: str | None = None
        # Quiet at first, so a pass over a handful of files does not print three lines to say so.
        self.pass_lines = ProgressLines(self.stream, clock=clock, quiet_for=2.0)
        self.step_lines = ProgressLines(self.stream, clock=clock, quiet_for=10.0)
        self.epochs = 0

    def on_event(self, event: RunEvent) -> None:
        kind = event.kind
        if kind is Event.CACHING:
            what = _PASS_NAMES.get(event.what, event.what)
            if self.interactive:
                self._advance_bar(what, event.done, event.total)
            else:
                self.pass_lines(event.done, event.total, what)
        elif kind is Event.CACHED:
            self._close_bar()
            self._print(event.message)
        elif kind is Event.STARTED:
            self._close_bar()
            self.epochs = event.epochs
            self._print(
                f"Training on {event.train_size} images, validating on {event.val_size}, "
                f"{len(event.classes)} classes, device {event.device}."
            )
        elif kind is Event.STEP:
            if self.interactive:
                self._advance_bar(f"epoch {event.epoch}", event.step, event.steps)
                self.bar.set_postfix(loss=f"{event.loss:.3f}")
            else:
                self.step_lines(event.step, event.steps, f"epoch {event.epoch}/{self.epochs} steps")
        elif kind is Event.EPOCH:
            self._close_bar()
            self._print(
                f"epoch {event.epoch}/{event.epochs}  train loss {event.train_loss:.3f} acc {event.train_accuracy:.3f}  "
                f"val loss {event.val_loss:.3f} acc {event.val_accuracy:.3f}  ({event.seconds:.1f} s)"
            )
        elif kind in (Event.STOPPED, Event.FAILED):
            self._close_bar()

    def _advance_bar(self, what: str, done: int, total: int) -> None:
        """Move the terminal's bar for ``what`` to ``done`` (a new bar when the phase changes)."""
        if self.bar is None or self.bar_phase != what:
            from tqdm import tqdm

            self._close_bar()
            self.bar = tqdm(total=total, desc=what, file=self.stream, leave=False)
            self.bar_phase = what
        self.bar.update(max(0, done - self.bar.n))

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.bar_phase = None

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
