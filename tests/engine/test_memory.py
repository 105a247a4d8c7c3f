"""Cache budgets follow the memory this machine has available, not a fixed number."""

from __future__ import annotations

import pytest

from transfer_core.data.image_cache import image_cache_budget
from transfer_core.memory import available_memory, cache_budget

GiB = 1024**3


def test_available_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   12000000 kB\n")
    assert available_memory(str(meminfo)) == 12_000_000 * 1024
    assert available_memory(str(tmp_path / "missing")) > 0  # falls back to what the system says


def test_the_image_cache_takes_a_share_of_what_is_available(monkeypatch):
    monkeypatch.delenv("WARMSTART_IMAGE_CACHE_BYTES", raising=False)
    assert image_cache_budget(available=20 * GiB) == int(0.4 * 20 * GiB)  # a roomy machine: more than the old 4 GiB
    assert image_cache_budget(available=3 * GiB) == int(0.4 * 3 * GiB)  # a busy one: well under it
    assert image_cache_budget(available=100 * 1024**2) == 256 * 1024**2  # never less than the floor
    assert image_cache_budget(available=20 * GiB) > image_cache_budget(available=10 * GiB)


def test_a_setting_overrides_the_share_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("WARMSTART_IMAGE_CACHE_BYTES", "123456")
    assert image_cache_budget(available=20 * GiB) == 123456
    monkeypatch.setenv("WARMSTART_IMAGE_CACHE_BYTES", "4GB")
    with pytest.warns(UserWarning, match="WARMSTART_IMAGE_CACHE_BYTES.*'4GB'"):
        assert image_cache_budget(available=10 * GiB) == 4 * GiB
    assert cache_budget(0.5, 0, available=8 * GiB) == 4 * GiB
