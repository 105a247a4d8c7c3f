"""Runs train in worker processes: a killed worker ends one run only, and the queue outlives the server."""

from __future__ import annotations

import os
import signal
import time

from transfer_core import RunStore
from ui.jobs import JobManager


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.02)


def _started_at(job) -> float:
    return next(e["time"] for e in job.events() if e["event"] == "started")


def test_a_killed_worker_reads_interrupted_the_other_run_finishes_and_it_resumes(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setenv("WARMSTART_CHECKPOINT_SECONDS", "0")  # a checkpoint after every epoch
    manager = JobManager(RunStore(tmp_path / "runs"), max_concurrent=2)
    doomed = manager.start(tiny_config.replace(epochs=30, strategy="full", seed=1))  # about 5 s of epochs
    other = manager.start(tiny_config.replace(epochs=4, seed=2))
    try:
        _until(lambda: doomed.run.resume_file.exists(), 90, "the first checkpoint")
        assert doomed.pid != os.getpid() and doomed.status == "running"
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(30)
        assert doomed.status == "interrupted" and doomed.run.status() == "interrupted" and doomed.error is None
        assert doomed.run.read_events({"epoch"}) and doomed.run.checkpoint_file.exists()

        other.wait(120)
        assert other.status == "finished", other.error

        resumed = manager.resume(doomed.run)
        resumed.wait(120)
        assert resumed.status == "finished", resumed.error
        assert doomed.run.status() == "finished"
        started = next(e for e in resumed.events() if e["event"] == "started")
        assert started["start_epoch"] >= 1  # went on from its last checkpoint
    finally:
        for job in manager.active():
            manager.cancel(job)
            job.wait(30)


def test_the_queue_survives_a_server_restart_and_starts_in_order(tmp_path, tiny_config):
    store = RunStore(tmp_path / "runs")
    before = JobManager(store, max_concurrent=1)
    a = before.start(tiny_config.replace(epochs=300, strategy="full", seed=1))
    b = before.start(tiny_config.replace(epochs=2, seed=2))
    c = before.start(tiny_config.replace(epochs=2, seed=3))
    assert (a.status, b.status, c.status) == ("running", "queued", "queued")
    _until(lambda: any(e["event"] == "epoch" for e in a.events()), 90, "run A's first epoch")
    before.close()  # the server goes away; A's worker keeps training

    after = JobManager(store, max_concurrent=1)  # the restarted server
    try:
        a2, b2, c2 = (after.get(job.run.path) for job in (a, b, c))
        assert a2 is not a and a2.status == "running" and a2.pid == a.pid
        assert (b2.status, c2.status) == ("queued", "queued")
        assert (after.runs_ahead(b2), after.runs_ahead(c2)) == (1, 2)
        a2.stop()  # through the run folder: works for a worker this server did not start
        a2.wait(60)
        assert a2.status == "stopped" and a.run.status() == "stopped"
        c2.wait(120)
        assert b2.status == "finished" and c2.status == "finished", (b2.error, c2.error)
        a_ended = a.run.read_events({"stopped"})[-1]["time"]
        assert a_ended <= _started_at(b2) <= b2.events()[-1]["time"] <= _started_at(c2)
    finally:
        for job in after.active():
            after.cancel(job)
            job.wait(30)


def test_a_job_never_reads_failed_while_its_worker_is_being_launched(tmp_path, tiny_config, monkeypatch):
    """Regression: the job looked started (offset set) before Popen returned, so for those
    milliseconds it read "failed", and wait() returned early on a run that then trained."""
    import subprocess

    from ui import jobs

    store = RunStore(tmp_path / "runs")
    job = jobs.Job(run=store.new_run(tiny_config), config=tiny_config)
    seen = []
    real_popen = subprocess.Popen

    def observing_popen(*args, **kwargs):
        seen.append((job.status, job.error))
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(jobs.subprocess, "Popen", observing_popen)
    job._launch(lambda: None)
    try:
        assert seen == [("queued", None)]
        job.wait(120)
        assert job.status == "finished", job.error
    finally:
        job.stop()


def test_a_run_goes_to_the_worker_waiting_with_its_imports_done_and_another_waits_after_it(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setenv("WARMSTART_STANDBY_WORKER", "1")
    manager = JobManager(RunStore(tmp_path / "runs"))
    try:
        waiting = manager.waiting_worker_pid
        assert waiting is not None
        job = manager.start(tiny_config)
        assert job.pid == waiting
        job.wait(120)
        assert job.status == "finished", job.error
        assert job.run.checkpoint_file.exists() and (job.run.path / "worker.log").exists()
        _until(lambda: manager.waiting_worker_pid not in (None, waiting), 10, "the next waiting worker")
    finally:
        manager.close()
    assert manager.waiting_worker_pid is None


def test_a_waiting_worker_started_with_another_environment_or_dead_is_not_used(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setenv("WARMSTART_STANDBY_WORKER", "1")
    manager = JobManager(RunStore(tmp_path / "runs"))
    try:
        stale = manager.waiting_worker_pid
        monkeypatch.setenv("WARMSTART_CHECKPOINT_SECONDS", "0")  # a setting the waiting worker never saw
        job = manager.start(tiny_config)
        assert job.pid not in (None, stale)
        job.wait(120)
        assert job.status == "finished", job.error

        _until(lambda: manager.waiting_worker_pid is not None, 10, "the next waiting worker")
        dead = manager.waiting_worker_pid
        os.kill(dead, signal.SIGKILL)
        _until(lambda: manager.waiting_worker_pid is None, 10, "the waiting worker's death")
        second = manager.start(tiny_config.replace(seed=1))
        assert second.pid not in (None, dead)
        second.wait(120)
        assert second.status == "finished", second.error
    finally:
        manager.close()


def test_a_waiting_worker_is_replaced_when_the_environment_changes_and_none_waits_when_memory_is_short(monkeypatch):
    from ui import standby

    waiting = standby.StandbyWorker()
    try:
        waiting.prepare()
        first = waiting.pid
        monkeypatch.setenv("WARMSTART_CHECKPOINT_SECONDS", "0")
        waiting.prepare()
        assert waiting.pid not in (None, first)
        _until(lambda: not _alive(first), 10, "the replaced worker's end")
        waiting.close()
        monkeypatch.setattr(standby, "available_memory", lambda: standby.MIN_AVAILABLE_BYTES - 1)
        waiting.prepare()
        assert waiting.pid is None
    finally:
        waiting.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
