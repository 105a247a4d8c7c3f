"""The training worker's entry point and its stop file, run in this process (no torch import per test)."""

from __future__ import annotations

import io
import json
import os
import sys
import time

import torch

from transfer_core import RunDir, RunStore, Trainer
from transfer_core.runs.store import HeldWrites
from transfer_core.training.callbacks import StopRequestFile
from transfer_core.worker import held_report, restore_held, run_worker, worker_command


def test_worker_command_runs_the_engine_module_and_puts_torchrun_in_front_for_several_processes(tmp_path):
    run = tmp_path / "run"
    assert worker_command(run) == [sys.executable, "-m", "transfer_core.worker", str(run.absolute())]
    assert worker_command(run, resume=True)[-1] == "--resume"
    assert worker_command(run, nproc=2)[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert worker_command(run, nproc=2)[5:] == worker_command(run)[1:]


def test_worker_trains_the_folders_config_and_reports_at_exit(tmp_path, tiny_config):
    run = RunStore(tmp_path / "runs").new_run(tiny_config.replace(epochs=2))
    report = io.StringIO()
    assert run_worker(run.path, report=report) == 0
    assert run.status() == "finished"
    outcome = json.loads(report.getvalue())
    assert outcome["held"] is None and outcome["reused_features"] == 0


def test_bad_input_ends_as_the_runs_failed_event_with_one_sentence(tmp_path, tiny_config):
    run = RunStore(tmp_path / "runs").new_run(tiny_config.replace(data=str(tmp_path / "nothing-here")))
    assert run_worker(run.path) == 2
    failed = run.read_events()[-1]
    assert failed["event"] == "failed" and "does not exist" in failed["message"] and "Traceback" not in failed["message"]

    broken = RunStore(tmp_path / "runs").new_run(tiny_config)
    broken.config_file.write_text("{not json", encoding="utf-8")
    assert run_worker(broken.path) == 2
    assert broken.status() == "failed" and "is not valid JSON" in broken.read_events()[-1]["message"]


def test_a_bad_checkpoint_interval_or_plugin_is_named(tmp_path, tiny_config, monkeypatch):
    run = RunStore(tmp_path / "runs").new_run(tiny_config)
    monkeypatch.setenv("WARMSTART_CHECKPOINT_SECONDS", "soon")
    assert run_worker(run.path) == 2
    assert "WARMSTART_CHECKPOINT_SECONDS must be a number of seconds (0 or more), not 'soon'" in run.read_events()[-1]["message"]
    monkeypatch.delenv("WARMSTART_CHECKPOINT_SECONDS")
    monkeypatch.setenv("WARMSTART_WORKER_IMPORTS", "no_such_module_here")
    assert run_worker(run.path) == 2
    assert "'no_such_module_here', which cannot be imported" in run.read_events()[-1]["message"]


def test_a_worker_under_torchrun_trains_one_run_on_two_processes_and_reports_once(tmp_path, tiny_config):
    """The command the app runs for a multi-process job: torchrun, two Gloo ranks, one run folder."""
    import subprocess

    from transfer_core.worker import worker_environment

    run = RunStore(tmp_path / "runs").new_run(tiny_config.replace(epochs=2, strategy="frozen", dropout=0.0))
    env = {**worker_environment(), "WARMSTART_WORKER_IMPORTS": "tests.tiny_backbone"}
    done = subprocess.run(worker_command(run.path, nproc=2), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert run.status() == "finished"
    reports = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1  # rank 0 alone reports (and writes)
    assert len([e for e in run.read_events() if e["event"] == "started"]) == 1


def test_the_stop_file_stops_the_run_after_a_batch_and_is_then_removed(tmp_path, tiny_config):
    run = RunStore(tmp_path / "runs").new_run(tiny_config.replace(epochs=50))

    def ask_after_first_epoch(event):
        if event.kind == "epoch" and event.epoch == 1:
            run.request_stop()

    trainer = Trainer(tiny_config.replace(epochs=50), run, [ask_after_first_epoch], checkpoint_interval_s=0)
    trainer.subscribe(StopRequestFile(run.stop_file, trainer.request_stop))
    result = trainer.fit()
    assert result.status == "stopped" and run.status() == "stopped"
    assert result.report["epochs_run"] == 1  # stopped at the first batch of epoch 2
    assert not run.stop_file.exists()  # a later resume does not stop at once
    assert Trainer(tiny_config.replace(epochs=3), run).fit(resume=True).status == "finished"


def test_held_writes_cross_a_process_boundary_as_json(tmp_path):
    held = HeldWrites(RunDir(tmp_path / "worker-side"))
    held.files = {"best.safetensors": b"\x00\x01weights"}
    held.lines = ['{"event": "finished"}']
    held.error = OSError(28, "No space left on device")
    restored = restore_held(RunDir(tmp_path / "run"), json.loads(json.dumps(held_report(held))))
    assert restored.files == held.files and restored.lines == held.lines
    assert restored.pending == ["best.safetensors", "metrics.jsonl"] and restored.error.strerror == "No space left on device"
    assert restored.retry() == [] and (tmp_path / "run" / "best.safetensors").read_bytes() == b"\x00\x01weights"
    assert RunDir(tmp_path / "run").read_events() == [{"event": "finished"}]


def test_features_cached_by_one_process_are_found_by_another_through_the_workspace(tmp_path):
    from transfer_core.features.cache import FeatureCache

    features = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    FeatureCache(1024, folder=lambda: tmp_path / "feature-cache").put("key", features)
    other_process = FeatureCache(1024, folder=lambda: tmp_path / "feature-cache")
    assert torch.equal(other_process.get("key"), features) and other_process.get("missing") is None
    (tmp_path / "feature-cache" / "key.safetensors").write_bytes(b"damaged")
    assert FeatureCache(1024, folder=lambda: tmp_path / "feature-cache").get("key") is None  # a miss, not an error
    FeatureCache(1024, folder=lambda: tmp_path / "sized").put("key", features)
    size = (tmp_path / "sized" / "key.safetensors").stat().st_size
    small = FeatureCache(int(2.5 * size), folder=lambda: tmp_path / "small")
    for key in ("a", "b", "c"):
        small.put(key, features)
        os.utime(tmp_path / "small" / f"{key}.safetensors", (time.time() - 1000 + ord(key),) * 2)  # distinct ages
    assert sorted(f.stem for f in (tmp_path / "small").glob("*.safetensors")) == ["b", "c"]  # the oldest went


def test_a_standby_worker_reads_its_run_from_one_line_and_exits_at_the_end_of_its_input(tmp_path, monkeypatch, capsys):
    from transfer_core.worker import _await_run, hand_over, main, standby_command

    assert standby_command() == [sys.executable, "-m", "transfer_core.worker", "--standby"]
    pipe = io.BytesIO()
    pipe.close = lambda: None  # keep the bytes readable after the hand-over closes its end
    hand_over(pipe, tmp_path / "run", resume=True)
    assert _await_run(io.StringIO(pipe.getvalue().decode())) == (str((tmp_path / "run").absolute()), True)
    assert _await_run(io.StringIO("")) is None
    assert _await_run(io.StringIO("train something\n")) is None
    assert "expects a line like" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["--standby"]) == 0  # the app went away before giving it a run
