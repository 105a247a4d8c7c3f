"""Projects in the app: created from data, listed on Home, kept across refreshes, tabs and restarts; runs per project."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from transfer_core import DatasetRef, ProjectStore, Trainer, display_name
from ui import state

from ..conftest import COLORS, write_dataset, zip_folder
from .conftest import new_app, open_project_app
from .test_pages import _goto, _no_exception


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_a_sample_makes_a_project_listed_on_home_with_its_facts(app):
    app.run()
    _button(app, "Try a sample dataset").click().run()
    _no_exception(app)
    home = _goto(app, "home")
    assert any(m.value.startswith("**Handwritten digits (sample)** · :green[open]") for m in home.markdown)
    assert any("300 images · 10 classes · no runs yet · active just now" in c.value for c in home.caption)
    assert any(s.value == "Progress in “Handwritten digits (sample)”" for s in home.subheader)


def test_the_recipe_is_saved_as_edited_so_a_refresh_and_a_second_tab_show_it(app_with_data, colour_project):
    at = _goto(app_with_data, "backbone")
    at.radio(key="w_strategy").set_value("partial").run()
    second_tab = open_project_app(colour_project)  # opened now, changed later
    at = _goto(at, "settings")
    at.slider(key="w_aug_rotation").set_value(20.0).run()
    _no_exception(at)
    saved = ProjectStore(colour_project.path.parent.parent).get(colour_project.slug).recipe
    assert saved["strategy"] == "partial" and saved["aug_rotation"] == 20.0 and saved["preset"] is None
    refreshed = open_project_app(colour_project)  # a refresh: a new session at the same URL
    _goto(refreshed, "settings")
    assert refreshed.slider(key="w_aug_rotation").value == 20.0
    assert refreshed.session_state["settings"]["strategy"] == "partial"
    _goto(second_tab, "settings")  # the earlier tab picks up what the other one saved
    assert second_tab.slider(key="w_aug_rotation").value == 20.0
    assert second_tab.session_state["settings"]["strategy"] == "partial"


def test_projects_survive_a_server_restart_and_reopen_in_one_click(app_with_data, colour_project, workspace):
    _goto(app_with_data, "backbone").radio(key="w_strategy").set_value("full").run()
    state.job_manager.clear()  # as if the server had restarted: new process, nothing in memory
    state._load_indexes.clear()
    at = new_app()
    at.run()
    assert any(m.value.startswith("**colours**") for m in at.markdown)  # listed, not open yet (a new session)
    _button(at, "Open").click().run()
    _no_exception(at)
    at = _goto(at, "data")
    assert at.subheader[0].value == "Dataset: colours"
    assert at.session_state["settings"]["strategy"] == "full"


def test_runs_belong_to_their_project_with_an_all_projects_switch(app_with_data, colour_project, workspace, tmp_path, tiny_config):
    two_colours = write_dataset(tmp_path / "two", colors={k: COLORS[k] for k in ("red", "blue")})
    other = ProjectStore(workspace).create("red or blue", dataset=DatasetRef("red or blue", str(two_colours)),
                                           recipe=colour_project.recipe)
    mine = colour_project.run_store().new_run(tiny_config.replace(epochs=1))
    Trainer(tiny_config.replace(epochs=1), mine).fit()
    theirs_config = tiny_config.replace(data=str(two_colours), epochs=1)
    theirs = other.run_store().new_run(theirs_config)
    Trainer(theirs_config, theirs).fit()

    at = _goto(app_with_data, "evaluate")
    assert at.selectbox(key="eval_run").options == [display_name(mine)]
    at.toggle(key="eval_run_all").set_value(True).run()
    _no_exception(at)
    assert sorted(at.selectbox(key="eval_run").options) == sorted(
        [f"colours · {display_name(mine)}", f"red or blue · {display_name(theirs)}"])

    at = _goto(at, "compare")
    assert len(at.dataframe[0].value.data if hasattr(at.dataframe[0].value, "data") else at.dataframe[0].value) == 1
    at.toggle(key="compare_all").set_value(True).run()
    _no_exception(at)
    assert len(at.multiselect(key="compare_runs").value) == 1  # different class sets are not overlaid by default
    at.multiselect(key="compare_runs").set_value([str(mine.path), str(theirs.path)]).run()
    assert any("different classes" in w.value for w in at.warning)


def test_rename_and_delete_a_project_from_home(app_with_data, colour_project, tiny_config):
    run = colour_project.run_store().new_run(tiny_config.replace(epochs=1))
    Trainer(tiny_config.replace(epochs=1), run).fit()
    at = _goto(app_with_data, "home")
    at.text_input(key=f"name_{colour_project.slug}").set_value("Colour chips").run()
    at.button(key=f"rename_{colour_project.slug}").click().run()
    _no_exception(at)
    assert any(m.value.startswith("**Colour chips**") for m in at.markdown)
    assert colour_project.path.is_dir()  # the folder (and every path a run recorded) stays
    at.button(key=f"delete_{colour_project.slug}").click().run()
    _no_exception(at)
    assert not colour_project.path.exists() and not run.path.exists()
    assert any("None yet" in c.value for c in at.caption)
    assert "project" not in at.query_params


def test_a_failed_upload_keeps_the_working_dataset_and_leaves_nothing_behind(app_with_data, colour_project, workspace):
    flat = io.BytesIO()
    with zipfile.ZipFile(flat, "w") as zf:
        for name in ("a.png", "b.png"):
            zf.writestr(name, b"x")
    at = _goto(app_with_data, "data")
    at.file_uploader(key="zip_upload").upload("not_really.zip", flat.getvalue(), "application/zip").run()
    at.button(key="use_zip").click().run()
    _no_exception(at)
    assert any("No class folders found in 'not_really.zip'" in e.value for e in at.error)
    assert not any("skipped.csv" in e.value or "-not_really" in e.value for e in at.error)
    assert at.subheader[0].value == "Dataset: colours"  # the working dataset is still the project's
    assert [p.name for p in ProjectStore(workspace).projects()] == ["colours"]
    assert list((workspace / "uploads").iterdir()) == []  # the staged upload was removed


def test_an_uploaded_zip_becomes_a_project_holding_its_upload_under_its_own_name(app, workspace, tmp_path):
    archive = zip_folder(write_dataset(tmp_path / "src" / "colours"), tmp_path / "colours.zip")
    app.run()
    at = _goto(app, "data")
    at.file_uploader(key="zip_upload").upload("my colours.zip", archive.read_bytes(), "application/zip").run()
    at.button(key="use_zip").click().run()
    _no_exception(at)
    project = ProjectStore(workspace).get(at.session_state["project"])
    assert project.name == "my colours" and project.dataset.images == 30
    assert project.dataset.source.endswith("/my colours.zip") and project.path in Path(project.dataset.source).parents
    assert at.subheader[0].value == "Dataset: my colours"


def test_a_preset_chosen_after_another_is_saved_too(app_with_data, colour_project):
    at = _goto(app_with_data, "settings")
    at.button(key="preset_Quick").click().run()  # the Settings step is now done
    at.button(key="preset_Balanced").click().run()
    _no_exception(at)
    refreshed = open_project_app(colour_project)
    assert refreshed.session_state["preset"] == "Balanced"
    assert refreshed.session_state["settings"]["strategy"] == "partial"


def test_a_new_project_starts_with_an_empty_checklist_and_a_distinct_name(app, workspace, tmp_path):
    app.run()
    _button(app, "Try a sample dataset").click().run()
    app.session_state["done"] = {"Backbone", "Settings", "Train", "Evaluate"}  # as after training the first project
    at = _goto(app, "home")
    _button(at, "Try a sample dataset").click().run()  # a second project on the same sample
    at = _goto(at, "home")
    assert sorted(p.name for p in ProjectStore(workspace).projects()) == [
        "Handwritten digits (sample)", "Handwritten digits (sample) (2)"]
    done = [m.value for m in at.markdown if m.value.endswith("· done")]
    assert not any("Train" in d or "Evaluate" in d for d in done)
