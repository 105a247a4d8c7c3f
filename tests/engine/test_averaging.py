"""Weight averaging (EMA): the arithmetic, what the run validates and saves, resume, the CLI and two processes."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from transfer_core import Callback, RunDir, TrainConfig, Trainer, WarmstartError
from transfer_core.cli import main
from transfer_core.training.averaging import WeightAveraging, averaging_decay
from transfer_core.training.events import StepEnded

from .test_distributed import _run_two_ranks


def _step(model: nn.Module, values: dict[str, float]) -> None:
    """Set each parameter to a constant, as if an optimiser step had moved it there."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(values[name])


def test_average_equals_a_hand_computed_ema_and_skips_frozen_parameters():
    model = nn.Linear(2, 1)
    model.bias.requires_grad_(False)  # a frozen parameter: never averaged
    ema = WeightAveraging(model, max_decay=0.999)
    _step(model, {"weight": 1.0, "bias": 5.0})
    ema.on_fit_start(None)
    expected = 1.0
    for live in (3.0, -2.0, 7.0):
        _step(model, {"weight": live, "bias": 5.0})
        ema.on_train_batch_end(None, None)
        decay = ema.steps / (ema.steps + 3)  # 1/4, 2/5, 3/6
        expected = decay * expected + (1 - decay) * live
        assert torch.allclose(ema.average["weight"], torch.full((1, 2), expected))
    assert expected == pytest.approx(0.25 * 0.4 * 0.5 * 1 + 0.75 * 0.4 * 0.5 * 3 + 0.6 * 0.5 * -2 + 0.5 * 7)
    assert torch.equal(ema.average["bias"], torch.tensor([5.0]))
    assert not torch.equal(ema.average["weight"], model.weight.detach())  # the average is not the live weights

    ema.on_validation_start(None)  # validation sees the average ...
    assert torch.allclose(model.weight, torch.full((1, 2), expected))
    ema.on_validation_end(None, {})  # ... and training goes on from the live weights
    assert torch.equal(model.weight.detach(), torch.full((1, 2), 7.0))


def test_decay_ramps_up_with_the_steps_and_stops_at_the_cap():
    assert averaging_decay(1, 0.999) == 0.25
    assert averaging_decay(97, 0.999) == 0.97  # 100 steps in: the average still follows training
    assert averaging_decay(100_000, 0.999) == 0.999
    assert averaging_decay(100_000, 0.9) == 0.9


class _Recorder(Callback):
    """After each validation (and after the averaging callback put the live weights back) keep both."""

    def __init__(self) -> None:
        self.epochs: dict[int, tuple[dict, dict]] = {}

    def on_validation_end(self, loop, record) -> None:
        ema = next(c for c in loop.callbacks.callbacks if isinstance(c, WeightAveraging))
        live = {n: p.detach().clone() for n, p in loop.module.named_parameters()}
        self.epochs[record["epoch"]] = ({n: t.clone() for n, t in ema.average.items()}, live)


@pytest.mark.parametrize("strategy", ["full", "partial", "gradual"])
def test_the_run_validates_and_saves_the_averaged_weights(tiny_config, tmp_path, strategy):
    config = tiny_config.replace(strategy=strategy, trainable_blocks=1, epochs=3, augment="light", ema_decay=0.999)
    recorder = _Recorder()
    result = Trainer(config, tmp_path / "run", [recorder]).fit()
    best = result.report["best_epoch"]
    average, live = recorder.epochs[best]
    saved = RunDir(tmp_path / "run").load_checkpoint()
    assert all(torch.equal(saved[name], average[name]) for name in average)  # the checkpoint is the average
    assert any(not torch.equal(average[name], live[name]) for name in average)  # which the live weights are not
    # The report re-validates the saved weights and gets the number recorded for that epoch: it was the average's.
    assert result.report["val_accuracy"] == result.report["history"][best - 1]["val_accuracy"]
    assert result.report["config"]["ema_decay"] == 0.999


def test_resume_restores_the_average(tiny_config, tmp_path):
    config = tiny_config.replace(strategy="full", augment="light", epochs=4, ema_decay=0.999)
    reference = Trainer(config, tmp_path / "straight").fit().report

    holder = []

    def stop_in_epoch_3(event):
        if isinstance(event, StepEnded) and event.global_step == 7:  # 3 steps per epoch
            holder[0].request_stop()

    holder.append(Trainer(config, tmp_path / "stopped", [stop_in_epoch_3]))
    assert holder[0].fit().status == "stopped"
    run = RunDir(tmp_path / "stopped")
    saved = run.load_resume_state()["callbacks"]["weight_averaging"]
    assert saved["steps"] == 6 and set(saved["average"]) == {n for n, _ in holder[0].model.named_parameters()}

    resumed = Trainer(run.read_config(), run).fit(resume=True).report
    for key in ("val_accuracy", "history", "best_epoch", "confusion_matrix"):
        assert resumed[key] == reference[key], key
    straight = RunDir(tmp_path / "straight").load_checkpoint()
    assert all(torch.equal(tensor, straight[name]) for name, tensor in run.load_checkpoint().items())


def test_config_refuses_a_frozen_backbone_and_a_decay_out_of_range():
    with pytest.raises(WarmstartError, match="turn it off for a frozen backbone"):
        TrainConfig(strategy="frozen", ema_decay=0.999)
    for bad in (1.0, 0.1, -0.5):
        with pytest.raises(WarmstartError, match="ema_decay must be 0"):
            TrainConfig(strategy="full", ema_decay=bad)
    assert TrainConfig.from_dict(TrainConfig(strategy="partial", ema_decay=0.99).to_dict()).ema_decay == 0.99
    assert TrainConfig().ema_decay == 0.0  # off unless asked for; older runs' configs read as off


def test_cli_ema_flags(color_dataset, tmp_path, capsys):
    common = ["train", str(color_dataset), "--backbone", "tiny_cnn", "--epochs", "1", "--lr", "0.3", "--batch-size", "8",
              "--val-split", "0.3", "--head-warmup-epochs", "0"]
    assert main([*common, "--strategy", "full", "--ema", "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["ema_decay"] == 0.999
    assert main([*common, "--strategy", "partial", "--ema-decay", "0.99", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["ema_decay"] == 0.99
    assert main([*common, "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "config.json").read_text())["ema_decay"] == 0.0
    capsys.readouterr()
    assert main([*common, "--ema", "--out", str(tmp_path / "d")]) == 2  # the default strategy is frozen
    err = capsys.readouterr().err
    assert "Weight averaging (EMA) needs a strategy that fine-tunes" in err and len(err.strip().splitlines()) == 1


def test_two_processes_average_the_unwrapped_model_and_agree(tiny_config, tmp_path):
    config = tiny_config.replace(strategy="partial", trainable_blocks=1, epochs=2, dropout=0.0, batch_size=8, ema_decay=0.999)
    ranks = _run_two_ranks(config, tmp_path / "run", tmp_path / "scratch")
    assert ranks[0]["digest"] == ranks[1]["digest"]  # every rank validates and keeps the same average
    run = RunDir(tmp_path / "run")
    assert run.status() == "finished" and run.read_config().ema_decay == 0.999
    assert not any(name.startswith("module.") for name in run.load_checkpoint())  # the model's names, not the DDP wrapper's
