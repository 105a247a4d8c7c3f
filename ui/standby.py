"""One training worker started ahead of time, so pressing Train does not wait for Python's imports.

A worker process spends about 3 s importing PyTorch, torchvision, scikit-learn, timm and ONNX
Runtime before it trains anything; a frozen run on the bundled backbone then trains in about
1 s. The app therefore keeps one worker that has done its imports and waits for a run
(``python -m transfer_core.worker --standby``, see :mod:`transfer_core.worker`), and starts it
only while nothing trains, so its imports never slow a run down.

A waiting worker is used only with the environment it was started with (the workspace, the
engine's settings) and while the engine's source files are unchanged; otherwise it is ended and a
worker is started the ordinary way. It exits by itself when its input closes, so a server that
goes away takes its waiting worker with it. Its imports start as soon as a run ends, so on two
cores they share the CPU with the server's pages for those seconds (not with a run). It holds
about 0.5 GB while it waits, so none is kept when less than 3 GB of memory is available. What a
waiting worker prints before it has a run goes to ``$WARMSTART_HOME/standby-worker.log``.
``WARMSTART_STANDBY_WORKER=0`` turns it off.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import transfer_core
from transfer_core.memory import available_memory
from transfer_core.workspace import home
from transfer_core.worker import standby_command, worker_environment

__all__ = ["StandbyWorker", "end", "standby_enabled"]


def standby_enabled() -> bool:
    """Whether job managers keep a worker waiting (``WARMSTART_STANDBY_WORKER``, on by default)."""
    return os.environ.get("WARMSTART_STANDBY_WORKER", "1").strip().lower() not in ("0", "false", "no", "off")


_ENGINE = Path(transfer_core.__file__).parent


def _engine_files_changed_at() -> int:
    """The newest modification time of the engine's source files: a worker that imported them before
    an edit, a ``git pull`` or an upgrade would train with the old code."""
    return max((path.stat().st_mtime_ns for path in _ENGINE.rglob("*.py")), default=0)


# A waiting worker holds about 0.5 GB (PyTorch alone 0.28 GB, measured with its imports done); it is
# kept only where that leaves room for the run and the rest of the machine.
MIN_AVAILABLE_BYTES = 3 * 1024**3


class StandbyWorker:
    """Holds at most one waiting worker process; thread-safe."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._started_with: tuple[dict[str, str], int] | None = None  # environment, engine files' time
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The waiting worker's process id, or None when none waits."""
        with self._lock:
            return self._process.pid if self._process is not None and self._process.poll() is None else None

    def prepare(self) -> None:
        """Start a waiting worker unless an up-to-date one already waits or memory is short (a failed start
        only means none waits)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None and self._started_with == _now():
                return
            if self._process is not None:
                end(self._process)
                self._process = None
            if available_memory() < MIN_AVAILABLE_BYTES:
                return
            started_with = _now()
            try:
                home().mkdir(parents=True, exist_ok=True)
                with open(home() / "standby-worker.log", "wb") as log:  # what a worker that dies waiting said
                    self._process = subprocess.Popen(
                        standby_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                        env=started_with[0], start_new_session=True,  # once it trains, a server's Ctrl-C leaves it training
                    )
            except OSError:
                return
            self._started_with = started_with

    def take(self) -> subprocess.Popen | None:
        """The waiting worker, now the caller's to hand a run (:func:`~transfer_core.worker.hand_over`) or
        to :func:`end`; None when none waits, or it started with another environment or older engine code."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return None
            if process.poll() is not None or self._started_with != _now():
                end(process)
                return None
            return process

    def close(self) -> None:
        """End the waiting worker, if any."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            end(process)


def _now() -> tuple[dict[str, str], int]:
    """What a worker started now would run with: its environment and the engine's source files."""
    return worker_environment(), _engine_files_changed_at()


def end(process: subprocess.Popen) -> None:
    """End a worker that has no run yet (nothing of anyone's is lost), reap it and close its pipes."""
    process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()
