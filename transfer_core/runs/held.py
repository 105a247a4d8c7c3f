"""Run-folder writes that survive a full disk or an unwritable folder (see :class:`HeldWrites`)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import RunDir

__all__ = ["HeldWrites"]


class HeldWrites:
    """Writes into a run folder that survive a full disk or an unwritable folder.

    A write the disk refuses is kept in memory (the newest version of each file, and every
    unwritten event line in order) and ``on_failure`` is told once; :meth:`retry` writes
    everything held, and :meth:`bundle` packs the run's results into a zip for download
    from memory, whatever made it to disk.
    """

    SHARED_WEIGHTS_FILE = "backbone.safetensors"  # a frozen run's backbone weights (see :mod:`.shared_weights`)
    BUNDLE = ("config.json", "model.json", "best.safetensors", SHARED_WEIGHTS_FILE, "report.json", "predictions.json")

    def __init__(self, run: RunDir, on_failure: Callable[[OSError], None] | None = None) -> None:
        self.run = run
        self.on_failure = on_failure
        self.files: dict[str, bytes] = {}
        self.lines: list[str] = []
        self.error: OSError | None = None

    @property
    def pending(self) -> list[str]:
        """Names of what is held in memory, unsaved."""
        return list(self.files) + (["metrics.jsonl"] if self.lines else [])

    def write(self, name: str, data: bytes) -> None:
        try:
            self.run.write_bytes(name, data)
            self.files.pop(name, None)
        except OSError as exc:
            self.files[name] = data
            self._failed(exc)

    def write_with(self, name: str, write: Callable[[Path], None], as_bytes: Callable[[], bytes]) -> None:
        """Like :meth:`write` for a file written straight to disk by ``write(temporary_path)``;
        ``as_bytes()`` makes its contents only when the disk refuses and they must be held."""
        try:
            self.run.write_with(name, write)
            self.files.pop(name, None)
        except OSError as exc:
            self.files[name] = as_bytes()
            self._failed(exc)

    def link(self, name: str, source: Path, inode: int) -> bool:
        """Hard-link ``source`` into the run as ``name`` (see :meth:`RunDir.link_file`); False when that
        cannot be done, and the caller writes the data itself."""
        try:
            self.run.link_file(name, source, inode)
        except OSError:
            return False
        return True

    def write_json(self, name: str, value: Any) -> None:
        from .store import json_bytes  # the store imports this module

        self.write(name, json_bytes(value))

    def append_line(self, line: str) -> None:
        self.lines.append(line)
        self._flush_lines()  # also writes lines held from earlier failures, in order

    def _flush_lines(self) -> None:
        try:
            self.run.append_lines(self.lines)
            self.lines.clear()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        first = self.error is None
        self.error = exc
        if first and self.on_failure is not None:
            self.on_failure(exc)

    def retry(self) -> list[str]:
        """Write everything held; returns what is still unsaved (empty when all is on disk)."""
        self.error = None
        for name, data in list(self.files.items()):
            self.write(name, data)
        if self.lines:
            self._flush_lines()
        return self.pending

    def bundle(self) -> bytes:
        """A zip of the run's result files, from memory where the disk does not have them."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in self.BUNDLE:
                data = self.files.get(name)
                if data is None and (self.run.path / name).is_file():
                    data = (self.run.path / name).read_bytes()
                if data is not None:
                    zf.writestr(f"{self.run.name}/{name}", data)
        return buffer.getvalue()
