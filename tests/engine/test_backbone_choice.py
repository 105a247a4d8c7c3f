"""The shoot-out's LogME and speed, the recommendation rule, and ``auto`` resolved before training."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from transfer_core import RunDir, TrainConfig, Trainer, WarmstartError, logme
from transfer_core.cli import main
from transfer_core.data.splits import load_run_split
from transfer_core.features.speed import PassClock
from transfer_core.insight import backbone_choice
from transfer_core.insight.backbone_choice import (
    AUTO_BACKBONE,
    CANDIDATES_ENV,
    auto_candidates,
    noise_floor,
    rank,
    recommend,
    resolve_backbone,
    resolve_run_backbone,
)
from transfer_core.insight.shootout import ProbeResult, backbone_shootout, lazy_pretrained_backbone, pretrained_features
from transfer_core.projects import ProjectStore
from transfer_core.worker import run_worker
from transfer_core.workspace import home

from ..conftest import TINY, write_dataset

TINY_ARGS = ["--epochs", "2", "--lr", "0.3", "--batch-size", "8", "--val-split", "0.3"]


def _events(run: RunDir, what: str) -> list[dict]:
    return [e for e in run.read_events() if e["event"] == "cached" and e["what"] == what]


# -- the shoot-out ------------------------------------------------------------------------------


def test_shootout_results_carry_the_logme_of_the_training_features(tiny_config):
    train, val = load_run_split(tiny_config)
    [result] = backbone_shootout(train, val, [TINY])
    assert (result.held_out, result.cross_validated) == (len(val), False)
    [(features, targets, _)] = pretrained_features(  # the same cached features, no second pass
        TINY, [train], train.classes, torch.device("cpu"), lazy_pretrained_backbone(TINY, torch.device("cpu")))
    assert result.logme == pytest.approx(logme(features.numpy(), targets))


def test_without_a_validation_split_the_probe_is_cross_validated_on_training_images_only(tiny_config):
    train, _ = load_run_split(tiny_config)
    phases = []
    [result] = backbone_shootout(train, None, [TINY], on_progress=lambda done, total, what: phases.append((what, total)))
    assert (result.held_out, result.cross_validated) == (len(train), True)
    assert 0.0 <= result.val_accuracy <= 1.0 and result.logme is not None
    assert {total for what, total in phases if "encoding" in what} == {len(train)}  # no validation image encoded


def test_cross_validation_refuses_a_class_with_one_training_image(tmp_path):
    data = write_dataset(tmp_path / "d", per_class=4)
    for extra in list((data / "red").iterdir())[1:]:
        extra.unlink()
    train, _ = load_run_split(TrainConfig(data=str(data), val_data=str(data)))
    with pytest.raises(WarmstartError, match="Class 'red' has only one training image"):
        backbone_shootout(train, None, [TINY])


def test_speed_is_measured_after_the_first_batch_and_remembered_for_cached_features(tmp_path, monkeypatch, onnx_runs_as_slow_as_a_real_network):
    clock = PassClock()
    clock(0, 64)
    assert clock.seconds_per_image() is None  # one batch: warm-up only, nothing measured
    # Pass 0 after its first batch: 64 images slowed by other work (5 s), 64 in 1 s, 22 in 2.2 s; pass 1: one batch.
    ticks = iter([0.0, 5.0, 6.0, 8.2, 20.0])
    with monkeypatch.context() as patched:
        patched.setattr("transfer_core.features.speed.time.perf_counter", lambda: next(ticks))
        clock = PassClock()
        for number, done in [(0, 64), (0, 128), (0, 192), (0, 214), (1, 60)]:
            clock(number, done)
    assert clock.seconds_per_image() == pytest.approx(1 / 64)  # the fastest timed batch

    data = write_dataset(tmp_path / "d", per_class=30)  # 90 training images: two batches of the pass
    train, _ = load_run_split(TrainConfig(data=str(data), val_data=str(data)))
    # (Slowed runs: the tiny model alone can end both batches before the caller wakes for the first: no speed.)
    [first] = backbone_shootout(train, None, [TINY])
    assert sum(onnx_runs_as_slow_as_a_real_network) >= 90  # the pass ran through ONNX Runtime, as on a user's CPU
    assert first.seconds_per_image is not None and first.seconds_per_image > 0
    [cached] = backbone_shootout(train, None, [TINY])  # features cached: no pass, the remembered speed
    assert cached.seconds_per_image == first.seconds_per_image
    assert json.loads((home() / "backbone-speed.json").read_text())  # where a training worker finds it too


# -- the rule -----------------------------------------------------------------------------------


def _result(name, accuracy, logme_score=0.0, speed=None, error=None) -> ProbeResult:
    return ProbeResult(name, accuracy, 1.0, 8, error, logme_score, speed, 60)


def test_a_probe_ahead_by_more_than_the_noise_decides_and_the_sentence_gives_the_measured_speed_ratio():
    results = [_result("lite0", 0.80, 1.0, 0.010), _result("lite2", 0.97, 0.5, 0.016), _result("offline", None, error="no weights")]
    choice = recommend(results)
    assert choice.backbone == "lite2"
    assert choice.reason == "lite2's features separate your classes best: probe 97 % vs 80 % for lite0; about 1.6× slower per image."
    faster = recommend([_result("a", 0.95, speed=0.010), _result("b", 0.80, speed=0.025)])
    assert faster.reason.endswith("probe 95 % vs 80 % for b; and about 2.5× faster per image.")
    close = recommend([_result("a", 0.964, speed=0.010), _result("b", 0.961, speed=0.011)])
    assert "(96.4 % vs 96.1 % for b, a difference within the noise" in close.reason  # whole percents would hide it
    assert close.reason.endswith("; about as fast per image.")


def test_within_the_noise_of_the_held_out_images_the_faster_backbone_wins():
    """On 60 held-out images 85 %, 86.7 % and 81.7 % all lie inside the best one's 95 % interval (what the
    page's verdict calls within noise), so the backbone 1.4x faster per image is the better buy."""
    flowers = [_result("lite0", 0.850, -0.139, 0.010), _result("lite1", 0.867, -0.146, 0.0141), _result("lite2", 0.817, -0.130, 0.0268)]
    choice = recommend(flowers)
    assert choice.backbone == "lite0"
    assert choice.reason == ("lite0 is 1.4× faster per image than lite1, and their probes are within the noise of "
                             "60 held-out images (85 % vs 87 %).")
    assert [r.backbone for r in rank(flowers)] == ["lite0", "lite1", "lite2"]
    assert noise_floor(52 / 60, 60) == pytest.approx(0.758, abs=0.002)  # the Wilson interval's lower end
    # Far more images: 85 % vs 86.7 % is now a real difference, and the more accurate backbone wins.
    many = [ProbeResult(r.backbone, r.val_accuracy, 1.0, 8, None, r.logme, r.seconds_per_image, 6000) for r in flowers]
    assert recommend(many).backbone == "lite1"
    # A contender whose speed was never measured: no guess, the more accurate one within noise wins and says so.
    unmeasured = recommend([_result("lite0", 0.967, 0.2), _result("lite1", 0.933, 0.24, 0.006)])
    assert unmeasured.backbone == "lite0"
    assert unmeasured.reason == ("lite0 has the highest probe (97 % vs 93 % for lite1, a difference within the noise of "
                                 "60 held-out images).")


