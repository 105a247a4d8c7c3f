"""The app's dataset indexes: read once per key with a progress bar, then served from memory."""

from contextlib import contextmanager

from ui import busy, dataset_cache
from ui.dataset_cache import DatasetIndexes


def test_a_read_moves_a_progress_bar_and_a_second_call_reads_nothing(color_dataset, monkeypatch):
    shown = []

    @contextmanager
    def recording_progress(label, lazy=False):
        shown.append((label, lazy, []))
        yield lambda done, total, what: shown[-1][2].append((done, total, what))

    monkeypatch.setattr(busy, "progress", recording_progress)
    reads = []
    real = dataset_cache.load_train_val
    monkeypatch.setattr(dataset_cache, "load_train_val", lambda *a, **k: (reads.append(k.get("on_progress")), real(*a, **k))[1])
    indexes = DatasetIndexes(max_entries=1)

    train, val = indexes(str(color_dataset), None, 0.3, 0, None, 0, "Reading the dataset")
    assert len(reads) == 1 and shown[0][:2] == ("Reading the dataset", True)
    counts = shown[0][2]
    assert counts and counts[-1][0] == counts[-1][1] == len(train) + len(val) and counts[-1][2] == "checking image files"

    assert indexes(str(color_dataset), None, 0.3, 0, None, 0, "Reading the dataset") == (train, val)
    assert len(reads) == 1 and len(shown) == 1  # served from memory: no read, no bar

    indexes(str(color_dataset), None, 0.3, 1, None, 0)  # another split evicts the first (one entry kept), quietly
    assert len(reads) == 2 and len(shown) == 1
    indexes(str(color_dataset), None, 0.3, 0, None, 0)
    assert len(reads) == 3
