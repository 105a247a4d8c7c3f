"""Long phases print plain progress lines when the output is a log file, not a terminal."""

from __future__ import annotations

import io

from transfer_core.progress_lines import ProgressLines
from transfer_core.training.events import CacheBuilt, CacheProgress, EpochEnded, RunStarted, StepEnded
from transfer_core.training.progress import ProgressBar


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_long_pass_prints_a_line_every_five_percent_or_ten_seconds():
    out, clock = io.StringIO(), FakeClock()
    lines = ProgressLines(out, clock=clock)
    for done in range(0, 50_001, 100):  # 50,000 images, 100 at a time, 1 s per batch of 1,000
        clock.now = done / 1000
        lines(done, 50_000, "computing features")
    printed = out.getvalue().splitlines()
    assert printed[0] == "computing features: 0 of 50,000 (0 %), 0 s"
    assert printed[-1] == "computing features: 50,000 of 50,000 (100 %), 50 s"
    assert "computing features: 2,500 of 50,000 (5 %), 2 s, about 48 s left" in printed
    assert len(printed) == 21 and "\r" not in out.getvalue()

    out, clock = io.StringIO(), FakeClock()
    slow = ProgressLines(out, clock=clock)
    for done in range(0, 101):  # one item every 3 s: 1 % per item, so the 10 s rule speaks
        clock.now = 3.0 * done
        slow(done, 100, "reading images")
    printed = out.getvalue().splitlines()
    assert 20 <= len(printed) <= 40  # about every 10 s (3.3 per step) and every 5 %, whichever comes first


def test_the_cli_progress_prints_passes_and_long_epochs_to_a_log_but_not_short_ones():
    out, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(out, clock=clock)
    assert not bar.interactive
    for done in range(0, 9_001, 64):  # checking 9,000 files takes 9 s
        clock.now = done / 1000
        bar.on_event(CacheProgress(what="index", done=done, total=9_000))
    bar.on_event(CacheProgress(what="index", done=9_000, total=9_000))
    bar.on_event(RunStarted(epochs=2, steps_per_epoch=100, train_size=6_400, val_size=1_600, classes=["a", "b"], device="cpu"))
    for done in range(0, 8_001, 64):
        clock.now = 10 + done / 100  # 80 s of computing features
        bar.on_event(CacheProgress(what="features", done=done, total=8_000))
    bar.on_event(CacheBuilt(what="features", items=8_000, seconds=80.0, message="Computed the features once."))
    for epoch, seconds_per_step in ((1, 0.001), (2, 0.5)):  # a quick epoch, then a 50 s one
        for step in range(1, 101):
            clock.now += seconds_per_step
            bar.on_event(StepEnded(epoch=epoch, step=step, steps=100, global_step=step, loss=0.5, lr=0.1))
        bar.on_event(EpochEnded(epoch=epoch, epochs=2, train_loss=0.5, train_accuracy=0.8, val_loss=0.4,
                                val_accuracy=0.9, lr=0.1, seconds=50.0, trainable_groups=0))
    printed = out.getvalue().splitlines()
    checking = [line for line in printed if line.startswith("checking image files: ")]
    features = [line for line in printed if line.startswith("computing features: ")]
    assert checking and checking[-1].startswith("checking image files: 9,000 of 9,000 (100 %)")
    assert 15 <= len(features) <= 25 and features[-1].startswith("computing features: 8,000 of 8,000 (100 %), 80 s")
    assert not any(line.startswith("epoch 1/2 steps") for line in printed)
    assert any(line.startswith("epoch 2/2 steps") for line in printed)
    assert printed[-1].startswith("epoch 2/2  train loss 0.500")
    assert "\r" not in out.getvalue()


def test_a_pass_over_a_few_files_says_nothing():
    out, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(out, clock=clock)
    for done in range(3):
        bar.on_event(CacheProgress(what="index", done=done, total=2))
    assert out.getvalue() == ""
