"""A command line that ends at once still hands over what it printed and logged, and its exit code."""

import subprocess
import sys

from transfer_core.worker import worker_environment

LAST_WORDS = """
import logging, logging.handlers, sys
from transfer_core.process_exit import exit_now
buffered = logging.handlers.MemoryHandler(capacity=100, target=logging.FileHandler(sys.argv[1]))
logging.basicConfig(handlers=[buffered], level=logging.INFO)
logging.info("logged before the end")
print("printed to a pipe, so held in Python's buffer", end="")
sys.stderr.write("an unfinished error line")
exit_now(3)
print("never printed")
"""


def test_exit_now_flushes_the_streams_and_the_log_then_ends_with_the_code(tmp_path):
    log = tmp_path / "run.log"
    buffered = {k: v for k, v in worker_environment().items() if k != "PYTHONUNBUFFERED"}  # output held as it usually is
    done = subprocess.run([sys.executable, "-c", LAST_WORDS, str(log)], env=buffered, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stdout == "printed to a pipe, so held in Python's buffer"
    assert done.stderr == "an unfinished error line"
    assert "logged before the end" in log.read_text()


def test_the_cli_module_ends_with_the_code_its_command_returned_and_its_message(tmp_path):
    buffered = {k: v for k, v in worker_environment().items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-m", "transfer_core", "evaluate", str(tmp_path / "no-such-run")],
        env=buffered, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2  # returned by main(), not raised by argparse
    assert "does not exist" in done.stderr
