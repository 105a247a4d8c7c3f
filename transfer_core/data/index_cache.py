"""Remember which files of a dataset are usable images, so indexing an unchanged folder again opens no image.

Checking a file means opening it and parsing its header, a millisecond or more per photo
(a minute or two for 50,000, far longer from a slow disk), while listing a folder and reading
each file's size and modification time takes a fraction of that. Each verdict ("usable", or the
reason a file is skipped) is kept with the size and time it was made for, in one file per
dataset under ``$WARMSTART_HOME/cache/index/``. A file whose size or time changed, or that is
new, is checked again; a removed file is no longer listed, and its verdict is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from ..runs.store import atomic_write
from ..workspace import home

__all__ = ["FileVerdicts", "index_cache_dir"]

_VERSION = 1  # bump when what makes a file usable changes, so old verdicts are not trusted


def index_cache_dir() -> Path:
    """Where the verdicts of every indexed dataset are kept."""
    return home() / "cache" / "index"


class FileVerdicts:
    """The verdicts of one dataset's files, keyed by their path and valid for one size and modification time.

    Args:
        source: the folder (or manifest) indexed; its resolved path names the cache file.
        rules: anything else a verdict depends on (the pixel limit); a change discards every verdict.
    """

    def __init__(self, source: str | Path, rules: str = "") -> None:
        resolved = str(Path(source).resolve())
        self.path = index_cache_dir() / f"{hashlib.sha256(resolved.encode()).hexdigest()[:32]}.json"
        self._header = {"version": _VERSION, "source": resolved, "rules": rules}
        self._known = self._load()
        self._seen: dict[str, list] = {}
        self.reused = 0

    def _load(self) -> dict[str, list]:
        """The stored verdicts, or none when the file is missing, unreadable or made under other rules."""
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(stored, dict) or any(stored.get(k) != v for k, v in self._header.items()):
            return {}
        files = stored.get("files")
        return files if isinstance(files, dict) else {}

    def get(self, key: str, size: int, mtime_ns: int) -> str | None:
        """The reason ``key`` was skipped ("" if it is usable), or None when it must be checked (again)."""
        entry = self._known.get(key)
        if isinstance(entry, list) and len(entry) == 3 and entry[0] == size and entry[1] == mtime_ns:
            self._seen[key] = entry
            self.reused += 1
            return entry[2]
        return None

    def put(self, key: str, size: int, mtime_ns: int, reason: str) -> None:
        """Record a fresh verdict ("" for a usable image)."""
        self._seen[key] = [size, mtime_ns, reason]

    def save(self) -> None:
        """Keep this scan's verdicts (and only those: removed files drop out); a failed write only costs speed."""
        if self._seen == self._known:
            return
        text = json.dumps({**self._header, "files": self._seen})
        with contextlib.suppress(OSError):  # a read-only or full workspace: the next scan checks the files again, nothing is lost
            atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        self._known = dict(self._seen)
