"""The runs waiting and training, kept in one JSON file so that they outlive the server.

``$WARMSTART_HOME/queue.json`` holds two lists::

    {"queued":  [{"run": "/abs/run/folder", "resume": false, "created": 1700000000.0}, ...],
     "running": [{"run": "...", "resume": false, "created": ..., "pid": 4242, "host": "box", "offset": 0}, ...]}

``queued`` is first in, first out; ``running`` names the worker process of each training run
(``offset``: how many events its run folder held before that worker started, so a resumed
run's page shows only its own segment). A restarted server reads the file, follows the runs
whose workers still live, and starts the queued ones in order as slots free up.

Every change is a read-modify-write under an exclusive lock on ``queue.json.lock`` and ends in
an atomic rename, so two server processes on one workspace (or a restart racing the old one)
never start the same run twice, and a crash mid-write leaves the old file whole.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transfer_core.runs.store import atomic_write_json

try:
    import fcntl
except ImportError:  # Windows: one server per workspace, guarded by the thread lock alone
    fcntl = None

__all__ = ["RunQueue", "pid_alive"]

Entry = dict[str, Any]


def pid_alive(pid: int, host: str | None = None) -> bool:
    """Whether process ``pid`` (of ``host``, by default this one) still exists; another host's: assumed alive."""
    if host is not None and host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


class RunQueue:
    """The ``queue.json`` of one workspace (see the module docstring).

    Args:
        path: the JSON file; its folder is created on first write.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._thread_lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[dict[str, list[Entry]]]:
        """The file's contents, written back (atomically) when the block ends without an error."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                atomic_write_json(self.path, state)

    def _read(self) -> dict[str, list[Entry]]:
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            state = {}
        except (OSError, json.JSONDecodeError):
            # Unreadable: keep it aside for a person to look at rather than overwrite it.
            self.path.replace(self.path.with_name(self.path.name + ".unreadable"))
            state = {}
        if not isinstance(state, dict):
            state = {}
        return {key: [e for e in state.get(key, []) if isinstance(e, dict) and "run" in e] for key in ("queued", "running")}

    def snapshot(self) -> dict[str, list[Entry]]:
        """Both lists as they are now."""
        with self._locked() as state:
            return {key: [dict(e) for e in entries] for key, entries in state.items()}

    def push(self, entry: Entry) -> None:
        """Add a run at the end of the queue."""
        with self._locked() as state:
            state["queued"].append(entry)

    def remove_queued(self, run: str) -> bool:
        """Take ``run`` out of the queue; False when it was not waiting there (it started or left)."""
        with self._locked() as state:
            kept = [e for e in state["queued"] if e["run"] != run]
            removed = len(kept) != len(state["queued"])
            state["queued"] = kept
            return removed

    def advance(
        self, max_running: int, alive: Callable[[Entry], bool], start: Callable[[Entry], Entry | None]
    ) -> dict[str, list[Entry]]:
        """Forget runs whose worker has ended, then start queued runs in order while fewer than
        ``max_running`` train. ``start(entry)`` returns the running entry (with its worker's pid),
        or None when the run could not start (it then leaves the queue). Returns both lists."""
        with self._locked() as state:
            state["running"] = [e for e in state["running"] if alive(e)]
            while state["queued"] and len(state["running"]) < max_running:
                started = start(state["queued"].pop(0))
                if started is not None:
                    state["running"].append(started)
            return {key: [dict(e) for e in entries] for key, entries in state.items()}
