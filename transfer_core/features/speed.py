"""Seconds per image of each frozen backbone, measured on real passes and remembered.

The shoot-out compares backbones by speed as well as accuracy, and the only honest number is
one measured on this machine, on the user's images. A pass's first batch also pays one-off
costs (the ONNX export and check on a CPU, lazy initialisation), so :class:`PassClock` times
the batches after it. Once features are cached a later shoot-out runs no pass at all, so the
measurement is kept per network and device in ``$WARMSTART_HOME/backbone-speed.json``, where the
app's shoot-out and a training worker's automatic choice both find it. Other work on the machine
only ever slows a pass down (on two shared cores the same pass varies two-fold), so the fastest
measurement is the one kept, as ``timeit`` and ``bench/run.py`` report the fastest of their repeats.
"""

from __future__ import annotations

import json
import threading
import time

from ..runs.store import atomic_write_json
from ..workspace import home

__all__ = ["PassClock", "measured_speed", "record_speed"]

_LOCK = threading.Lock()


class PassClock:
    """Steady-state seconds per image over passes reported batch by batch.

    Call it with ``(pass number, images of that pass done so far)`` after every batch; a pass
    counts from the end of its first batch to the end of its last, so one-batch passes measure
    nothing.
    """

    def __init__(self) -> None:
        self._passes: dict[int, list[tuple[float, int]]] = {}

    def __call__(self, number: int, done: int) -> None:
        marks = self._passes.setdefault(number, [])
        marks.append((time.perf_counter(), done))

    def seconds_per_image(self) -> float | None:
        """Measured seconds per image, or None when no pass had two batches."""
        seconds = images = 0.0
        for marks in self._passes.values():
            if len(marks) >= 2 and marks[-1][1] > marks[0][1]:
                seconds += marks[-1][0] - marks[0][0]
                images += marks[-1][1] - marks[0][1]
        return seconds / images if images else None


def _file():
    return home() / "backbone-speed.json"


def _read() -> dict[str, float]:
    try:
        values = json.loads(_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def record_speed(network: str, device: str, seconds_per_image: float) -> float:
    """Remember a measurement of ``network`` (see ``features.cache.network_key``) on ``device``; returns the
    fastest one known, this one included.

    A memo: an unwritable workspace only means the next shoot-out measures again.
    """
    with _LOCK:
        values = _read()
        key = f"{network}|{device}"
        known = values.get(key)
        fastest = min(seconds_per_image, known) if isinstance(known, (int, float)) and known > 0 else seconds_per_image
        values[key] = fastest
        try:
            atomic_write_json(_file(), values)
        except OSError:
            pass
        return fastest


def measured_speed(network: str, device: str) -> float | None:
    """The fastest measured seconds per image of ``network`` on ``device``, or None if never measured."""
    value = _read().get(f"{network}|{device}")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None
