"""Indexing a folder again reads no image header unless a file was touched, added or removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transfer_core.data import sources
from transfer_core.data.index_cache import index_cache_dir
from transfer_core.data.sources import scan_folder
from transfer_core.workspace import home

from ..conftest import make_image, write_dataset


@pytest.fixture
def header_reads(monkeypatch) -> list[str]:
    """The files whose header the scan reads, in any order."""
    seen: list[str] = []
    real = sources.read_image_size

    def counting(path, *args, **kwargs):
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sources, "read_image_size", counting)
    return seen


def _names(index) -> list[str]:
    return [Path(r.path).name for r in index.records]


def test_an_unchanged_folder_is_indexed_again_without_reading_a_header(tmp_path, header_reads):
    root = write_dataset(tmp_path / "data", per_class=4)
    first = scan_folder(root)
    assert len(header_reads) == 12
    assert index_cache_dir().is_relative_to(home()) and len(list(index_cache_dir().glob("*.json"))) == 1
    header_reads.clear()
    calls = []
    again = scan_folder(root, on_progress=lambda *call: calls.append(call))
    assert header_reads == []
    assert again.records == first.records and again.skipped == first.skipped
    assert calls[0] == (0, 12, "checking image files") and calls[-1] == (12, 12, "checking image files")


def test_a_touched_added_or_removed_file_is_noticed(tmp_path, header_reads):
    root = write_dataset(tmp_path / "data", per_class=4)
    scan_folder(root)
    header_reads.clear()

    touched = root / "red" / "red_0.png"
    later = touched.stat().st_mtime_ns + 5_000_000_000
    os.utime(touched, ns=(later, later))
    make_image((200, 40, 40), seed=99).save(root / "red" / "added.png")
    (root / "blue" / "blue_3.png").unlink()
    index = scan_folder(root)
    assert sorted(header_reads) == ["added.png", "red_0.png"]
    assert "added.png" in _names(index) and "blue_3.png" not in _names(index) and len(index) == 12

    header_reads.clear()
    (root / "green" / "green_1.png").write_bytes(b"not a picture at all")  # replaced: new size, new verdict
    index = scan_folder(root)
    assert header_reads == ["green_1.png"]
    assert "green_1.png" not in _names(index)
    assert [s.path for s in index.skipped] == ["green/green_1.png"]


def test_a_damaged_cache_file_is_ignored_not_trusted(tmp_path, header_reads):
    root = write_dataset(tmp_path / "data", per_class=2)
    first = scan_folder(root)
    for cached in index_cache_dir().glob("*.json"):
        cached.write_text("{ half a file", encoding="utf-8")
    header_reads.clear()
    assert scan_folder(root).records == first.records
    assert len(header_reads) == 6
