"""Train one run folder in this process: what the app starts, once per run, in a process of its own.

    python -m transfer_core.worker RUN_DIR [--resume]
    python -m transfer_core.worker --standby

With ``--standby`` the worker imports everything a run needs first (PyTorch, torchvision,
scikit-learn, timm, ONNX Runtime: about 3 s on a laptop, longer than a frozen run's training) and
then waits for one line on standard input, ``{"run": RUN_DIR, "resume": false}``, and trains that
run exactly as the first form would; at the end of its input it exits without training. The app
keeps one such worker ready while nothing trains, so pressing Train starts training at once.

A crash, an out-of-memory kill or a hung call then ends one run, never the app's server or
another user's run. Everything between the app and a worker goes through the run folder:

- in: ``RUN_DIR/config.json`` (written by ``RunStore.new_run``);
- progress out: ``metrics.jsonl`` events and ``owner.json`` (this process's pid: once it is dead
  without a closing event, the run reads as "interrupted" and can be resumed);
- stop in: the file ``RUN_DIR/stop-requested``, checked after every batch; the run then ends as
  "stopped" with its best checkpoint (:class:`~transfer_core.training.callbacks.StopRequestFile`).

At exit the worker also prints one JSON line on its standard output: how many images reused
cached features and, when the run folder refused writes (full disk), what it refused (files
base64-encoded, event lines as they are), which would otherwise die with this process; the app
retries those writes or offers them as a download (:func:`held_report`, :func:`restore_held`).

Bad input ends as the run's ``failed`` event with one sentence and exit code 2; an unexpected
error also writes its traceback to standard error (the app keeps it in ``RUN_DIR/worker.log``).

Environment:
    WARMSTART_CHECKPOINT_SECONDS: seconds between checkpoint writes (default 5; 0 writes after every
        epoch). A killed run loses at most this much training.
    WARMSTART_WORKER_IMPORTS: comma-separated modules imported before training, for backbones
        registered in code rather than in the engine (the tests' tiny network, for one).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from .errors import WarmstartError
from .insight.backbone_choice import resolve_run_backbone, run_progress
from .process_exit import exit_now
from .runs.store import HeldWrites, RunDir
from .training.callbacks import StopRequestFile
from .training.events import RunFailed
from .training.trainer import DEFAULT_CHECKPOINT_INTERVAL_S, Trainer

__all__ = ["held_report", "hand_over", "main", "restore_held", "run_worker", "standby_command", "worker_command", "worker_environment"]

BAD_INPUT, UNEXPECTED = 2, 1


def worker_command(run: RunDir | str | Path, resume: bool = False, nproc: int = 1) -> list[str]:
    """The command line that trains ``run`` in a new process (``nproc`` > 1: under ``torchrun``)."""
    module = ["-m", "transfer_core.worker", _absolute(run)]
    module += ["--resume"] if resume else []
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *module]
    return [sys.executable, *module]


def standby_command() -> list[str]:
    """The command line of a worker that imports everything, then waits for its run (see the module docstring)."""
    return [sys.executable, "-m", "transfer_core.worker", "--standby"]


def hand_over(stdin: IO[bytes], run: RunDir | str | Path, resume: bool = False) -> None:
    """Give a standby worker its run through its standard input, which this closes.

    Args:
        stdin: the standby worker's standard input.
        run: the run folder to train.
        resume: continue it from its last complete epoch.

    Raises:
        OSError: a broken pipe, when the worker is gone.
    """
    with stdin:
        stdin.write((json.dumps({"run": _absolute(run), "resume": resume}) + "\n").encode("utf-8"))


def _absolute(run: RunDir | str | Path) -> str:
    """A run folder's absolute path: a worker may start in another working directory."""
    return str(Path(run.path if isinstance(run, RunDir) else run).absolute())


def worker_environment() -> dict[str, str]:
    """This process's environment, with the engine importable wherever the worker starts."""
    root = str(Path(__file__).resolve().parents[1])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, *[p for p in paths if p != root]])}


def held_report(held: HeldWrites) -> dict[str, Any]:
    """What the run folder refused, as JSON: the app rebuilds it with :func:`restore_held`."""
    return {
        "files": {name: base64.b64encode(data).decode("ascii") for name, data in held.files.items()},
        "lines": list(held.lines),
        "reason": (held.error.strerror or str(held.error)) if held.error else None,
    }


def restore_held(run: RunDir, report: dict[str, Any]) -> HeldWrites:
    """The worker's held writes in this process, ready to :meth:`~HeldWrites.retry` or :meth:`~HeldWrites.bundle`."""
    held = HeldWrites(run)
    held.files = {name: base64.b64decode(data) for name, data in report.get("files", {}).items()}
    held.lines = list(report.get("lines", []))
    reason = report.get("reason")
    held.error = OSError(0, reason) if reason else None
    return held


