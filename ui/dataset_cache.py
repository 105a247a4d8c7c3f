"""The datasets' indexes, kept per server process and read with a progress bar when they are not.

Indexing 50,000 files takes seconds the first time, so the user should see it move. A bar moved
from inside an ``st.cache_data`` function would be recorded and replayed on every later cache hit,
so this cache is a plain in-process memo instead: the bar is made outside any cached call, and only
when there is real reading to show (on the first count the engine reports).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from transfer_core import DatasetIndex, load_train_val

from . import busy

__all__ = ["DatasetIndexes"]


class DatasetIndexes:
    """``(train, val)`` indexes by everything that decides them, the ``max_entries`` most recent kept."""

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, tuple[DatasetIndex, DatasetIndex]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(
        self, source: str, val_source: str | None, val_split: float, seed: int, corrections: str | None, stamp: int,
        progress_label: str | None = None,
    ) -> tuple[DatasetIndex, DatasetIndex]:
        """The indexes (``stamp``, the corrections file's time, is part of the key so every edit shows);
        a read shows a progress bar labelled ``progress_label`` where this is called (none without a label).

        Raises:
            WarmstartError: the dataset cannot be read (nothing is cached then).
        """
        key = (source, val_source, val_split, seed, corrections, stamp)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        if progress_label is None:
            indexes = load_train_val(source, val_source, val_split, seed, corrections=corrections)
        else:
            with busy.progress(progress_label, lazy=True) as on_progress:
                indexes = load_train_val(source, val_source, val_split, seed, corrections=corrections, on_progress=on_progress)
        with self._lock:
            self._items[key] = indexes
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return indexes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
