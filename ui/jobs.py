"""Process-wide training jobs: one worker thread per run, shared by every browser tab.

The app creates one :class:`JobManager` through ``st.cache_resource``; each page asks it for
the current job instead of starting its own, so refreshing, switching pages or opening a
second tab shows the same run and never trains a duplicate. Workers never call Streamlit;
pages poll :meth:`Job.events` from a fragment.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from transfer_core import RunDir, RunStore, TrainConfig, Trainer, WarmstartError
from transfer_core.events import Event, RunEvent

__all__ = ["Job", "JobManager"]

_TERMINAL = {Event.FINISHED.value, Event.STOPPED.value, Event.FAILED.value}


@dataclass
class Job:
    """One training run in a background thread, with the events it emitted so far."""

    run: RunDir
    config: TrainConfig
    trainer: Trainer
    created: float = field(default_factory=time.time)
    error: str | None = None
    _events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def record(self, event: RunEvent) -> None:
        with self._lock:
            self._events.append(event.to_dict())

    def events(self) -> list[dict[str, Any]]:
        """A copy of the events so far (safe to read while training continues)."""
        with self._lock:
            return list(self._events)

    @property
    def status(self) -> str:
        with self._lock:
            for record in reversed(self._events):
                if record["event"] in _TERMINAL:
                    return record["event"]
        if self.error:
            return "failed"
        return "running" if self._thread and self._thread.is_alive() else "queued"

    @property
    def active(self) -> bool:
        return self.status in ("running", "queued")

    def stop(self) -> None:
        self.trainer.request_stop()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)


class JobManager:
    """Starts, tracks and stops training jobs for the whole server process.

    Args:
        store: where runs are written.
        max_concurrent: runs allowed to train at once; further starts are refused with a message.
    """

    def __init__(self, store: RunStore, max_concurrent: int = 1) -> None:
        self.store = store
        self.max_concurrent = max_concurrent
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, config: TrainConfig, label: str | None = None) -> Job:
        """Start training ``config``; if that exact config is already training, return that job instead."""
        with self._lock:
            active = [job for job in self._jobs.values() if job.active]
            for job in active:
                if job.config == config:
                    return job
            if len(active) >= self.max_concurrent:
                raise WarmstartError(
                    f"A run ('{active[0].run.name}') is already training; stop it or wait for it to finish."
                )
            run = self.store.new_run(config, label)
            trainer = Trainer(config, run)
            job = Job(run=run, config=config, trainer=trainer)
            trainer.subscribe(job.record)
            job._thread = threading.Thread(target=self._work, args=(job,), name=f"train-{run.name}", daemon=True)
            self._jobs[run.name] = job
            job._thread.start()
            return job

    @staticmethod
    def _work(job: Job) -> None:
        try:
            job.trainer.fit()
        except WarmstartError as exc:
            job.error = str(exc)
        except Exception as exc:  # keep the server alive; the run folder has the details
            job.error = f"Training failed unexpectedly: {exc}"
            (job.run.path / "error.log").write_text(traceback.format_exc(), encoding="utf-8")

    def get(self, run_name: str) -> Job | None:
        with self._lock:
            return self._jobs.get(run_name)

    def latest(self) -> Job | None:
        """The most recently started job of this server process, if any."""
        with self._lock:
            return max(self._jobs.values(), key=lambda job: job.created, default=None)

    def active(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.active]
