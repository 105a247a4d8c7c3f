"""Process-wide training jobs: each run trains in a worker process of its own, shared by every tab.

The app creates one :class:`JobManager` through ``st.cache_resource``; each page asks it for
the current job instead of starting its own, so refreshing, switching pages or opening a
second tab shows the same run and never trains a duplicate.

Each run trains in its own OS process (``python -m transfer_core.worker RUN_DIR``, see
:mod:`transfer_core.worker`): a crash, an out-of-memory kill or a hung call ends that run
alone, and training never competes with page rendering for this interpreter. The app follows
a run through its folder only: its events (``metrics.jsonl``) and its worker's pid. Stopping
writes the run folder's ``stop-requested`` file, which the worker checks after every batch. A
worker that dies reads as "interrupted"; its last checkpoint is intact and the run can be resumed.

At most ``max_concurrent`` runs (``WARMSTART_MAX_RUNS``) train at once; later starts wait in a
first-in, first-out queue kept in ``$WARMSTART_HOME/queue.json`` (see :mod:`ui.run_queue`), so
after a server restart the new manager follows the runs still training and starts the queued
ones in order. Workers run in their own session: stopping the server does not stop them.

While nothing trains, the manager keeps one worker waiting with its imports done (:mod:`ui.standby`),
and the next single-process run goes to it: training then starts about 3 s sooner.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transfer_core import Event, RunDir, RunStore, TrainConfig, WarmstartError
from transfer_core.runs.store import HeldWrites
from transfer_core.worker import hand_over, restore_held, worker_command, worker_environment

from .run_queue import Entry, RunQueue, pid_alive
from .standby import StandbyWorker, standby_enabled
from .standby import end as end_waiting

__all__ = ["Job", "JobManager"]

_LIFECYCLE = {Event.STARTED.value, Event.FINISHED.value, Event.STOPPED.value, Event.FAILED.value}
_TERMINAL = _LIFECYCLE - {Event.STARTED.value}
_TICK_S = 0.5  # how often a manager looks for ended workers and free slots


@dataclass(eq=False)
class Job:
    """One run, queued or training in a worker process, followed through its run folder."""

    run: RunDir
    config: TrainConfig
    resume: bool = False
    processes: int = 1  # more than one: the worker runs under torchrun, one process per GPU
    created: float = field(default_factory=time.time)
    cancelled: bool = False
    _offset: int | None = None  # events the folder held before this job's worker started; None while queued
    _process: subprocess.Popen | None = None  # a worker this server started
    _pid: int | None = None  # a worker adopted from an earlier server
    _host: str | None = None
    _ended: threading.Event = field(default_factory=threading.Event)
    _launch_error: str | None = None
    _outcome: dict[str, Any] = field(default_factory=dict)  # the worker's exit report
    _held: HeldWrites | None = None
    _cache: tuple[Any, list[dict[str, Any]]] | None = None

    # -- what the pages read -------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """This job's events so far (a resumed run's: from its resumption on), oldest first."""
        if self._offset is None:
            return []
        held = self._held.lines if self._held is not None else []
        try:
            stat = self.run.metrics_file.stat()
            key = (stat.st_mtime_ns, stat.st_size, len(held))
        except OSError:
            key = (None, None, len(held))
        if self._cache is None or self._cache[0] != key:
            records = self.run.read_events()[self._offset:] + [_parse(line) for line in held]
            self._cache = (key, [r for r in records if r is not None])
        return list(self._cache[1])

    @property
    def status(self) -> str:
        """queued / running / finished / stopped / failed / interrupted / cancelled."""
        if self.cancelled:
            return "cancelled"
        if self._launch_error:
            return "failed"
        if self._offset is None:
            return "queued"
        lifecycle = [e["event"] for e in self.events() if e.get("event") in _LIFECYCLE]
        if lifecycle and lifecycle[-1] in _TERMINAL:
            return lifecycle[-1]
        if self.worker_alive:
            return "running"
        return "interrupted" if lifecycle else "failed"

    @property
    def active(self) -> bool:
        return self.status in ("running", "queued")

    @property
    def error(self) -> str | None:
        """The one-sentence reason a run failed, if it did."""
        if self._launch_error:
            return self._launch_error
        failed = [e for e in self.events() if e.get("event") == Event.FAILED.value]
        if failed:
            return failed[-1].get("message") or "Training failed."
        if self._offset is not None and not self.cancelled and self.status == "failed":
            code = self._process.returncode if self._process is not None else None
            return (f"The training process ended before training began (exit code {code}); "
                    f"details are in {self.run.worker_log}.")
        return None

    @property
    def pid(self) -> int | None:
        """The worker's process id (None while queued)."""
        return self._process.pid if self._process is not None else self._pid

    @property
    def worker_alive(self) -> bool:
        if self._process is not None:
            return not self._ended.is_set()
        return self._pid is not None and pid_alive(self._pid, self._host)

    @property
    def reused_features(self) -> int | None:
        """Images whose frozen-part output came from the feature cache, as the worker reported at exit."""
        return self._outcome.get("reused_features")

    # -- results a full disk refused ------------------------------------------------------
    @property
    def unsaved(self) -> list[str]:
        """Result files the run folder refused (disk full, permissions), held here in memory.

        The worker holds them while it trains and hands them over when it ends; a worker adopted
        after a server restart cannot hand them over (they die with it), so this stays empty then.
        """
        return self._held.pending if self._held is not None else []

    @property
    def unsaved_reason(self) -> str | None:
        error = self._held.error if self._held is not None else None
        return (error.strerror or str(error)) if error is not None else None

    def retry_saving(self) -> list[str]:
        """Write the held results into the run folder; returns what is still unsaved."""
        return self._held.retry() if self._held is not None else []

    def results_bundle(self) -> bytes:
        """The run's results as a zip, from memory where the disk does not have them."""
        return (self._held or HeldWrites(self.run)).bundle()

    # -- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the worker to stop after its current batch (the run keeps its best checkpoint)."""
        try:
            self.run.request_stop()
        except OSError:  # the folder refuses even an empty file: end the worker; the run reads as interrupted
            if self.worker_alive and self.pid is not None:
                os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the job is no longer queued or running and its worker has exited (its exit report
        read), or ``timeout`` seconds have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (self.active or (self._process is not None and not self._ended.is_set())) and (
            deadline is None or time.monotonic() < deadline
        ):
            time.sleep(0.05)

    # -- the worker ----------------------------------------------------------------------
    def _launch(self, on_end, standby: StandbyWorker | None = None) -> None:
        """Start this job's worker process, or hand the run to the worker waiting in ``standby`` with its
        imports done (:mod:`ui.standby`); ``on_end()`` is called once the worker has exited and been read."""
        offset = len(self.run.read_events())
        waiting = standby.take() if standby is not None and self.processes == 1 else None
        if waiting is not None:
            try:
                hand_over(waiting.stdin, self.run, self.resume)
                waiting.stdin = None  # closed by the hand-over; communicate() must not flush it
                self._process = waiting
            except OSError:  # it died waiting: start one the ordinary way
                end_waiting(waiting)
        if self._process is None:
            with open(self.run.worker_log, "ab") as log:
                self._process = subprocess.Popen(
                    worker_command(self.run, self.resume, self.processes), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=log, env=worker_environment(), start_new_session=True,  # a server's Ctrl-C or exit leaves it training
                )
        # Only now does the job read as started: with the offset set and no process yet, a page
        # (or wait()) polling from another thread would see a started job with no worker: "failed".
        self._offset = offset
        threading.Thread(target=self._follow, args=(on_end,), name=f"worker-{self.run.name}", daemon=True).start()

    def _follow(self, on_end) -> None:
        """Read the worker's exit report (also reaping it, so a dead worker never looks alive)."""
        out, _ = self._process.communicate()
        for line in out.decode("utf-8", "replace").splitlines():
            record = _parse(line)
            if record is not None:
                self._outcome = record
        if self._outcome.get("held"):
            self._held = restore_held(self.run, self._outcome["held"])
        self._ended.set()
        on_end()


