"""Where Warmstart keeps what it makes: runs, uploads, samples and extracted archives.

One folder for the app, the command line and the engine alike. An uploaded zip is extracted
into it once, so every tool indexes the same files under the same paths; the feature cache,
corrections and predictions are all keyed by those paths, and a second copy elsewhere would
silently share none of them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["extraction_dir", "home"]


def home() -> Path:
    """The workspace folder: ``$WARMSTART_HOME`` if set, else ``.warmstart`` in the repository root
    of a source checkout, else (installed with pip) ``~/.warmstart``.

    Returns:
        An absolute path (it may not exist yet), so paths derived from it do not depend on
        the working directory.
    """
    configured = os.environ.get("WARMSTART_HOME")
    root = Path(configured).expanduser() if configured else _default_home(Path(__file__).resolve().parents[1])
    return root.absolute()


def _default_home(parent: Path) -> Path:
    """``.warmstart`` beside the engine in a checkout; ``~/.warmstart`` when ``parent`` is site-packages."""
    if (parent / "pyproject.toml").is_file() and (parent / "app.py").is_file():
        return parent / ".warmstart"
    return Path.home() / ".warmstart"


def extraction_dir() -> Path:
    """Where archives are extracted by default, one sub-folder per archive content."""
    return home() / "extracted"
