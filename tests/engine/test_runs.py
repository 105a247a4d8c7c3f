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
