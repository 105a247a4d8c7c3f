"""A killed process, a full disk or an unwritable folder never corrupts a run or loses its result."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from safetensors.torch import load as load_safetensors

from transfer_core import RunDir, Trainer, WarmstartError
from transfer_core.training.events import Event
from transfer_core.deploy.predict import load_trained_model
from transfer_core.runs.store import safe_torch_load


ROOT = Path(__file__).resolve().parents[2]

# Runs a training in a child process that SIGKILLs itself at a chosen point.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import tests.conftest  # registers the tiny test backbone
    from transfer_core import TrainConfig, Trainer
    from transfer_core.runs import store as runs
    from transfer_core.training.events import Event

    mode, config_json, run_dir = sys.argv[1:4]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    calls = {{"resume": 0, "lines": 0}}

    if mode == "mid-file-write":  # dies with half of the second resume.pt written to its temporary file
        real_write = runs.RunDir.write_bytes
        def write_bytes(self, name, data):
            if name == "resume.pt":
                calls["resume"] += 1
                if calls["resume"] == 2:
                    runs.atomic_write(self.path / name, lambda tmp: (tmp.write_bytes(data[: len(data) // 2]), die()))
            real_write(self, name, data)
        runs.RunDir.write_bytes = write_bytes

    if mode == "mid-line":  # dies with half an event line appended: the second step after the first epoch
        real_append = runs.RunDir.append_lines
        def append_lines(self, lines):
            calls["epochs"] = calls.get("epochs", 0) + ('"event": "epoch"' in lines[0])
            calls["lines"] += calls["epochs"] > 0 and '"event": "step"' in lines[0]
            if calls["lines"] == 2:
                with self.metrics_file.open("a", encoding="utf-8") as handle:
                    handle.write(lines[0][: len(lines[0]) // 2])
                die()
            real_append(self, lines)
        runs.RunDir.append_lines = append_lines

    def between_steps(event):
        if mode == "mid-epoch" and event.kind is Event.STEP and event.epoch == 3 and event.step == 2:
            die()

    # Writes after every epoch (no timer), so each kill point meets a checkpoint write to interrupt.
    Trainer(TrainConfig.from_dict(__import__("json").loads(config_json)), run_dir, [between_steps], checkpoint_interval_s=0).fit()
    """
)


@pytest.mark.parametrize("mode", ["mid-epoch", "mid-file-write", "mid-line"])
def test_killed_run_stays_readable_and_resumes(tiny_config, tmp_path, mode):
    config = tiny_config.replace(strategy="full", epochs=5)
    run = RunDir(tmp_path / "run")
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT)), mode, json.dumps(config.to_dict()), str(run.path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    # The store is consistent: every whole file parses, a torn line is skipped, the run reads as interrupted.
    assert run.status() == "interrupted"
    assert run.read_config() == config
    events = run.read_events()
    assert any(e["event"] == "started" for e in events) and any(e["event"] == "epoch" for e in events)
    state = safe_torch_load(run.resume_file)
    assert state["epoch"] >= 0
    assert run.load_checkpoint()  # the best checkpoint is a complete safetensors file
    if mode == "mid-file-write":
        assert state["epoch"] == 0  # the half-written second state never replaced the first
        assert list(run.path.glob(".resume.pt.*.tmp"))  # the debris is there until the next start

    result = Trainer(config, run).fit(resume=True)
    assert result.status == "finished" and run.status() == "finished"
    assert not list(run.path.glob(".*.tmp"))
    lines = run.metrics_file.read_text(encoding="utf-8").splitlines()
    torn = [line for line in lines if not (line.startswith("{") and line.endswith("}"))]
    assert len(torn) == (1 if mode == "mid-line" else 0)  # the torn line stays on its own; later lines are whole
    assert run.read_events()[-1]["event"] == "finished"
    load_trained_model(run)


def test_full_disk_keeps_the_result_in_memory_until_saved(tiny_config, tmp_path, full_disk):
    seen = []

    def fill_disk_after_first_epoch(event):
        seen.append(event)
        if event.kind is Event.EPOCH:
            full_disk["on"] = True

    trainer = Trainer(tiny_config.replace(epochs=3), tmp_path / "run", [fill_disk_after_first_epoch])
    result = trainer.fit()
    assert result.status == "finished" and result.report["val_accuracy"] >= 2 / 3
    failures = [e for e in seen if e.kind is Event.STORAGE]
    assert len(failures) == 1 and "No space left on device" in failures[0].message and "kept in memory" in failures[0].message
    assert {"best.safetensors", "report.json", "metrics.jsonl"} <= set(result.unsaved)
    assert not (tmp_path / "run" / "report.json").exists()

    # Download from memory: the bundle holds a loadable model and the report.
    with zipfile.ZipFile(BytesIO(trainer.held.bundle())) as bundle:
        names = {Path(n).name for n in bundle.namelist()}
        assert {"config.json", "model.json", "best.safetensors", "report.json"} <= names
        weights = load_safetensors(bundle.read("run/best.safetensors"))
        assert json.loads(bundle.read("run/report.json"))["val_accuracy"] == result.report["val_accuracy"]
    assert weights

    # Space freed: one retry writes everything, in order.
    full_disk["on"] = False
    assert trainer.held.retry() == []
    run = RunDir(tmp_path / "run")
    assert run.read_report()["val_accuracy"] == result.report["val_accuracy"]
    assert run.read_events()[-1]["event"] == "finished" and run.status() == "finished"
    load_trained_model(run)


def test_unwritable_run_folder_is_a_clear_error_before_training(tiny_config, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(WarmstartError, match=r"Cannot write to the run folder '.*a-file/run' .*free some disk space"):
        Trainer(tiny_config, blocker / "run").fit()
