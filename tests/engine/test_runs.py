import errno
import json
import os
import pickle

import pytest
import torch

from transfer_core import RunDir, RunStore, TrainConfig, WarmstartError
from transfer_core.training.events import EpochEnded, RunStarted, RunStopped
from transfer_core.runs.store import atomic_write_json, safe_torch_load


def test_atomic_write_never_leaves_a_half_file(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_json(target, {"ok": 1})

    class Boom:
        def __str__(self):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write_json(target, {"bad": Boom()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_torn_metrics_line_is_ignored(tmp_path):
    run = RunDir(tmp_path / "run")
    run.append_event(RunStarted(epochs=2, steps_per_epoch=1, train_size=4, val_size=2, classes=["a", "b"], device="cpu"))
    run.append_event(EpochEnded(epoch=1, epochs=2, train_loss=1, train_accuracy=0.5, val_loss=1, val_accuracy=0.5, lr=0.1, seconds=1, trainable_groups=0))
    with run.metrics_file.open("a") as handle:
        handle.write('{"event": "epoch", "epo')  # killed mid-write
    events = run.read_events()
    assert [e["event"] for e in events] == ["started", "epoch"]
    assert run.status() == "interrupted"  # no live process owns it
    run.mark_owner()
    assert run.status() == "running"
    run.append_event(RunStopped(epoch=2, best_epoch=1, message="stopped"))  # the next writer closes the torn line
    assert [e["event"] for e in run.read_events()] == ["started", "epoch", "stopped"]


def test_event_lines_kept_open_during_a_run_are_readable_at_once_and_survive_a_deleted_folder_and_a_full_disk(tmp_path):
    """A training run keeps metrics.jsonl open (a line per step); readers still see every line as
    it is written, a torn line left by a killed writer is closed first, a run folder deleted under
    the open file is made again rather than lines going into the deleted file, and a write that
    fails leaves the file to be opened afresh by the next one."""
    import shutil

    def epoch(n):
        return EpochEnded(epoch=n, epochs=9, train_loss=1, train_accuracy=0.5, val_loss=1, val_accuracy=0.5, lr=0.1, seconds=1, trainable_groups=0)

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.metrics_file.write_text('{"event": "epoch", "epo')  # torn by a killed writer
    with run.metrics_kept_open():
        run.append_event(epoch(1))
        assert [e["epoch"] for e in RunDir(run.path).read_events()] == [1]  # another reader sees it at once
        run.append_event(epoch(2))
        shutil.rmtree(run.path)
        run.append_event(epoch(3))
        assert [e["epoch"] for e in RunDir(run.path).read_events()] == [3]

        class FullDisk:
            def __init__(self, real):
                self.real = real

            def fileno(self):
                return self.real.fileno()

            def write(self, data):
                raise OSError(errno.ENOSPC, "No space left on device")

            def close(self):
                self.real.close()

        run._kept_lines._file = FullDisk(run._kept_lines._file)
        with pytest.raises(OSError):
            run.append_event(epoch(4))
        run.append_event(epoch(5))  # the failed file was closed: this line opens it again
        os.close(run._kept_lines._file.fileno())  # a descriptor gone bad is noticed and the file opened again
        run.append_event(epoch(6))
    run.append_event(epoch(7))  # outside a run: opened for the line alone
    assert [e["epoch"] for e in run.read_events()] == [3, 5, 6, 7]
    assert run._kept_lines is None


def test_kept_open_event_lines_finish_a_short_write_follow_a_renamed_folder_and_nest(tmp_path):
    """A write the disk takes only part of is completed (or fails and is held), never left as a fragment
    the next line is glued to; a run folder renamed away under the open file gets its lines at the
    path again, as before the file was kept open; an inner metrics_kept_open reuses the outer file."""

    def epoch(n):
        return EpochEnded(epoch=n, epochs=9, train_loss=1, train_accuracy=0.5, val_loss=1, val_accuracy=0.5, lr=0.1, seconds=1, trainable_groups=0)

    run = RunDir(tmp_path / "run")
    with run.metrics_kept_open():
        run.append_event(epoch(1))

        class HalfWrites:  # takes half of each write, as a nearly full disk may
            def __init__(self, real):
                self.real = real

            def fileno(self):
                return self.real.fileno()

            def write(self, data):
                return self.real.write(bytes(data)[: max(1, len(data) // 2)])

            def close(self):
                self.real.close()

        run._kept_lines._file = HalfWrites(run._kept_lines._file)
        run.append_event(epoch(2))
        run.append_event(epoch(3))
        assert [e["epoch"] for e in RunDir(run.path).read_events()] == [1, 2, 3]
        with run.metrics_kept_open():  # nested: the same open file, still open after the inner block
            run.append_event(epoch(4))
        run.append_event(epoch(5))
        run.path.rename(tmp_path / "elsewhere")
        run.append_event(epoch(6))
    assert [e["epoch"] for e in run.read_events()] == [6]
    assert [e["epoch"] for e in RunDir(tmp_path / "elsewhere").read_events()] == [1, 2, 3, 4, 5]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/warmstart-pwned",))


def test_malicious_pickle_is_refused_and_runs_no_code(tmp_path):
    marker = "/tmp/warmstart-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    evil = tmp_path / "resume.pt"
    with evil.open("wb") as handle:
        pickle.dump({"model": _Exploit()}, handle)
    with pytest.raises(WarmstartError, match="Refusing to load"):
        safe_torch_load(evil)
    assert not os.path.exists(marker)
    torch.save({"epoch": 1, "w": torch.ones(2)}, tmp_path / "plain.pt")
    assert safe_torch_load(tmp_path / "plain.pt")["epoch"] == 1


def test_store_lists_runs_newest_first(tmp_path):
    store = RunStore(tmp_path)
    first = store.new_run(TrainConfig(data="x"), label="first")
    second = store.new_run(TrainConfig(data="x"), label="first")
    assert first.name != second.name
    assert {r.name for r in store.runs()} == {first.name, second.name}
    assert store.get(first.name).read_config() == TrainConfig(data="x")
    with pytest.raises(WarmstartError, match="No run named"):
        store.get("nope")
