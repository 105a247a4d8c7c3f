"""The run store: one folder per run, written so a crash never leaves a broken file behind.

Layout of a run folder::

    config.json        the TrainConfig
    metrics.jsonl      one line per event (appended; a torn last line is ignored on reading)
    model.json         classes, backbone, preprocessing: everything needed to rebuild the model
    best.safetensors   weights of the best epoch so far (a frozen run's: those training changes)
    backbone.safetensors  a frozen run's backbone weights, a hard link to one copy shared by
                       such runs (see :mod:`.shared_weights`)
    resume.pt          model/optimizer/scheduler state after the last complete epoch
    report.json        final metrics (written when a run finishes or stops)
    predictions.json   per-image validation predictions (for the mistakes gallery)
    owner.json         pid and host of the process training the run (dead pid: "interrupted")
    stop-requested     present while a stop is asked for: the training loop checks it after every
                       batch and ends the run as "stopped" (the app's stop button writes it)
    worker.log         what an app-started training process printed (tracebacks; never shown to users)

Every whole-file write goes to a temporary file in the same folder and is renamed over
the target, so readers see either the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..config import TrainConfig
from ..errors import WarmstartError
from ..training.events import Event, RunEvent
from .event_lines import EventLines
from .held import HeldWrites  # re-exported: callers import it from the store

SHARED_WEIGHTS_FILE = HeldWrites.SHARED_WEIGHTS_FILE

__all__ = ["SHARED_WEIGHTS_FILE", "HeldWrites", "RunDir", "RunStore", "atomic_write", "atomic_write_json", "safe_torch_load"]


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then atomically rename the temporary file onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_bytes(value: Any) -> bytes:
    """How every JSON file of the project is written: indented, UTF-8, unknown types as strings."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode("utf-8")


