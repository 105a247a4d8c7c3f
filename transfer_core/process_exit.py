"""End a command-line process without Python's teardown of its modules.

Once a run has written its last file, a process that imported PyTorch, torchvision, timm,
scikit-learn and ONNX Runtime still spent 1.1–1.5 s on a 2-core machine finalising the interpreter:
collecting garbage and tearing down thousands of modules, none of which has anything left to
write. The app shows a result once its worker process has ended, so that second was most of the
wait after pressing Train on a frozen run (``bench/worker_start.py``). The standard library's
``multiprocessing`` ends its child processes the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn

__all__ = ["exit_now"]


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` at once, after flushing the standard streams and the log handlers.

    Only for a process's last line: whatever it wrote is on disk already (every run file is
    written whole and closed), and no exit handler or module teardown runs after this.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing more can reach it
            stream.flush()
    os._exit(code)