def test_when_speed_decides_the_sentence_says_so_even_below_the_same_speed_ratio():
    """All three probes are within noise. A (1.25 ms) is more than 1.2x slower than C (1.0 ms) and drops out; B
    (1.15 ms) stays and beats C on the probe, so B wins though A's probe is higher: the sentence must say that
    speed decided, not call B's probe the highest."""
    choice = recommend([_result("A", 0.87, 0.0, 0.00125), _result("B", 0.85, 0.0, 0.00115), _result("C", 0.84, 0.0, 0.0010)])
    assert choice.backbone == "B"
    assert choice.reason == "B is 1.1× faster per image than A, and their probes are within the noise of 60 held-out images (85 % vs 87 %)."


def test_on_equal_accuracy_and_speed_logme_decides():
    by_logme = recommend([_result("a", 0.9, -0.20, 0.010), _result("b", 0.9, -0.10, 0.011)])
    assert by_logme.backbone == "b"
    assert by_logme.reason.startswith("b and a tie on the probe (90 %), and b's features score higher on LogME")
    assert "(-0.10 vs -0.20)" in by_logme.reason and "about as fast per image" in by_logme.reason
    by_speed = recommend([_result("a", 0.9, 0.5, 0.03), _result("b", 0.9, 0.5, 0.01), _result("c", 0.9, 0.5)])
    assert by_speed.backbone == "b" and by_speed.reason.startswith("b is 3.0× faster per image than a")
    unmeasured = recommend([_result("a", 0.8, 0.1), _result("b", 0.9, 0.0)])
    assert unmeasured.backbone == "b" and "per image" not in unmeasured.reason  # no speed claimed without a measurement


