"""One training worker started ahead of time, so pressing Train does not wait for Python's imports.

A worker process spends about 3 s importing PyTorch, torchvision, scikit-learn, timm and ONNX
Runtime before it trains anything; a frozen run on the bundled backbone then trains in about
1 s. The app therefore keeps one worker that has done its imports and waits for a run
(``python -m transfer_core.worker --standby``, see :mod:`transfer_core.worker`), and starts it
only while nothing trains, so its imports never slow a run down.

A standby worker is used only with the environment it was started with (the workspace, the
engine's settings); otherwise it is ended and a worker is started the ordinary way. It exits by
itself when its input closes, so a server that goes away takes its waiting worker with it.
``WARMSTART_STANDBY_WORKER=0`` turns it off.
"""

from __future__ import annotations

import os
import subprocess
import threading

from transfer_core.worker import standby_command, worker_environment

__all__ = ["StandbyWorker", "standby_enabled"]


def standby_enabled() -> bool:
    return os.environ.get("WARMSTART_STANDBY_WORKER", "1").strip().lower() not in ("0", "false", "no", "off")


class StandbyWorker:
    """Holds at most one waiting worker process; thread-safe."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._environment: dict[str, str] | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Start a waiting worker unless one is already waiting (a failed start only means none waits)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            environment = worker_environment()
            try:
                self._process = subprocess.Popen(
                    standby_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    env=environment, start_new_session=True,  # once it trains, a server's Ctrl-C leaves it training
                )
            except OSError:
                self._process = None
                return
            self._environment = environment

    def take(self) -> subprocess.Popen | None:
        """The waiting worker, now the caller's to hand a run (:func:`~transfer_core.worker.hand_over`),
        or None when none waits or it was started with another environment than a worker would get now."""
        with self._lock:
            process, self._process = self._process, None
            if process is None or process.poll() is not None:
                return None
            if self._environment != worker_environment():
                _end(process)
                return None
            return process

    def close(self) -> None:
        """End the waiting worker, if any."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            _end(process)


def _end(process: subprocess.Popen) -> None:
    """End a worker that has no run yet (nothing of anyone's is lost) and reap it."""
    process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        pipe.close()
