"""A progress bar for a long engine call made in the script run, moved by the engine's own counts.

The LR finder, health check, shoot-out, embedding map and export take seconds to a minute and
run in the script thread (they are single calls, not runs to follow across pages). The engine
reports ``on_progress(done, total, what)`` as it goes (see ``transfer_core.reporting``);
updating an ``st.progress`` element from that callback, in the same thread, sends each update
to the browser at once, so the bar shows real work done instead of a greyed-out page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from transfer_core import OnProgress

__all__ = ["progress", "progress_text"]


def progress_text(label: str, done: int, total: int, what: str) -> str:
    """'Finding a learning rate · Range-test steps: 12 of 40'."""
    return f"{label} · {what[:1].upper()}{what[1:]}: {done:,} of {total:,}"


@contextmanager
def progress(label: str, lazy: bool = False) -> Iterator[OnProgress]:
    """Show a bar labelled ``label`` where this is called; yields the callback to pass as ``on_progress``.

    The bar goes once the block ends, also when it raises. Updates that would not move the bar by
    a whole percent are skipped, so a phase of thousands of images sends at most about a hundred.
    ``lazy`` makes the bar only at the first update, so a call with nothing to count shows nothing.
    """
    place = st.empty()
    bar = None if lazy else place.progress(0.0, text=label)
    shown: tuple[str, int] | None = None

    def update(done: int, total: int, what: str) -> None:
        nonlocal shown, bar
        fraction = min(done / total, 1.0) if total else 0.0
        if shown == (what, int(fraction * 100)):
            return
        shown = (what, int(fraction * 100))
        text = progress_text(label, done, total, what)
        if bar is None:
            bar = place.progress(fraction, text=text)
        else:
            bar.progress(fraction, text=text)

    try:
        yield update
    finally:
        place.empty()
