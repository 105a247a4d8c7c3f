"""The long engine calls report real progress through one callback, ``on_progress(done, total, what)``."""

from __future__ import annotations

import pytest

from transfer_core import Trainer, TrainConfig, load_train_val
from transfer_core.deploy.export import export_run
from transfer_core.deploy.verify import verify_export
from transfer_core.insight.embedding_map import embedding_map
from transfer_core.insight.shootout import backbone_shootout
from transfer_core.reporting import phase
from transfer_core.training.lr_finder import find_lr

from ..conftest import TINY, write_dataset


class Recorder:
    """Collects progress calls and checks the contract of transfer_core.reporting."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, str]] = []

    def __call__(self, done: int, total: int, what: str) -> None:
        self.calls.append((done, total, what))

    def phases(self, complete: bool = True) -> dict[str, int]:
        """Each phase's total, in order; every phase starts at 0, never goes back, and (``complete``) ends at its total."""
        seen: dict[str, list[tuple[int, int]]] = {}
        for done, total, what in self.calls:
            seen.setdefault(what, []).append((done, total))
        for what, calls in seen.items():
            done = [d for d, _ in calls]
            totals = {t for _, t in calls}
            assert len(totals) == 1, (what, totals)
            assert done[0] == 0 and done == sorted(done), (what, done)
            if complete:
                assert done[-1] == totals.pop(), (what, done)
        return {what: calls[0][1] for what, calls in seen.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    data = write_dataset(root / "colors", per_class=10)
    config = TrainConfig(data=str(data), backbone=TINY, epochs=2, batch_size=8, lr=0.3, val_split=0.3, head_warmup_epochs=0)
    return Trainer(config, root / "run").fit().run, config


def test_a_phase_without_a_callback_or_work_reports_nothing():
    calls = []
    phase(None, 10, "steps")(5)
    phase(lambda *c: calls.append(c), 0, "nothing to do")(0)
    count = phase(lambda *c: calls.append(c), 3, "steps")
    count(1), count(3)
    assert calls == [(0, 3, "steps"), (1, 3, "steps"), (3, 3, "steps")]


def test_lr_finder_reports_images_then_steps(tiny_config):
    frozen = Recorder()
    find_lr(tiny_config, end_lr=1e-2, steps=12, on_progress=frozen)  # a gentle range: no blow-up, every step taken
    train = 21  # 30 images, 30 % held out
    assert frozen.phases() == {"reading images": train, f"encoding images with {TINY}": train, "range-test steps": 12}
    assert [d for d, _, w in frozen.calls if w == "range-test steps"] == list(range(13))

    full = Recorder()
    find_lr(tiny_config.replace(strategy="full"), end_lr=1e-2, image_steps=6, on_progress=full)
    assert full.phases() == {"reading images": train, "range-test steps": 6}  # images go through the network each step


def test_lr_finder_that_stops_early_ends_its_steps_below_the_total(tiny_config):
    steps = Recorder()
    result = find_lr(tiny_config, start_lr=1e-3, end_lr=1e6, steps=200, on_progress=steps)  # blows up long before 200
    assert steps.phases(complete=False)["range-test steps"] == 200
    taken = [d for d, _, w in steps.calls if w == "range-test steps"]
    assert taken == sorted(taken) and len(result.lrs) <= taken[-1] < 200


def test_shootout_reports_each_backbone_by_name(color_dataset):
    train, val = load_train_val(color_dataset, val_fraction=0.3)
    progress = Recorder()
    backbone_shootout(train, val, [TINY, "not_a_backbone"], on_progress=progress)
    assert progress.phases() == {f"{TINY} (1 of 2): reading images": 30, f"{TINY} (1 of 2): encoding images with {TINY}": 30}


def test_embedding_map_reports_reading_encoding_and_projecting(trained):
    run, _ = trained
    progress = Recorder()
    result = embedding_map(run, on_progress=progress)
    images = len(result.points)
    assert progress.phases() == {
        "reading images": images, "encoding images before training": images, "encoding images after training": images,
        "PCA projections": 2,
    }


def test_export_and_its_check_report_formats_and_images(trained, tmp_path):
    run, _ = trained
    writing = Recorder()
    folder = export_run(run, ("onnx", "torchscript", "card"), out_dir=tmp_path / "export", on_progress=writing)
    assert writing.phases() == {"formats written": 3}
    checking = Recorder()
    results = verify_export(run, folder, on_progress=checking)
    images = results[0].images
    assert checking.phases() == {
        "validation images read": images, "images run through the engine": images,
        "images run through model.onnx": images, "images run through model.torchscript.pt": images,
    }
    assert all(r.ok for r in results)


def test_throttled_progress_tells_start_end_and_a_few_between(monkeypatch):
    """A pass of 210 quick images is told a handful of times, not once per image: each call is a
    line in the run's event log. A slow pass is still told often enough to move a bar."""
    from transfer_core import reporting

    clock = [0.0]
    monkeypatch.setattr(reporting.time, "monotonic", lambda: clock[0])
    told = []
    progress = reporting.throttled(lambda done, total, what: told.append(done))
    for done in range(211):
        clock[0] += 0.001  # 1 ms per image: 0.2 s in all
        progress(done, 210, "images")
    assert told[0] == 0 and told[-1] == 210
    assert 3 <= len(told) <= 8
    told.clear()
    for done in range(11):
        clock[0] += 1.0  # one second per image
        progress(done, 10, "slow")
    assert told == list(range(11))
