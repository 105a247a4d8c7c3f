"""What training workers started by the tests import (``WARMSTART_WORKER_IMPORTS``).

The tiny backbone and two switches, each a file that works in whichever process the test's worker runs:
- full disk: while the file named by ``WARMSTART_TEST_FULL_DISK`` exists, every run-folder write
  fails with ENOSPC;
- paused features: while the file named by ``WARMSTART_TEST_PAUSE_AT_FEATURES`` exists, a run that
  has written a "computing features" progress event waits before going on, so that a browser test
  sees that live phase however fast the machine computes the features (it can take well under the
  Train page's one-second poll).
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from transfer_core import RunDir

from tests.tiny_backbone import TINY  # noqa: F401  (registers it)

FULL_DISK_SWITCH = "WARMSTART_TEST_FULL_DISK"
PAUSE_SWITCH = "WARMSTART_TEST_PAUSE_AT_FEATURES"
PAUSE_LIMIT_S = 120.0  # in all, per process: a test that never lifts the pause fails on its own timeout, not by hanging the worker


def refuse_writes_while(full: Callable[[], bool], setattr_=setattr) -> None:
    """Make ``RunDir``'s file and event writes raise ENOSPC whenever ``full()`` is true."""

    def refuse(real):
        def write(self, *args):
            if full():
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, *args)

        return write

    setattr_(RunDir, "write_with", refuse(RunDir.write_with))  # every file write, bytes or streamed
    setattr_(RunDir, "link_file", refuse(RunDir.link_file))  # a frozen run's shared backbone weights
    setattr_(RunDir, "append_lines", refuse(RunDir.append_lines))


def pause_after_feature_progress_while(held: Callable[[], bool], setattr_=setattr) -> None:
    """Make a write of a "computing features" progress event wait while ``held()``, for at most
    PAUSE_LIMIT_S in all (a run writes several such events)."""
    real = RunDir.append_lines
    deadline: list[float] = []  # set at the first pause

    def append_lines(self, lines):
        real(self, lines)
        if any(_is_feature_progress(line) for line in lines) and held():
            if not deadline:
                deadline.append(time.monotonic() + PAUSE_LIMIT_S)
            while held() and time.monotonic() < deadline[0]:
                time.sleep(0.05)

    setattr_(RunDir, "append_lines", append_lines)


def _is_feature_progress(line: str) -> bool:
    record = json.loads(line)
    return record.get("event") == "caching" and record.get("what") == "features"


if os.environ.get(FULL_DISK_SWITCH):
    refuse_writes_while(Path(os.environ[FULL_DISK_SWITCH]).exists)
if os.environ.get(PAUSE_SWITCH):
    pause_after_feature_progress_while(Path(os.environ[PAUSE_SWITCH]).exists)
