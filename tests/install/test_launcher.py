"""The ``warmstart`` launcher finds the app, builds the command that runs it, and forwards the rest to the CLI."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from warmstart import launcher

ROOT = Path(__file__).resolve().parents[2]


def _app_files(folder: Path) -> Path:
    (folder / "app_pages").mkdir(parents=True)
    (folder / "ui").mkdir()
    (folder / "app.py").write_text("")
    return folder


def test_a_checkout_runs_the_app_at_the_repository_root():
    assert launcher.app_dir() == ROOT


def test_an_installed_launcher_runs_the_copy_installed_beside_it(tmp_path):
    package = tmp_path / "site-packages" / "warmstart"
    installed = _app_files(package / "app")
    assert launcher.app_dir(package) == installed


def test_a_launcher_without_the_app_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="app.py, app_pages/, ui/.*reinstall with 'pip install .'"):
        launcher.app_dir(tmp_path / "warmstart")


def test_the_app_command_is_this_pythons_streamlit_with_the_apps_settings_then_the_users(tmp_path):
    folder = _app_files(tmp_path / "app")
    (folder / ".streamlit").mkdir()
    (folder / ".streamlit" / "config.toml").write_text('[server]\nmaxUploadSize = 2000\nheadless = true\n\n[theme]\nprimaryColor = "#e4572e"\n')
    command = launcher.app_command(["--server.port", "8599"], folder)
    assert command == [
        sys.executable, "-m", "streamlit", "run", str(folder / "app.py"),
        "--server.maxUploadSize=2000", "--server.headless=true", "--theme.primaryColor=#e4572e",
        "--server.port", "8599",
    ]
    assert launcher.app_command([], ROOT)[5:] == launcher.streamlit_options(ROOT / ".streamlit" / "config.toml")


def test_warmstart_app_starts_that_command_and_returns_its_exit_status(monkeypatch):
    started = []

    class Child:
        def __init__(self, command):
            started.append(command)

        def wait(self):
            return 3

    monkeypatch.setattr(launcher.subprocess, "Popen", Child)
    assert launcher.main(["app", "--server.headless", "true"]) == 3
    assert started == [launcher.app_command(["--server.headless", "true"])]


def test_a_stop_request_for_the_launcher_reaches_the_app(monkeypatch):
    received = []

    class Child:
        def __init__(self, command):
            pass

        def send_signal(self, signum):
            received.append(signum)

        def wait(self):
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. `timeout 20 warmstart app`
            return -signal.SIGTERM

    monkeypatch.setattr(launcher.subprocess, "Popen", Child)
    before = signal.getsignal(signal.SIGTERM)
    assert launcher.main(["app"]) == -signal.SIGTERM
    assert received == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is before


def test_every_other_sub_command_goes_to_the_engine_cli(monkeypatch):
    forwarded = []
    monkeypatch.setattr(launcher, "cli_main", lambda args, prog: forwarded.append((args, prog)) or 0)
    assert launcher.main(["train", "photos/", "--out", "runs/first"]) == 0
    assert forwarded == [(["train", "photos/", "--out", "runs/first"], "warmstart")]


def test_warmstart_backbones_prints_the_registry(capsys):
    assert launcher.main(["backbones", "--json"]) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert "efficientnet_lite0" in names


def test_help_names_the_app_command_and_the_program(capsys):
    with pytest.raises(SystemExit) as exit_info:
        launcher.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert out.startswith("usage: warmstart app [STREAMLIT OPTIONS]") and "usage: warmstart [-h] COMMAND" in out
