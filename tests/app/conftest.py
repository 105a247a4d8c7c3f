"""AppTest fixtures: an isolated workspace, a dataset in session state, a finished run."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from transfer_core import DatasetRef, ProjectStore, RunStore, Trainer

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


def open_project_app(project) -> AppTest:
    """An app opened at ``?project=<slug>``, as a bookmarked or refreshed page would be."""
    at = new_app()
    at.query_params["project"] = project.slug
    at.run()
    return at


@pytest.fixture
def colour_project(workspace, color_dataset):
    """A project on the colour dataset whose saved recipe uses the tiny test backbone."""
    from ui import state

    recipe = {**state._default_settings(), "backbone": "tiny_cnn", "lr": 0.3, "val_split": 0.3, "epochs": 3, "batch_size": 8}
    return ProjectStore(workspace).create("colours", dataset=DatasetRef("colours", str(color_dataset)), recipe=recipe)


@pytest.fixture
def app_with_data(colour_project):
    """An app with the colour project open (its dataset loaded, the tiny test backbone chosen)."""
    from ui import state

    at = open_project_app(colour_project)
    state._load_indexes.clear()  # tests change the files after this first run
    return at


@pytest.fixture
def finished_run(workspace, tiny_config):
    store = RunStore(workspace / "runs")
    run = store.new_run(tiny_config.replace(epochs=6))
    Trainer(tiny_config.replace(epochs=6), run).fit()
    return run
