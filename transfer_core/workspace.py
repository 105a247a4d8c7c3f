"""Where Warmstart keeps files outside git: runs, uploads, extracted archives, caches."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home"]


def home() -> Path:
    """``$WARMSTART_HOME``, else ``.warmstart`` in the repository root."""
    return Path(os.environ.get("WARMSTART_HOME", Path(__file__).resolve().parents[1] / ".warmstart"))