def test_only_backbones_that_were_tried_can_win():
    assert recommend([_result("x", None, error="offline")]) is None
    alone = recommend([_result("x", None, error="offline"), _result("y", 0.8)])
    assert alone.backbone == "y" and alone.reason == "y is the only backbone that could be tried (probe 80 %)."


# -- auto ---------------------------------------------------------------------------------------


def test_auto_candidates_are_the_backbones_on_this_machine_unless_the_environment_names_them(monkeypatch):
    names = auto_candidates()
    assert "efficientnet_lite0" in names and TINY not in names  # bundled yes, test networks no
    assert "vit_b_16" not in names  # weights not downloaded on a test machine
    monkeypatch.setenv(CANDIDATES_ENV, f" {TINY} , efficientnet_lite1")
    assert auto_candidates() == [TINY, "efficientnet_lite1"]
    monkeypatch.setenv(CANDIDATES_ENV, "lite9")
    with pytest.raises(WarmstartError, match=f"{CANDIDATES_ENV} names 'lite9'"):
        auto_candidates()


def test_auto_resolution_picks_by_the_rule_and_records_the_concrete_backbone(tiny_config, tmp_path, monkeypatch):
    calls = []

    def shootout(train, val, names, device="cpu", on_progress=None):
        calls.append((len(train), val, list(names)))
        return [_result("efficientnet_lite0", 0.85, 0.3, 0.01), _result("efficientnet_lite1", 0.95, 0.1, 0.02)]

    monkeypatch.setattr(backbone_choice, "backbone_shootout", shootout)
    monkeypatch.setenv(CANDIDATES_ENV, "efficientnet_lite0,efficientnet_lite1")
    run = RunDir(tmp_path / "run")
    config, choice = resolve_run_backbone(tiny_config.replace(backbone=AUTO_BACKBONE), run)
    assert config.backbone == choice.backbone == "efficientnet_lite1"
    assert calls == [(21, None, ["efficientnet_lite0", "efficientnet_lite1"])]  # training images only
    assert run.read_config() == config  # what the run will train, saved before it trains
    [event] = _events(run, "backbone")
    assert event["message"].startswith("Auto chose efficientnet_lite1 after a shoot-out of 2 backbones on 60 training images: ")
    assert "probe 95 % vs 85 % for efficientnet_lite0" in event["message"]

    named = tiny_config.replace(data=str(tmp_path / "not read"))
    assert resolve_backbone(named) == (named, None) and len(calls) == 1  # a named backbone: no shoot-out, no data read


