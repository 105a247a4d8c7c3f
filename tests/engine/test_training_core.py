"""The training core: one loop with callbacks, run-owned randomness, resumable callback state, loggers."""

from __future__ import annotations

import threading

import pytest
import torch

from transfer_core import RunDir, Trainer
from transfer_core.data.augment import augment_previews
from transfer_core.data.splits import load_run_split
from transfer_core.insight.shootout import backbone_shootout
from transfer_core.training.lr_finder import find_lr

from ..conftest import TINY, make_image


def _metrics(report: dict) -> dict:
    keep = ("val_accuracy", "macro_f1", "best_epoch", "confusion_matrix", "per_class")
    history = [{k: v for k, v in epoch.items()} for epoch in report["history"]]
    return {"history": history, **{k: report[k] for k in keep}}


@pytest.fixture
def random_recipe(tiny_config):
    """A recipe whose result depends on every kind of random draw: shuffling, augmentation, dropout, head init."""
    return tiny_config.replace(
        strategy="full", epochs=3, dropout=0.3, augment={"crop_scale_min": 0.5, "hflip": 0.5, "rotation": 15, "color_jitter": 0.2}
    )


def test_same_seed_same_metrics_while_another_thread_uses_the_engine(random_recipe, tmp_path):
    """Previews, the shoot-out and the LR finder in another thread must not change a run's numbers."""
    alone = Trainer(random_recipe, tmp_path / "alone").fit().report
    train, val = load_run_split(random_recipe)
    image = make_image((200, 40, 40))
    stop, calls = threading.Event(), {"n": 0}

    def busy_page() -> None:
        while not stop.is_set():
            augment_previews(image, random_recipe.augment, n=4, size=32, seed=calls["n"])
            backbone_shootout(train, val, [TINY])
            find_lr(random_recipe, steps=10, image_steps=6)
            torch.rand(3)  # and any unrelated draw from the process-wide generator
            calls["n"] += 1

    worker = threading.Thread(target=busy_page)
    worker.start()
    try:
        loaded = Trainer(random_recipe, tmp_path / "under-load").fit().report
    finally:
        stop.set()
        worker.join(120)
    assert calls["n"] >= 1, "the other thread never ran during training"
    assert _metrics(loaded) == _metrics(alone)


def test_resume_file_holds_every_callbacks_state(tiny_config, tmp_path):
    run = RunDir(tmp_path / "run")
    trainer = Trainer(tiny_config.replace(epochs=4, early_stopping_patience=3, head_warmup_epochs=1, strategy="full"), run)
    holder = {}

    def stop_after_epoch_2(event):
        if event.kind == "epoch" and event.epoch == 2:
            holder["trainer"].request_stop()

    holder["trainer"] = trainer
    trainer.subscribe(stop_after_epoch_2)
    assert trainer.fit().status == "stopped"
    state = run.load_resume_state()
    callbacks = state["callbacks"]
    assert callbacks["checkpoint"]["best"]["epoch"] in (1, 2)
    assert set(callbacks["early_stopping"]) == {"best_loss", "bad_epochs"}
    assert callbacks["head_warmup"] == {"done": True}
    resumed = Trainer(run.read_config(), run)
    result = resumed.fit(resume=True)
    assert result.status == "finished" and result.report["epochs_run"] == 4
    warmups = [e for e in run.read_events() if "Warmed up" in e.get("message", "")]
    assert len(warmups) == 1, "a resumed run must not warm the head up a second time"


