"""The tests' own worker switches behave as the browser journey relies on."""

from __future__ import annotations

import threading
import time

from transfer_core import RunDir
from transfer_core.training.events import CacheProgress, EpochEnded

from tests.worker_hooks import pause_after_feature_progress_while


def test_a_feature_progress_event_waits_while_the_pause_is_held(tmp_path, monkeypatch):
    held = threading.Event()
    held.set()
    pause_after_feature_progress_while(held.is_set, monkeypatch.setattr)
    run = RunDir(tmp_path / "run")
    written = threading.Event()
    writer = threading.Thread(target=lambda: (run.append_event(CacheProgress(what="features", done=64, total=300)), written.set()))
    writer.start()
    deadline = time.monotonic() + 30
    while not (run.metrics_file.exists() and '"done": 64' in run.metrics_file.read_text()):  # written first, for the page
        assert time.monotonic() < deadline, "the event was never written"
        time.sleep(0.01)
    assert not written.wait(0.3), "the write returned while the pause was held"
    held.clear()
    assert written.wait(5)
    writer.join()


def test_other_events_never_wait(tmp_path, monkeypatch):
    pause_after_feature_progress_while(lambda: True, monkeypatch.setattr)
    run = RunDir(tmp_path / "run")
    others = (CacheProgress(what="images", done=10, total=300),
              EpochEnded(epoch=1, epochs=2, train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, lr=0.1,
                         seconds=0.1, trainable_groups=1))
    writer = threading.Thread(target=lambda: [run.append_event(e) for e in others], daemon=True)
    writer.start()
    writer.join(5)
    assert not writer.is_alive(), "an event other than feature progress waited for the pause"
    assert len(run.read_events()) == 2
