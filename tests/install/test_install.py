"""Installed with ``pip install .``: where the workspace goes, and what the package holds."""

from __future__ import annotations

import tomllib
from pathlib import Path

import transfer_core.workspace as workspace

ROOT = Path(__file__).resolve().parents[2]


def test_an_installed_engine_keeps_its_workspace_in_the_home_folder_not_in_site_packages(tmp_path, monkeypatch):
    monkeypatch.delenv("WARMSTART_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    site = tmp_path / "site-packages"
    monkeypatch.setattr(workspace, "__file__", str(site / "transfer_core" / "workspace.py"))
    assert workspace.home() == tmp_path / "user" / ".warmstart"

    checkout = tmp_path / "checkout"  # a clone: the workspace stays beside the code, as before
    checkout.mkdir()
    (checkout / "pyproject.toml").write_text("[project]\nname = 'warmstart'\n")
    (checkout / "app.py").write_text("")
    monkeypatch.setattr(workspace, "__file__", str(checkout / "transfer_core" / "workspace.py"))
    assert workspace.home() == checkout / ".warmstart"


def _requirements() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}


def test_pyproject_installs_what_requirements_txt_pins_and_every_engine_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    metadata = project["project"]
    declared = set(metadata["dependencies"]) | {d for extra in metadata["optional-dependencies"].values() for d in extra}
    assert declared == _requirements()
    assert metadata["scripts"] == {"warmstart": "warmstart.launcher:main"}
    packages = set(project["tool"]["setuptools"]["packages"])
    engine = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "transfer_core").rglob("__init__.py")}
    assert engine <= packages, f"add {sorted(engine - packages)} to pyproject.toml's packages"
    assert project["tool"]["setuptools"]["package-dir"] == {"warmstart.app": ".", "warmstart.app.app_pages": "app_pages", "warmstart.app.ui": "ui"}