def test_tensorboard_logger_writes_the_recorded_curves(tiny_config, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from transfer_core.cli import main

    data = tiny_config.data
    assert main(["train", data, "--backbone", TINY, "--epochs", "2", "--batch-size", "8", "--val-split", "0.3",
                 "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]) == 0
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_per_step", "train/learning_rate", "val/accuracy", "val/loss", "train/accuracy"} <= tags
    recorded = [e for e in RunDir(tmp_path / "run").read_events() if e["event"] == "epoch"]
    logged = [s.value for s in events.Scalars("val/accuracy")]
    assert logged == pytest.approx([e["val_accuracy"] for e in recorded])
    steps = [e for e in RunDir(tmp_path / "run").read_events() if e["event"] == "step"]
    assert len(events.Scalars("train/loss_per_step")) == len(steps)


def test_tensorboard_missing_is_one_clear_sentence(monkeypatch, tmp_path):
    import builtins

    from transfer_core import WarmstartError
    from transfer_core.training.tensorboard import TensorBoardLogger

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(WarmstartError, match="pip install tensorboard"):
        TensorBoardLogger(tmp_path / "tb")


def _stopped_run(config, path, stop_at: tuple[str, int, int], interval: float, writes: list[str]) -> RunDir:
    """Train ``config`` into ``path`` and ask it to stop at the event (kind, epoch, step)."""
    run = RunDir(path)
    trainer = Trainer(config, run, checkpoint_interval_s=interval)
    kind, epoch, step = stop_at

    def stop(event):
        if event.kind == kind and event.epoch == epoch and getattr(event, "step", 0) == step:
            trainer.request_stop()

    trainer.subscribe(stop)
    assert trainer.fit().status == "stopped"
    writes += [p.name for p in path.iterdir()]
    return run


def test_a_checkpoint_the_disk_refuses_is_held_in_memory_even_when_safetensors_reports_it(tiny_config, tmp_path, monkeypatch):
    """Regression: safetensors raises its own SafetensorError (not OSError) when the disk is full, so a
    checkpoint written straight to disk crashed the run instead of being held for a retry or download."""
    from safetensors import SafetensorError

    from transfer_core.runs import checkpoint_files

    def full_disk(tensors, filename, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint_files, "save_file", full_disk)
    trainer = Trainer(tiny_config.replace(epochs=2), RunDir(tmp_path / "run"))
    assert trainer.fit().status == "finished"
    assert "best.safetensors" in trainer.held.pending and trainer.held.error.strerror == "No space left on device"
    monkeypatch.undo()
    assert trainer.held.retry() == []
    assert RunDir(tmp_path / "run").checkpoint_file.stat().st_size > 0


def test_temporary_files_of_a_killed_checkpoint_write_are_cleared(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for name in (".best.safetensors.x1.tmp", ".tmpA1b2C3", "best.safetensors"):
        (run.path / name).write_bytes(b"x")
    run.remove_partial_files()
    assert sorted(p.name for p in run.path.iterdir()) == ["best.safetensors"]


@pytest.mark.parametrize("strategy", ["full", "frozen"])
def test_checkpoints_between_timer_ticks_are_written_at_the_end_with_the_last_finished_epoch(tiny_config, tmp_path, monkeypatch, strategy):
    """Short epochs do not each pay for a checkpoint write, and a stop part-way through an epoch still
    leaves exactly the state an every-epoch writer would have left (also when, frozen, the checkpoints
    read the backbone's weights once and only the head's after each epoch)."""
    config = tiny_config.replace(strategy=strategy, epochs=4)
    written: list[str] = []
    real_write = RunDir.write_with
    monkeypatch.setattr(RunDir, "write_with", lambda self, name, write: (written.append(name), real_write(self, name, write))[1])

    every_epoch = _stopped_run(config, tmp_path / "every", ("epoch", 2, 0), 0, [])
    assert written.count("resume.pt") == 2
    written.clear()
    timed = _stopped_run(config, tmp_path / "timed", ("step", 3, 1), 3600, [])  # stopped inside epoch 3
    assert written.count("resume.pt") == 1 and written.count("best.safetensors") == 1

    every, late = every_epoch.load_resume_state(), timed.load_resume_state()
    assert late["epoch"] == every["epoch"] == 1 and late["history"] == every["history"]
    assert all(torch.equal(late["model"][k], every["model"][k]) for k in every["model"])
    assert late["callbacks"] == every["callbacks"]
    assert Trainer(config, timed).fit(resume=True).report["epochs_run"] == 4


def test_one_cycle_schedule_runs_for_every_short_run_length():
    """Regression: 4 steps in all (1 epoch of about 100 images at batch 32) made PyTorch's OneCycleLR
    divide by zero, because its warm-up phase then ends on step 0."""
    import torch

    from transfer_core import TrainConfig
    from transfer_core.training.optim import make_scheduler

    for total in range(1, 13):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = make_scheduler(optimizer, TrainConfig(data="x", epochs=1, schedule="onecycle"), steps_per_epoch=total)
        for _ in range(total):
            optimizer.step()
            scheduler.step()


@pytest.mark.parametrize("strategy", ["frozen", "full"])
def test_the_trained_model_ends_with_the_best_epochs_weights(tiny_config, tmp_path, monkeypatch, strategy):
    """The model a run hands back (and reports on) is the best epoch's, also when a frozen run restores
    only its head: here the first epoch is made the best, so later epochs' weights must be undone."""
    from transfer_core.training import callbacks

    monkeypatch.setattr(callbacks, "_better", lambda candidate, best: best is None)
    trainer = Trainer(tiny_config.replace(strategy=strategy, epochs=3), RunDir(tmp_path / "run"))
    assert trainer.fit().report["best_epoch"] == 1
    saved = RunDir(tmp_path / "run").load_checkpoint()
    final = trainer.model.state_dict()
    assert saved.keys() == final.keys()
    assert all(torch.equal(final[k], saved[k].to(final[k].dtype)) for k in saved)


@pytest.mark.parametrize("strategy, layout", [("frozen", torch.contiguous_format), ("full", torch.channels_last)])
def test_only_weights_that_train_are_copied_into_channels_last_on_a_cpu(tiny_config, tmp_path, monkeypatch, strategy, layout):
    """A frozen backbone keeps its weights' layout (channels-last inputs make it as fast, without a
    copy of every weight); fine-tuned convolutions train channels-last."""
    monkeypatch.delenv("WARMSTART_CPU_RUNTIME", raising=False)
    trainer = Trainer(tiny_config.replace(strategy=strategy, epochs=1, device="cpu"), RunDir(tmp_path / "run"))
    trainer.fit()
    convolutions = [p for p in trainer.model.backbone.parameters() if p.ndim == 4]
    assert convolutions and all(p.is_contiguous(memory_format=layout) for p in convolutions)


@pytest.mark.parametrize("strategy, one_thread", [("frozen", True), ("full", False)])
def test_a_new_head_on_cached_features_trains_on_one_thread_and_fine_tuning_on_all(tiny_config, tmp_path, strategy, one_thread):
    """Tiny head-only steps stall on a second thread whenever another program takes its core; the
    limit is for the loop alone: the process keeps its thread count."""
    from transfer_core.training.callbacks import Callback

    class ThreadsSeen(Callback):
        name = "threads_seen"
        seen: set[int] = set()

        def on_train_batch_end(self, loop, output) -> None:
            self.seen.add(torch.get_num_threads())

    before = torch.get_num_threads()
    trainer = Trainer(tiny_config.replace(strategy=strategy, epochs=1, device="cpu"), RunDir(tmp_path / "run"), [ThreadsSeen()])
    trainer.fit()
    assert ThreadsSeen.seen == ({1} if one_thread else {before})
    assert torch.get_num_threads() == before


def test_a_frozen_runs_state_reads_its_backbone_once_and_its_head_every_time():
    """Checkpoints of a frozen run read the model's state after epochs: the unchanging entries come from
    the reading made at the start (no walk over the backbone's modules), the changing ones as they are now."""
    from transfer_core.training.callbacks import ModelState

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    state = ModelState(model, unchanging=("0.", "1."))
    assert state.constant == {k for k in model.state_dict() if k.startswith(("0.", "1."))}
    walked = []
    model[0].register_state_dict_post_hook(lambda *args: walked.append(1))
    with torch.no_grad():
        model[2].weight.add_(1.0)
    read = state()
    assert not walked, "the unchanging part was read again"
    assert torch.equal(read["2.weight"], model[2].weight)
    assert read["0.weight"].data_ptr() == model[0].weight.data_ptr()  # the weights themselves, not a copy
    assert list(read) == list(model.state_dict())


def test_restoring_a_saved_state_puts_back_the_changing_entries_without_walking_the_unchanging_part():
    """The best epoch's weights go back through the children that hold changing entries; the frozen
    part is neither walked nor written, and a model read whole is restored whole."""
    from transfer_core.training.model_state import ModelState, snapshot

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    state = ModelState(model, unchanging=("0.", "1."))
    best = snapshot(state(), state.constant)
    walked = []
    model[0].register_load_state_dict_pre_hook(lambda *args: walked.append(1))
    with torch.no_grad():
        model[2].weight.add_(1.0)
        model[2].bias.zero_()
    state.restore(best)
    assert torch.equal(model[2].weight, best["2.weight"]) and torch.equal(model[2].bias, best["2.bias"])
    assert not walked, "the unchanging part was loaded again"

    whole = ModelState(model)  # nothing unchanging: every entry is restored
    saved = snapshot(whole())
    with torch.no_grad():
        model[0].weight.mul_(2.0)
        model[1].running_mean.add_(1.0)
    whole.restore(saved)
    assert torch.equal(model[0].weight, saved["0.weight"]) and torch.equal(model[1].running_mean, saved["1.running_mean"])
    with pytest.raises(RuntimeError, match="Missing key"):  # a state that does not fit is refused
        whole.restore({k: v for k, v in saved.items() if k != "2.bias"})


def test_a_model_whose_own_entries_change_is_read_whole_every_time():
    """An entry that belongs to no child module cannot be read through a child: the whole state is read."""
    from transfer_core.training.callbacks import ModelState

    model = torch.nn.Module()
    model.body = torch.nn.Linear(2, 2)
    model.scale = torch.nn.Parameter(torch.ones(1))
    state = ModelState(model, unchanging=("body.",))
    with torch.no_grad():
        model.scale.mul_(3.0)
    assert float(state()["scale"]) == 3.0