def atomic_write_json(path: Path, value: Any) -> None:
    data = json_bytes(value)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def safe_torch_load(path: Path) -> Any:
    """Load a torch file without executing code; a pickle that tries to is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError and friends
        raise WarmstartError(
            f"Refusing to load '{path.name}': it is not a plain weights file ({type(exc).__name__})."
        ) from None


class RunDir:
    """Reads and writes one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._kept_lines: EventLines | None = None  # see metrics_kept_open

    @property
    def name(self) -> str:
        return self.path.name

    # -- files ---------------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    model_file = property(lambda self: self.path / "model.json")
    checkpoint_file = property(lambda self: self.path / "best.safetensors")
    resume_file = property(lambda self: self.path / "resume.pt")
    report_file = property(lambda self: self.path / "report.json")
    predictions_file = property(lambda self: self.path / "predictions.json")
    stop_file = property(lambda self: self.path / "stop-requested")
    worker_log = property(lambda self: self.path / "worker.log")

    def exists(self) -> bool:
        return self.config_file.exists()

    # -- writing -------------------------------------------------------------------------
    def write_config(self, config: TrainConfig) -> None:
        atomic_write_json(self.config_file, config.to_dict())

    def append_event(self, event: RunEvent) -> None:
        """Subscriber: one JSON line per event, flushed so live readers see it at once."""
        self.append_lines([json.dumps(event.to_dict(), ensure_ascii=False)])

    def append_lines(self, lines: list[str]) -> None:
        """Append JSON lines to ``metrics.jsonl``, first closing a line torn by a killed writer
        (see :mod:`.event_lines`); within :meth:`metrics_kept_open`, to the file kept open."""
        if self._kept_lines is not None:
            self._kept_lines.append(lines)
            return
        once = EventLines(self.metrics_file)
        try:
            once.append(lines)
        finally:
            once.close()

    @contextlib.contextmanager
    def metrics_kept_open(self) -> Iterator[None]:
        """Within the block this object keeps ``metrics.jsonl`` open between lines (a training run);
        a block inside another uses the outer one's file."""
        if self._kept_lines is not None:
            yield
            return
        self._kept_lines = EventLines(self.metrics_file)
        try:
            yield
        finally:
            self._kept_lines.close()
            self._kept_lines = None

    __call__ = append_event

    def write_bytes(self, name: str, data: bytes) -> None:
        self.write_with(name, lambda tmp: tmp.write_bytes(data))

    def write_with(self, name: str, write: Callable[[Path], None]) -> None:
        """Atomically replace ``name`` with what ``write(temporary_path)`` writes (every file write of a run goes here)."""
        atomic_write(self.path / name, write)

    def link_file(self, name: str, source: Path, inode: int) -> None:
        """Atomically make ``name`` a hard link to ``source``, provided that is still the file ``inode``
        (another process may have put a new one in its place). Raises OSError where it cannot be done."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{name}.{os.getpid()}-{time.monotonic_ns()}.tmp"
        try:
            os.link(source, tmp)
            if tmp.stat().st_ino != inode:
                raise OSError(errno.ESTALE, f"'{source}' was replaced meanwhile")
            os.replace(tmp, self.path / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def mark_owner(self) -> None:
        """Record which process trains this run, so a crashed run reads as interrupted, not running."""
        atomic_write_json(self.path / "owner.json", {"pid": os.getpid(), "host": socket.gethostname()})

    def request_stop(self) -> None:
        """Ask whichever process trains this run to stop after its current batch (see ``stop_file``)."""
        self.stop_file.touch()

    def clear_stop_request(self) -> None:
        """Forget an old stop request, so a resumed run does not stop at its first batch."""
        self.stop_file.unlink(missing_ok=True)

    def remove_partial_files(self) -> None:
        """Delete temporary files left by a process killed mid-write (the real files are intact): ours
        (``.name.random.tmp``) and the one safetensors writes a checkpoint through (``.tmpRANDOM``)."""
        for leftover in [*self.path.glob(".*.tmp"), *self.path.glob(".tmp*")]:
            leftover.unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------
    def read_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self._read_json(self.config_file))

    def read_model_info(self) -> dict[str, Any]:
        return self._read_json(self.model_file)

    def read_report(self) -> dict[str, Any] | None:
        return self._read_json(self.report_file) if self.report_file.exists() else None

    def last_activity(self) -> float:
        """When the run last wrote anything (its event log, else its config, else the folder), 0 when
        none can be read: what lists of runs and projects sort and say "active … ago" by."""
        times = []
        for path in (self.metrics_file, self.config_file, self.path):
            try:
                times.append(path.stat().st_mtime)
            except OSError:
                continue
        return max(times, default=0.0)

    def final_accuracy(self) -> float | None:
        """The report's validation accuracy, or None when there is no readable report (lists
        of runs and projects must still show when one report is damaged)."""
        try:
            report = self.read_report()
        except WarmstartError:
            return None
        accuracy = report.get("val_accuracy") if isinstance(report, dict) else None
        return float(accuracy) if isinstance(accuracy, (int, float)) else None

    def read_predictions(self) -> list[dict[str, Any]]:
        return self._read_json(self.predictions_file) if self.predictions_file.exists() else []

    def load_checkpoint(self) -> dict[str, torch.Tensor]:
        """The best epoch's weights: ``best.safetensors``, joined with the shared backbone weights
        of a frozen run (its entries win over theirs)."""
        if not self.checkpoint_file.exists():
            raise WarmstartError(f"Run '{self.name}' has no saved model yet (no completed epoch).")
        shared = self.path / SHARED_WEIGHTS_FILE
        try:
            with safe_open(str(self.checkpoint_file), framework="pt") as file:
                weights = {k: file.get_tensor(k) for k in file.keys()}
                needs_shared = (file.metadata() or {}).get("shared") == SHARED_WEIGHTS_FILE
            if shared.exists():
                weights = {**load_file(str(shared)), **weights}
        except Exception as exc:
            raise WarmstartError(f"Checkpoint of run '{self.name}' is unreadable ({exc}).") from None
        if needs_shared and not shared.exists():
            raise WarmstartError(
                f"Run '{self.name}' keeps its backbone's weights in '{SHARED_WEIGHTS_FILE}', which is missing; "
                "the run cannot be used without it."
            )
        return weights

    def load_resume_state(self) -> dict[str, Any] | None:
        """The state after the last complete epoch (see ResumeCheckpoint), or None without one."""
        return _upgrade_resume_state(safe_torch_load(self.resume_file)) if self.resume_file.exists() else None

    def read_events(self, kinds: set[Event] | None = None) -> list[dict[str, Any]]:
        """Events as dicts, oldest first; a torn final line (crash mid-append) is skipped."""
        if not self.metrics_file.exists():
            return []
        out = []
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if kinds is None or record.get("event") in kinds:
                out.append(record)
        return out

    def status(self) -> str:
        """created / running / interrupted / finished / stopped / failed, from the last lifecycle event.

        A run whose last event is "started" but whose training process is gone (killed, crashed,
        server restarted) is "interrupted": it can be resumed from its last complete epoch.
        """
        lifecycle = {Event.STARTED, Event.FINISHED, Event.STOPPED, Event.FAILED}
        events = self.read_events(lifecycle)
        if not events:
            return "created"
        last = events[-1]["event"]
        if last != Event.STARTED:
            return last
        return "running" if self._owner_alive() else "interrupted"

    def _owner_alive(self) -> bool:
        try:
            owner = json.loads((self.path / "owner.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        if owner.get("host") != socket.gethostname():
            return True  # another machine's process: cannot tell, assume it is alive
        try:
            os.kill(int(owner["pid"]), 0)
        except (ProcessLookupError, ValueError, KeyError, TypeError):
            return False
        except PermissionError:
            return True
        return True

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WarmstartError(f"'{path}' does not exist; is '{self.path}' a Warmstart run folder?") from None
        except json.JSONDecodeError as exc:
            raise WarmstartError(f"'{path}' is not valid JSON ({exc}).") from None


class RunStore:
    """A folder of run folders, newest first."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def new_run(self, config: TrainConfig, label: str | None = None) -> RunDir:
        """Create a uniquely named run folder and save its config."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        label = re.sub(r"^\d{8}-\d{6}-", "", label) if label else None  # a label made from another run's name
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label or f"{config.backbone}-{config.strategy}").strip("-")
        self.root.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            name = f"{stamp}-{slug}" + (f"-{attempt}" if attempt else "")
            try:
                (self.root / name).mkdir()
                break
            except FileExistsError:
                continue
        run = RunDir(self.root / name)
        run.write_config(config)
        return run

    def runs(self) -> list[RunDir]:
        if not self.root.exists():
            return []
        found = [RunDir(p) for p in self.root.iterdir() if p.is_dir() and (p / "config.json").exists()]
        return sorted(found, key=lambda r: r.name, reverse=True)

    def rename(self, name: str, new_name: str) -> RunDir:
        """Give a run a new folder name (letters, digits, ``-``, ``_``, ``.``); refused while it trains."""
        run = self.get(name)
        clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", new_name.strip()).strip("-.")
        if not clean:
            raise WarmstartError("A run name needs at least one letter or digit.")
        if clean == name:
            return run
        if (self.root / clean).exists():
            raise WarmstartError(f"A run named '{clean}' already exists; choose another name.")
        if run.status() == "running":
            raise WarmstartError(f"Run '{name}' is training; rename it when it has finished or been stopped.")
        run.path.rename(self.root / clean)
        return RunDir(self.root / clean)

    def delete(self, name: str) -> None:
        """Remove a run folder for good; refused while it trains."""
        run = self.get(name)
        if run.status() == "running":
            raise WarmstartError(f"Run '{name}' is training; stop it before deleting it.")
        shutil.rmtree(run.path)

    @staticmethod
    def zip_bytes(run: RunDir) -> bytes:
        """The run folder as a zip for download (without the resume state, which only this app can use)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(run.path.rglob("*")):
                if path.is_file() and path.name != "resume.pt" and not path.name.endswith(".tmp"):
                    zf.write(path, f"{run.name}/{path.relative_to(run.path).as_posix()}")
        return buffer.getvalue()

    def get(self, name: str) -> RunDir:
        run = RunDir(self.root / name)
        if not run.exists():
            raise WarmstartError(f"No run named '{name}' in '{self.root}'.")
        return run


def _upgrade_resume_state(state: dict[str, Any]) -> dict[str, Any]:
    """Resume files written before the callbacks kept their own state put it at the top level."""
    if "callbacks" in state:
        return state
    return {
        **state,
        "callbacks": {
            "checkpoint": {"best": state.get("best")},
            "early_stopping": {"best_loss": state.get("best_loss_seen", float("inf")), "bad_epochs": state.get("bad_epochs", 0)},
            "head_warmup": {"done": True},
        },
    }
