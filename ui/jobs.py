"""Process-wide training jobs: one worker thread per run, shared by every browser tab.

The app creates one :class:`JobManager` through ``st.cache_resource``; each page asks it for
the current job instead of starting its own, so refreshing, switching pages or opening a
second tab shows the same run and never trains a duplicate. At most ``max_concurrent`` runs
train at once; later starts wait in a first-in, first-out queue and begin on their own when
a slot frees up. Workers never call Streamlit; pages poll :meth:`Job.events` from a fragment.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transfer_core import Event, RunDir, RunEvent, RunStore, TrainConfig, Trainer, WarmstartError

__all__ = ["Job", "JobManager"]

_TERMINAL = {Event.FINISHED.value, Event.STOPPED.value, Event.FAILED.value}


@dataclass
class Job:
    """One training run in a background thread, with the events it emitted so far."""

    run: RunDir
    config: TrainConfig
    trainer: Trainer
    resume: bool = False
    created: float = field(default_factory=time.time)
    error: str | None = None
    cancelled: bool = False
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
        """queued / running / finished / stopped / failed / cancelled."""
        if self.cancelled:
            return "cancelled"
        with self._lock:
            for record in reversed(self._events):
                if record["event"] in _TERMINAL:
                    return record["event"]
        if self.error:
            return "failed"
        if self._thread is None:
            return "queued"
        return "running" if self._thread.is_alive() else "failed"

    @property
    def active(self) -> bool:
        return self.status in ("running", "queued")

    @property
    def unsaved(self) -> list[str]:
        """Result files the run folder refused (disk full, permissions), held in memory."""
        return self.trainer.held.pending

    def stop(self) -> None:
        self.trainer.request_stop()

    def wait(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread is None and not self.cancelled:  # queued: wait for it to start
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(0.05)
        if self._thread:
            self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


class JobManager:
    """Starts, queues, tracks and stops training jobs for the whole server process.

    Args:
        store: where runs are written.
        max_concurrent: runs allowed to train at once; further starts wait in a queue.
    """

    def __init__(self, store: RunStore, max_concurrent: int = 1) -> None:
        self.store = store
        self.max_concurrent = max_concurrent
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._lock = threading.Lock()

    def start(self, config: TrainConfig, label: str | None = None, store: RunStore | None = None) -> Job:
        """Train ``config`` now (in ``store``, by default the manager's), or queue it when every slot is busy.

        If that exact config is already running or queued, that job is returned instead, so a
        double click, a refresh or a second tab never trains a duplicate.

        Raises:
            WarmstartError: when the run folder cannot be created (disk full, permissions).
        """
        with self._lock:
            store = store or self.store
            for job in self._jobs.values():
                if job.active and job.config == config and not job.resume and job.run.path.parent == store.root:
                    return job
            try:
                run = store.new_run(config, label)
            except OSError as exc:
                raise WarmstartError(
                    f"Cannot create a run folder in '{store.root}' ({exc.strerror or exc}); free some disk space "
                    "or set WARMSTART_HOME to a writable folder."
                ) from None
            return self._submit(Job(run=run, config=config, trainer=Trainer(config, run)))

    def resume(self, run: RunDir) -> Job:
        """Continue a stopped or interrupted run from its last complete epoch (queued like any start)."""
        with self._lock:
            existing = self._jobs.get(_key(run.path))
            if existing is not None and existing.active:
                return existing
            config = run.read_config()
            return self._submit(Job(run=run, config=config, trainer=Trainer(config, run), resume=True))

    def _submit(self, job: Job) -> Job:
        job.trainer.subscribe(job.record)
        self._jobs[_key(job.run.path)] = job
        self._queue.append(job)
        self._start_queued()
        return job

    def _start_queued(self) -> None:
        """Start queued jobs while slots are free (called with the lock held)."""
        running = sum(1 for job in self._jobs.values() if job._thread is not None and job._thread.is_alive())
        while self._queue and running < self.max_concurrent:
            job = self._queue.pop(0)
            job._thread = threading.Thread(target=self._work, args=(job,), name=f"train-{job.run.name}", daemon=True)
            job._thread.start()
            running += 1

    def _work(self, job: Job) -> None:
        try:
            job.trainer.fit(resume=job.resume)
        except WarmstartError as exc:
            job.error = str(exc)
        except Exception as exc:  # keep the server alive; the run folder has the details
            job.error = f"Training failed unexpectedly: {exc}"
            try:
                (job.run.path / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
            except OSError:
                pass
        finally:
            with self._lock:
                job._thread = _Finished()
                self._start_queued()

    def cancel(self, job: Job) -> None:
        """Stop a running job after its current batch, or take a queued one out of the queue."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                job.cancelled = True
                return
        job.stop()

    def runs_ahead(self, job: Job) -> int:
        """How many runs must finish or leave before a queued ``job`` starts (0 when it is not queued)."""
        with self._lock:
            if job not in self._queue:
                return 0
            running = sum(1 for j in self._jobs.values() if j._thread is not None and j._thread.is_alive())
            return self._queue.index(job) + max(1, running - self.max_concurrent + 1)

    def get(self, run_path: str | Path) -> Job | None:
        """The job training (or that trained) the run folder ``run_path`` in this server process."""
        with self._lock:
            return self._jobs.get(_key(run_path))

    def latest(self, within: str | Path | None = None) -> Job | None:
        """The most recently started job of this server process, if any; with ``within``, only
        jobs whose run folder lies inside that folder (a project's runs)."""
        with self._lock:
            jobs = [job for job in self._jobs.values() if within is None or _inside(job.run.path, within)]
            return max(jobs, key=lambda job: job.created, default=None)

    def active(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.active]


def _key(path: str | Path) -> str:
    """Jobs are known by their run folder: run names repeat across projects and users."""
    return str(Path(path).absolute())


def _inside(path: Path, folder: str | Path) -> bool:
    return Path(path).absolute().is_relative_to(Path(folder).absolute())


class _Finished:
    """Stands in for a worker thread that has ended (keeps ``Job.status`` simple)."""

    @staticmethod
    def is_alive() -> bool:
        return False

    @staticmethod
    def join(timeout: float | None = None) -> None:
        return None
