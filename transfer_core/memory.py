"""How much memory the engine's caches may take on this machine, now.

A fixed budget is wrong both ways: 4 GiB of decoded images is a third of a 12 GB laptop that
also runs a browser, and a needless limit on a 128 GB server, where streaming images from disk
every epoch wastes the machine. The caches take a share of the memory available when they are
created (``MemAvailable`` on Linux: free memory plus what the kernel can reclaim at once).
"""

from __future__ import annotations

import contextlib
import os
import warnings

__all__ = ["available_memory", "cache_budget"]

_FALLBACK_AVAILABLE = 8 * 1024**3  # when the system does not say (rare): a modest machine


def available_memory(meminfo: str = "/proc/meminfo") -> int:
    """Bytes of memory available to new allocations without swapping."""
    with contextlib.suppress(OSError, ValueError, IndexError):  # no /proc/meminfo (not Linux), or a line it cannot parse
        with open(meminfo, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    try:  # other Unixes: free pages (ignores reclaimable page cache, so on the safe side)
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_AVAILABLE


def cache_budget(share: float, floor: int, setting: str | None = None, available: int | None = None) -> int:
    """Bytes a cache may hold: ``share`` of the available memory, at least ``floor``.

    Args:
        share: fraction of the available memory (0..1).
        floor: the least budget, so a busy machine still caches a small dataset.
        setting: an environment variable that, when set, gives the budget in bytes outright; a value
            that is not a whole number is ignored with a warning that names it.
        available: the available memory (default: :func:`available_memory`); for tests.
    """
    configured = os.environ.get(setting) if setting else None
    if configured:
        try:
            return max(0, int(configured))
        except ValueError:
            warnings.warn(f"{setting} must be a number of bytes, e.g. 2000000000; ignoring '{configured}'.", stacklevel=2)
    return max(floor, int(share * (available_memory() if available is None else available)))
