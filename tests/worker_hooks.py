"""What training workers started by the tests import (``WARMSTART_WORKER_IMPORTS``).

The tiny backbone, and the full-disk switch: while the file named by ``WARMSTART_TEST_FULL_DISK``
exists, every run-folder write fails with ENOSPC, in whichever process the test's worker runs.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from transfer_core import RunDir

from tests.tiny_backbone import TINY  # noqa: F401  (registers it)

FULL_DISK_SWITCH = "WARMSTART_TEST_FULL_DISK"


def refuse_writes_while(full: Callable[[], bool], setattr_=setattr) -> None:
    """Make ``RunDir``'s file and event writes raise ENOSPC whenever ``full()`` is true."""

    def refuse(real):
        def write(self, *args):
            if full():
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, *args)

        return write

    setattr_(RunDir, "write_with", refuse(RunDir.write_with))  # every file write, bytes or streamed
    setattr_(RunDir, "append_lines", refuse(RunDir.append_lines))


if os.environ.get(FULL_DISK_SWITCH):
    refuse_writes_while(Path(os.environ[FULL_DISK_SWITCH]).exists)
