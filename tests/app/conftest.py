"""AppTest fixtures: an isolated workspace, a dataset in session state, a finished run."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from transfer_core import RunStore, Trainer

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    from ui import state

    home = tmp_path / "home"
    monkeypatch.setenv("WARMSTART_HOME", str(home))
    state.job_manager.clear()
    state._load_indexes.clear()
    yield home
    manager = state.job_manager()
    for job in manager.active():
        manager.cancel(job)
        job.wait(30)
    state.job_manager.clear()


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120)


@pytest.fixture
def app(workspace) -> AppTest:
    return new_app()


@pytest.fixture
def app_with_data(workspace, color_dataset):
    """An app whose session has the colour dataset loaded and the tiny test backbone chosen."""
    from ui import state

    at = new_app()
    at.run()
    at.session_state["dataset"] = state.DatasetChoice("colours", str(color_dataset))
    settings = at.session_state["settings"]
    settings.update(backbone="tiny_cnn", lr=0.3, val_split=0.3, epochs=3, batch_size=8)
    at.session_state["settings"] = settings
    return at


@pytest.fixture
def finished_run(workspace, tiny_config):
    store = RunStore(workspace / "runs")
    run = store.new_run(tiny_config.replace(epochs=6))
    Trainer(tiny_config.replace(epochs=6), run).fit()
    return run
