"""The one progress callback of the engine's long calls: ``on_progress(done, total, what)``.

The LR finder, the health check, the shoot-out, the embedding map, export and the export
check take an optional ``on_progress``. Their work comes in phases, each named by ``what``
("reading images", "encoding images with efficientnet_lite0", "range-test steps") and counted
in that phase's real units (images read, images encoded, steps taken). A phase starts with
``(0, total, what)``; within it ``done`` never decreases, and it ends at ``total`` unless the
call stops early (a range test whose loss blew up) or fails. A phase with nothing to do is
not reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["OnProgress", "phase", "throttled"]

OnProgress = Callable[[int, int, str], None]


def phase(on_progress: OnProgress | None, total: int, what: str) -> Callable[[int], None]:
    """Announce a phase of ``total`` units and return its counter.

    Args:
        on_progress: the caller's callback, or None (the counter then does nothing).
        total: units of work in this phase.
        what: the phase's name, as a person would read it ("reading images").

    Returns:
        A function to call with the units done so far.
    """
    if on_progress is None or total <= 0:
        return lambda done: None
    on_progress(0, total, what)
    return lambda done: on_progress(min(done, total), total, what)


def throttled(on_progress: OnProgress, parts: int = 200, every_s: float = 0.05) -> OnProgress:
    """``on_progress`` told at a phase's start and end and, between, at most ``parts`` times and
    no more often than every ``every_s`` seconds.

    For callers that record every call (a run's event log): checking 50,000 files one call per
    file would write 50,000 lines to say what 200 say as well, and 200 images read in a tenth of
    a second need no line each (20 updates a second is smoother than any bar needs).
    """
    told: dict[str, tuple[int, float]] = {}

    def forward(done: int, total: int, what: str) -> None:
        step = max(1, total // parts)
        now = time.monotonic()
        last = told.get(what)
        if last is None or done >= total or done < last[0] or (done - last[0] >= step and now - last[1] >= every_s):
            told[what] = (done, now)
            on_progress(done, total, what)

    return forward