class JobManager:
    """Starts, queues, tracks and stops training jobs for the whole server process.

    Args:
        store: where runs are written by default.
        max_concurrent: runs allowed to train at once; further starts wait in a queue.
        queue_file: where the queue is kept; by default ``queue.json`` next to ``store``'s folder.
        standby: keep a worker waiting while nothing trains (:mod:`ui.standby`); by default unless
            ``WARMSTART_STANDBY_WORKER=0``.
    """

    def __init__(
        self, store: RunStore, max_concurrent: int = 1, queue_file: str | Path | None = None, standby: bool | None = None,
    ) -> None:
        self.store = store
        self.max_concurrent = max(1, max_concurrent)
        self.queue = RunQueue(queue_file or store.root.parent / "queue.json")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._ticker: threading.Thread | None = None
        self._standby = StandbyWorker() if (standby_enabled() if standby is None else standby) else None
        self._advance()  # a restart: follow live workers, start what waited
        self._keep_ticking()

    def start(self, config: TrainConfig, label: str | None = None, store: RunStore | None = None, processes: int = 1) -> Job:
        """Train ``config`` now (in ``store``, by default the manager's), or queue it when every slot is busy;
        ``processes`` > 1 trains it on that many GPUs (torchrun and DistributedDataParallel).

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
            return self._submit(Job(run=run, config=config, processes=max(1, processes)))

    def resume(self, run: RunDir) -> Job:
        """Continue a stopped or interrupted run from its last complete epoch (queued like any start)."""
        with self._lock:
            existing = self._jobs.get(_key(run.path))
            if existing is not None and existing.active:
                return existing
            config = run.read_config()
            try:
                run.clear_stop_request()
            except OSError:
                pass  # the worker then stops at once and says so; nothing is lost
            return self._submit(Job(run=run, config=config, resume=True))

    def cancel(self, job: Job) -> None:
        """Stop a running job after its current batch, or take a queued one out of the queue."""
        with self._lock:
            if job.status == "queued" and self._queue_call(self.queue.remove_queued, _key(job.run.path)):
                job.cancelled = True
                return
        job.stop()

    def runs_ahead(self, job: Job) -> int:
        """How many runs must finish or leave before a queued ``job`` starts (0 when it is not queued)."""
        lists = self._queue_call(self.queue.snapshot) or {"queued": [], "running": []}
        waiting = [e["run"] for e in lists["queued"]]
        if _key(job.run.path) not in waiting:
            return 0
        return waiting.index(_key(job.run.path)) + max(1, len(lists["running"]) - self.max_concurrent + 1)

    def get(self, run_path: str | Path) -> Job | None:
        """The job training (or that trained) the run folder ``run_path`` since this manager started."""
        with self._lock:
            return self._jobs.get(_key(run_path))

    def latest(self, within: str | Path | None = None) -> Job | None:
        """The most recently started job of this manager, if any; with ``within``, only jobs whose
        run folder lies inside that folder (a project's runs)."""
        with self._lock:
            jobs = [job for job in self._jobs.values() if within is None or _inside(job.run.path, within)]
            return max(jobs, key=lambda job: job.created, default=None)

    def active(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.active]

    @property
    def waiting_worker_pid(self) -> int | None:
        """The process id of the worker waiting for the next run with its imports done, if one waits."""
        return self._standby.pid if self._standby is not None else None

    def close(self) -> None:
        """Stop scheduling (what a server's exit does): workers go on, and the next manager follows them."""
        with self._lock:
            self._closed = True
        if self._standby is not None:
            self._standby.close()

    # -- scheduling ----------------------------------------------------------------------
    def _submit(self, job: Job) -> Job:
        self._jobs[_key(job.run.path)] = job
        entry = {"run": _key(job.run.path), "resume": job.resume, "created": job.created, "processes": job.processes}
        if self._queue_call(self.queue.push, entry) is False:
            job._launch_error = f"Cannot write the queue file '{self.queue.path}'; free some disk space and start again."
            return job
        self._advance()
        self._keep_ticking()
        return job

    def _advance(self) -> dict[str, list[Entry]]:
        """Forget ended workers, start queued runs while slots are free, and learn of runs another
        manager (an earlier server) queued or started."""
        with self._lock:
            if self._closed:
                return {"queued": [], "running": []}
            lists = self._queue_call(self.queue.advance, self.max_concurrent, self._alive, self._start_worker)
            if lists is None:
                return {"queued": [], "running": []}
            for entry in lists["running"]:
                job = self._job_for(entry)
                if job is not None and job._offset is None and job._process is None:  # started by another manager
                    job._pid, job._host = entry.get("pid"), entry.get("host")
                    job._offset = int(entry.get("offset", 0))  # last: it is what makes the job read as started
            for entry in lists["queued"]:
                self._job_for(entry)
            if self._standby is not None and not (lists["queued"] or lists["running"]):
                self._standby.prepare()  # only while nothing trains: its imports would slow a run down
            return lists

    def _alive(self, entry: Entry) -> bool:
        job = self._jobs.get(entry["run"])
        if job is not None and job._process is not None:
            return job.worker_alive
        return "pid" in entry and pid_alive(entry["pid"], entry.get("host"))

    def _start_worker(self, entry: Entry) -> Entry | None:
        """Launch the worker of a queued entry; the running entry, or None when it cannot start."""
        job = self._job_for(entry)
        if job is None or job.cancelled:
            return None
        try:
            job._launch(self._worker_ended, self._standby)
        except OSError as exc:
            job._launch_error = f"Could not start the training process ({exc.strerror or exc}); free some memory or disk space and start again."
            return None
        return {**entry, "pid": job.pid, "host": socket.gethostname(), "offset": job._offset}

    def _job_for(self, entry: Entry) -> Job | None:
        """This manager's job for a queue entry, made from the run folder when an earlier server made the entry."""
        job = self._jobs.get(entry["run"])
        if job is None:
            run = RunDir(entry["run"])
            try:
                config = run.read_config()
            except WarmstartError:
                return None  # the folder was deleted or damaged: nothing to train
            job = Job(run=run, config=config, resume=bool(entry.get("resume")), processes=int(entry.get("processes", 1)),
                      created=float(entry.get("created", time.time())))
            self._jobs[entry["run"]] = job
        return job

    def _worker_ended(self) -> None:
        self._advance()

    def _keep_ticking(self) -> None:
        """Run the scheduler every half second while anything is queued or training (adopted workers
        are not this process's children: only polling notices that they ended)."""
        with self._lock:
            if self._ticker is None and not self._closed:
                self._ticker = threading.Thread(target=self._tick, name="job-scheduler", daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        while True:
            time.sleep(_TICK_S)
            with self._lock:
                lists = self._advance()
                if self._closed or not (lists["queued"] or lists["running"]):
                    self._ticker = None
                    return

    def _queue_call(self, method, *args):
        """Call a queue method; an unwritable workspace gives None (False for a push) instead of an error page."""
        try:
            return method(*args)
        except OSError:
            return False if method == self.queue.push else None


def _parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _key(path: str | Path) -> str:
    """Jobs are known by their run folder: run names repeat across projects and users."""
    return str(Path(path).absolute())


def _inside(path: Path, folder: str | Path) -> bool:
    return Path(path).absolute().is_relative_to(Path(folder).absolute())
