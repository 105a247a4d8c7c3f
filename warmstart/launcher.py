"""Find the Streamlit app wherever Warmstart is installed, start it, or hand a sub-command to the engine's CLI."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from transfer_core.cli import EXIT_BAD_INPUT
from transfer_core.cli import main as cli_main

__all__ = ["app_command", "app_dir", "main", "streamlit_options"]

PROG = "warmstart"
APP_USAGE = (
    "usage: warmstart app [STREAMLIT OPTIONS]   start the web app (options as for 'streamlit run', e.g. --server.port 8600)\n"
    "       warmstart COMMAND ...               the command line below (the same as python -m transfer_core)\n"
)


def app_dir(package: Path | None = None) -> Path:
    """The folder holding app.py, app_pages/ and ui/.

    Args:
        package: this package's folder (default: where this file is).

    Returns:
        ``warmstart/app`` when installed with pip, else the repository root of a source checkout.

    Raises:
        FileNotFoundError: neither holds the app, with what was looked for and where.
    """
    package = package or Path(__file__).resolve().parent
    candidates = (package / "app", package.parent)
    for folder in candidates:
        if (folder / "app.py").is_file() and (folder / "app_pages").is_dir() and (folder / "ui").is_dir():
            return folder
    places = " or ".join(f"'{folder}'" for folder in candidates)
    raise FileNotFoundError(f"The Warmstart app (app.py, app_pages/, ui/) is not in {places}; reinstall with 'pip install .'.")


def streamlit_options(config: Path) -> list[str]:
    """The app's own ``.streamlit/config.toml`` as ``streamlit run`` flags.

    Streamlit reads that file only from the working directory; as flags the settings (upload
    limit, theme, headless) apply wherever the command is run. Flags given later win.
    """
    if not config.is_file():
        return []
    options = []
    for section, values in tomllib.loads(config.read_text(encoding="utf-8")).items():
        for name, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            options.append(f"--{section}.{name}={text}")
    return options


def app_command(args: Sequence[str] = (), folder: Path | None = None) -> list[str]:
    """The child process that runs the app: this Python's Streamlit on app.py, the app's settings, then ``args``."""
    folder = folder or app_dir()
    return [sys.executable, "-m", "streamlit", "run", str(folder / "app.py"),
            *streamlit_options(folder / ".streamlit" / "config.toml"), *args]


def _run_app(args: Sequence[str]) -> int:
    """Start the app and wait for it; Ctrl-C reaches the app as well, which then shuts down by itself."""
    if importlib.util.find_spec("streamlit") is None:
        print("error: the app needs Streamlit; install it with 'pip install -r requirements.txt'.", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        command = app_command(args)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    process = subprocess.Popen(command)
    # A stop request for the launcher (kill, timeout, a service manager) is passed on, so the app never outlives it.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """``warmstart app ...`` starts the app; ``warmstart COMMAND ...`` is ``python -m transfer_core COMMAND ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["app"]:
        return _run_app(args[1:])
    if args[:1] in ([], ["-h"], ["--help"]):
        print(APP_USAGE)
    return cli_main(args, prog=PROG)