def _checkpoint_interval() -> float:
    raw = os.environ.get("WARMSTART_CHECKPOINT_SECONDS")
    if raw is None or not raw.strip():
        return DEFAULT_CHECKPOINT_INTERVAL_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise WarmstartError(f"WARMSTART_CHECKPOINT_SECONDS must be a number of seconds (0 or more), not '{raw}'.")
    return seconds


def _import_plugins() -> None:
    for name in filter(None, (n.strip() for n in os.environ.get("WARMSTART_WORKER_IMPORTS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise WarmstartError(f"WARMSTART_WORKER_IMPORTS names '{name}', which cannot be imported ({exc}).") from None


def _fail(run: RunDir, message: str) -> None:
    """The ``failed`` event for a run that never reached the trainer (which writes its own)."""
    try:
        run.append_event(RunFailed(message=message))
    except OSError:
        print(message, file=sys.stderr)


def run_worker(run_dir: str | Path, resume: bool = False, report: IO[str] | None = None) -> int:
    """Train the run folder ``run_dir``; returns the exit code (0 finished or stopped, 2 bad input, 1 unexpected).

    Args:
        run_dir: a folder with a ``config.json``.
        resume: continue from the run's last complete epoch.
        report: where the one-line exit report goes (see the module docstring).
    """
    run = RunDir(run_dir)
    try:
        _import_plugins()
        config = run.read_config()
        interval = _checkpoint_interval()
        config, _ = resolve_run_backbone(config, run, on_progress=run_progress(run))  # "auto": the shoot-out's winner
    except WarmstartError as exc:
        _fail(run, str(exc))
        return BAD_INPUT
    trainer = Trainer(config, run, checkpoint_interval_s=interval)
    trainer.subscribe(StopRequestFile(run.stop_file, trainer.request_stop))
    code = 0
    try:
        trainer.fit(resume=resume)
    except WarmstartError:
        code = BAD_INPUT  # the trainer wrote the failed event with its message
    except Exception:
        traceback.print_exc()
        code = UNEXPECTED
    if report is not None and trainer.distributed.is_main:  # under torchrun, every rank runs this
        outcome = {"reused_features": trainer.reused_features, "held": held_report(trainer.held) if trainer.held.pending else None}
        with contextlib.suppress(OSError):  # a broken pipe: the app that started us is gone; a restarted one reads the folder
            report.write(json.dumps(outcome) + "\n")
            report.flush()
    return code


def _import_what_runs_use() -> None:
    """Import now what a run would import on first use (this module already brought in the trainer).
    One that does not import is left to the run, which says what it means (no ONNX Runtime: eager PyTorch)."""
    for name in ("timm", "onnxruntime", "safetensors.torch"):
        with contextlib.suppress(ImportError, OSError):
            importlib.import_module(name)


def _await_run(stdin: IO[str]) -> tuple[str, bool] | None:
    """A standby worker's run folder and resume flag, read from one line; None at the end of input."""
    line = stdin.readline()
    if not line.strip():
        return None
    try:
        request = json.loads(line)
        return str(request["run"]), bool(request.get("resume", False))
    except (json.JSONDecodeError, KeyError, TypeError):
        print(f"A standby worker expects a line like {{\"run\": \"RUN_DIR\"}}, not {line.strip()[:80]!r}.", file=sys.stderr)
        return None


def _log_errors_to(path: Path) -> None:
    """Send this process's standard error (tracebacks, warnings) to ``path``, as the app does for the workers it starts."""
    with contextlib.suppress(OSError):  # an unwritable folder: the run's own events say what went wrong
        with open(path, "ab") as log:
            os.dup2(log.fileno(), sys.stderr.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transfer_core.worker", description="Train one run folder.")
    parser.add_argument("run_dir", nargs="?", help="a run folder with a config.json")
    parser.add_argument("--resume", action="store_true", help="continue from the last complete epoch")
    parser.add_argument("--standby", action="store_true", help="import everything, then read the run from standard input")
    args = parser.parse_args(argv)
    if (args.run_dir is None) != args.standby:
        parser.error("give a run folder, or --standby (and the run on standard input)")
    run_dir, resume = args.run_dir, args.resume
    if args.standby:
        _import_what_runs_use()
        request = _await_run(sys.stdin)
        if request is None:
            return 0
        run_dir, resume = request
        _log_errors_to(RunDir(run_dir).worker_log)
    # The exit report owns the real standard output; anything else printed goes to standard error.
    report = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return run_worker(run_dir, resume, report)


if __name__ == "__main__":
    exit_now(main())
