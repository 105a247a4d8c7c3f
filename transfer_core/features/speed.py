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

import contextlib
import json
import threading
import time

from .cpu_runtime import cpu_runtime_enabled
from ..runs.store import atomic_write_json
from ..workspace import home

__all__ = ["PassClock", "measured_speed", "record_speed"]

_LOCK = threading.Lock()


class PassClock:
    """Seconds per image of passes reported batch by batch: the fastest batch after each pass's first.

    Call it with ``(pass number, images of that pass done so far)`` after every batch. A pass's first
    batch pays its warm-up, so it is never timed, and one-batch passes measure nothing; of the other
    batches the fastest per image counts, for the same reason the fastest measurement is kept.
    """

    def __init__(self) -> None:
        self._passes: dict[int, list[tuple[float, int]]] = {}

    def __call__(self, number: int, done: int) -> None:
        self._passes.setdefault(number, []).append((time.perf_counter(), done))

    def seconds_per_image(self) -> float | None:
        """The measurement, or None when no pass had two batches."""
        per_image = [(t1 - t0) / (n1 - n0) for marks in self._passes.values()
                     for (t0, n0), (t1, n1) in zip(marks, marks[1:]) if n1 > n0]
        return min(per_image, default=None)


def _file():
    return home() / "backbone-speed.json"


def _read() -> dict[str, float]:
    try:
        values = json.loads(_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def _key(network: str, device: str) -> str:
    """Names the network, the device and, on a CPU, the runtime: ONNX Runtime's speed says nothing of eager
    PyTorch's (``WARMSTART_CPU_RUNTIME=torch``)."""
    runtime = ("onnx" if cpu_runtime_enabled() else "torch") if device.startswith("cpu") else ""
    return f"{network}|{device}|{runtime}"


def record_speed(network: str, device: str, seconds_per_image: float) -> float:
    """Remember a measurement of ``network`` (see ``features.cache.network_key``) on ``device``; returns the
    fastest one known, this one included.

    A memo: an unwritable workspace only means the next shoot-out measures again.
    """
    with _LOCK:
        values = _read()
        key = _key(network, device)
        known = values.get(key)
        fastest = min(seconds_per_image, known) if isinstance(known, (int, float)) and known > 0 else seconds_per_image
        values[key] = fastest
        with contextlib.suppress(OSError):  # only a memo: an unwritable workspace means the next shoot-out measures again
            atomic_write_json(_file(), values)
        return fastest


def measured_speed(network: str, device: str) -> float | None:
    """The fastest measured seconds per image of ``network`` on ``device``, or None if never measured."""
    value = _read().get(_key(network, device))
    return float(value) if isinstance(value, (int, float)) and value > 0 else None
