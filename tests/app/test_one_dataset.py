"""An uploaded zip is one dataset: the Data page, the shoot-out and training all see the same files."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

import transfer_core

from transfer_core.insight import shootout
from transfer_core.training.events import Event
from ui import state

from ..conftest import TINY, write_dataset, zip_folder
from .conftest import new_app


def _no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def _indexes_script():
    """Runs inside a script run, where ``ui.state`` can read the session: the Data page's indexes."""
    import streamlit as st

    from ui import state

    st.session_state["indexes"] = state.dataset_indexes()


def _data_page_indexes(at: AppTest):
    """What ``state.dataset_indexes()`` returns in ``at``'s session (same dataset and settings)."""
    probe = AppTest.from_function(_indexes_script, default_timeout=60)
    probe.session_state["project"] = at.session_state["project"]
    probe.session_state["settings"] = at.session_state["settings"]
    probe.run()
    _no_exception(probe)
    return probe.session_state["indexes"]


def test_uploaded_zip_is_one_dataset_for_data_page_shootout_and_training(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # the engine must not extract a second copy here
    archive = zip_folder(write_dataset(tmp_path / "src" / "colours"), tmp_path / "colours.zip")

    at = new_app()
    at.run()
    settings = at.session_state["settings"]
    settings.update(backbone=TINY, lr=0.3, val_split=0.3, epochs=3, batch_size=8, seed=0, image_size=None)
    at.session_state["settings"] = settings
    at.switch_page("app_pages/data.py").run()
    at.file_uploader(key="zip_upload").upload("colours.zip", archive.read_bytes(), "application/zip").run()
    at.button(key="use_zip").click().run()
    _no_exception(at)
    assert at.subheader[0].value == "Dataset: colours"
    train, val = _data_page_indexes(at)
    assert len(train) + len(val) == 30

    # The Backbone page's shoot-out, on the tiny test backbone only (the page lists real ones).
    real_shootout = shootout.backbone_shootout
    only_tiny = lambda tr, va, names, **kw: real_shootout(tr, va, [TINY], **kw)
    monkeypatch.setattr(shootout, "backbone_shootout", only_tiny)
    monkeypatch.setattr(transfer_core, "backbone_shootout", only_tiny)  # what the page imports
    at.switch_page("app_pages/backbone.py").run()
    at.button(key="shootout").click().run()
    _no_exception(at)
    assert list(at.dataframe[-1].value["backbone"]) == [TINY]

    at.switch_page("app_pages/train.py").run()
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_exception(at)
    job = state.job_manager().latest()
    job.wait(120)
    assert job.status == "finished", job.error
    assert job.config.strategy == "frozen" and job.config.augment.is_none  # features can be reused at all

    val_paths = {r.path for r in val.records}
    predicted = [p["path"] for p in job.run.read_predictions()]
    assert len(predicted) == len(val_paths)
    assert set(predicted) <= val_paths
    assert job.reused_features == len(train) + len(val)
    messages = [e["message"] for e in job.run.read_events({Event.CACHED})]
    assert any("reused from an earlier run" in m for m in messages), messages
    # No second copy of the images anywhere in the user's home (ONNX Runtime may leave its own id file there).
    assert not [f for f in (tmp_path / "user").rglob("*.png")]