def test_a_worker_resolves_auto_before_training_and_a_resume_keeps_the_choice(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv(CANDIDATES_ENV, TINY)
    run = RunDir(tmp_path / "run")
    run.write_config(tiny_config.replace(backbone=AUTO_BACKBONE, epochs=2))  # as the app's Train page creates it
    report = io.StringIO()
    assert run_worker(run.path, report=report) == 0
    assert run.read_config().backbone == TINY and run.status() == "finished"
    assert json.loads(report.getvalue())["reused_features"] == 21  # the shoot-out's training features, no second pass
    assert run.read_model_info()["backbone"] == TINY
    assert "Auto chose tiny_cnn" in _events(run, "backbone")[0]["message"]


def _auto_rank(rank: int, config_json: str, run_dir: str, scratch: str) -> None:
    """One torchrun-like rank resolving ``auto``: records the backbone it got and the shoot-outs it ran."""
    dist.init_process_group("gloo", init_method=f"file://{scratch}/rendezvous", rank=rank, world_size=2)
    ran, real = [], backbone_choice.backbone_shootout
    backbone_choice.backbone_shootout = lambda *a, **k: (ran.append(rank), real(*a, **k))[1]
    config, choice = resolve_run_backbone(TrainConfig.from_dict(json.loads(config_json)), RunDir(run_dir))
    Path(scratch, f"rank{rank}.json").write_text(json.dumps({"backbone": config.backbone, "shootouts": len(ran),
                                                             "reason": choice.reason}))
    dist.destroy_process_group()


def test_under_torchrun_rank_0_alone_runs_the_shootout_and_every_rank_trains_its_choice(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv(CANDIDATES_ENV, TINY)  # the spawned ranks inherit it
    config = tiny_config.replace(backbone=AUTO_BACKBONE)
    context = mp.start_processes(_auto_rank, args=(json.dumps(config.to_dict()), str(tmp_path / "run"), str(tmp_path)),
                                 nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 180
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two ranks did not agree in time")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["backbone"] for r in ranks] == [TINY, TINY] and [r["shootouts"] for r in ranks] == [1, 0]
    assert ranks[0]["reason"] == ranks[1]["reason"]
    assert RunDir(tmp_path / "run").read_config().backbone == TINY


def test_cli_backbone_auto_says_which_and_why_and_a_resume_never_runs_the_shootout(color_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(CANDIDATES_ENV, TINY)
    out = tmp_path / "run"
    assert main(["train", str(color_dataset), "--out", str(out), "--backbone", "auto", *TINY_ARGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Auto chose tiny_cnn after a shoot-out of 1 backbone on 21 training images: ")
    assert lines[-1].startswith("finished:")
    assert RunDir(out).read_config().backbone == TINY

    # A stopped auto run resumes on the backbone it chose, without a second shoot-out.
    stopped = RunDir(tmp_path / "stopped")
    config, _ = resolve_run_backbone(TrainConfig(data=str(color_dataset), backbone="auto", val_split=0.3, lr=0.3,
                                                 batch_size=8, epochs=3), stopped)
    trainer = Trainer(config, stopped, [lambda e: trainer.request_stop() if e.kind == "epoch" and e.epoch == 1 else None])
    trainer.fit()
    assert stopped.status() == "stopped"
    monkeypatch.setattr(backbone_choice, "backbone_shootout", lambda *a, **k: pytest.fail("shoot-out on resume"))
    assert main(["train", str(color_dataset), "--out", str(stopped.path), "--backbone", "auto", "--resume"]) == 0
    assert stopped.status() == "finished" and stopped.read_config().backbone == TINY


def test_cli_project_with_auto_keeps_a_real_backbone_in_the_recipe_and_the_run(color_dataset, capsys, monkeypatch):
    monkeypatch.setenv(CANDIDATES_ENV, TINY)
    assert main(["train", str(color_dataset), "--project", "auto demo", "--backbone", "auto", *TINY_ARGS]) == 0
    assert capsys.readouterr().out.startswith("Auto chose tiny_cnn")
    project = ProjectStore(home()).find("auto demo")
    [run] = project.run_store().runs()
    assert project.recipe["backbone"] == TINY and run.read_config().backbone == TINY
    assert len(_events(run, "backbone")) == 1


def test_auto_with_nothing_to_try_is_one_clear_sentence(color_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backbone_choice, "auto_candidates", lambda: [])
    assert main(["train", str(color_dataset), "--out", str(tmp_path / "r"), "--backbone", "auto"]) == 2
    assert "No backbone's weights are on this machine" in capsys.readouterr().err


def test_a_remembered_speed_belongs_to_its_runtime(monkeypatch):
    """ONNX Runtime's seconds per image do not stand for plain PyTorch's (WARMSTART_CPU_RUNTIME=torch)."""
    from transfer_core.features.speed import measured_speed, record_speed

    record_speed("net|w", "cpu", 0.002)
    assert measured_speed("net|w", "cpu") == 0.002
    monkeypatch.setenv("WARMSTART_CPU_RUNTIME", "torch")
    assert measured_speed("net|w", "cpu") is None
    record_speed("net|w", "cpu", 0.010)
    assert measured_speed("net|w", "cpu") == 0.010
    monkeypatch.delenv("WARMSTART_CPU_RUNTIME")
    assert measured_speed("net|w", "cpu") == 0.002
