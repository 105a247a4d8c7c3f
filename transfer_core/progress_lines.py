"""Progress of long phases as plain lines, for output that is not a terminal (a log file, CI, ``| tee``).

A bar redrawn with carriage returns turns into one enormous line in a log, and no output at
all for minutes looks like a hang: 50,000 images take about eight minutes to encode on two
cores. So a phase gets a line when it starts, one whenever another ``every_percent`` is done
or ``every_seconds`` have passed since the last line, and one when it ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressLines"]


class ProgressLines:
    """An ``on_progress(done, total, what)`` (see :mod:`transfer_core.reporting`) that prints periodic plain lines.

    Args:
        stream: where lines go (default: stderr, read at each line so tests can capture it).
        every_percent: a line at least this often, in percent of the phase.
        every_seconds: a line at least this often, in seconds, however slowly the phase moves.
        clock: seconds, monotonic (tests pass a fake one).
        quiet_for: a phase prints nothing until it has run this long (an epoch of a frozen run takes
            a moment, and a line per moment is noise); 0 announces every phase at once.
    """

    def __init__(self, stream: TextIO | None = None, every_percent: float = 5.0, every_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, quiet_for: float = 0.0) -> None:
        self.stream, self.every_percent, self.every_seconds, self.clock = stream, every_percent, every_seconds, clock
        self.quiet_for = quiet_for
        self._phase: tuple[str, int] | None = None
        self._started = self._last_time = 0.0
        self._last_done = 0
        self._spoken = False

    def __call__(self, done: int, total: int, what: str) -> None:
        now = self.clock()
        if self._phase != (what, total) or done < self._last_done:  # a new phase (or the same kind again)
            self._phase, self._started, self._last_time, self._last_done, self._spoken = (what, total), now, now, done, False
            if not self.quiet_for:
                self._print(done, total, what, now)
            return
        if done == self._last_done or now - self._started < self.quiet_for:
            return
        due = (done - self._last_done) * 100 >= self.every_percent * total or now - self._last_time >= self.every_seconds
        if (done >= total and (self._spoken or not self.quiet_for)) or due or not self._spoken:
            self._last_time, self._last_done = now, done
            self._print(done, total, what, now)

    def _print(self, done: int, total: int, what: str, now: float) -> None:
        elapsed = now - self._started
        line = f"{what}: {done:,} of {total:,} ({100 * done / max(total, 1):.0f} %), {elapsed:.0f} s"
        if 0 < done < total and elapsed >= 1:
            line += f", about {_duration(elapsed * (total - done) / done)} left"
        self._spoken = True
        print(line, file=self.stream or sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    """'40 s', '3 min', '1.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
