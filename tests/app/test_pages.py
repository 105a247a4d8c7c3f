"""Every page renders empty and with data; its key controls exist and do what they say."""

import time

import pytest

from transfer_core import display_name
from ui import state

from .conftest import new_app, open_project_app


def _no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def _goto(at, page):
    at.switch_page(f"app_pages/{page}.py").run()
    _no_exception(at)
    return at


@pytest.mark.parametrize("page", ["home", "data", "backbone", "settings", "train", "evaluate", "predict", "export", "compare"])
def test_every_page_renders_empty(app, page):
    app.run()
    _no_exception(app)
    _goto(app, page)
    assert app.title[0].value


def test_home_checklist_and_sample_button(app):
    app.run()
    steps = [m.value for m in app.markdown if "**1. Data**" in m.value or ":material/" in m.value]
    assert len(steps) == len(state.STEPS) and not any("done" in s for s in steps)
    app.button[0].click().run()  # Try a sample dataset
    _no_exception(app)
    choice = state.project_store().get(app.session_state["project"]).dataset
    assert choice.name.startswith("Handwritten digits") and choice.images == 300 and len(choice.classes) == 10
    assert app.session_state["preset"] == "Quick"
    assert app.title[0].value == "4 · Train"  # switched to the Train page
    app.switch_page("app_pages/home.py").run()
    done = [m.value for m in app.markdown if m.value.endswith("· done")]
    assert len(done) == 3  # Data, Backbone and Settings are ticked


def test_data_page_shows_counts_split_and_skipped(app_with_data, color_dataset):
    (color_dataset / "red" / "notes.txt").write_text("not an image")
    at = _goto(app_with_data, "data")
    assert at.subheader[0].value == "Dataset: colours"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Training images": "21", "Validation images": "9"}
    assert len(at.get("plotly_chart")) == 1  # the confusion matrix (every validation image right: no reliability diagram)
    assert any("1 files skipped" in e.label for e in at.expander)
    at.slider(key="w_val_split").set_value(0.5).run()
    _no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Training images": "15", "Validation images": "15"}
    assert len(at.get("image")) == 10  # thumbnails of the first class


def test_data_page_shows_a_clear_error_for_a_broken_dataset(app_with_data, colour_project, tmp_path):
    colour_project.set_dataset(state.DatasetChoice("gone", str(tmp_path / "missing")))  # moved away after it was chosen
    at = _goto(app_with_data, "data")
    assert "does not exist" in at.error[0].value
    assert len([e for e in at.error if "does not exist" in e.value]) == 1  # once, not again in the sidebar
    at = _goto(at, "backbone")
    assert len([e for e in at.error if "does not exist" in e.value]) == 1


def test_backbone_page_table_strategy_and_parameter_counts(app):
    app.run()
    at = _goto(app, "backbone")
    table = at.dataframe[0].value
    assert {"efficientnet_lite0", "resnet18", "vit_b_16"} <= set(table["backbone"])
    frozen_trainable = int(at.metric[0].value.replace(",", ""))
    at.radio(key="w_strategy").set_value("full").run()
    _no_exception(at)
    full_trainable = int(at.metric[0].value.replace(",", ""))
    assert full_trainable > frozen_trainable * 100
    assert at.session_state["settings"]["strategy"] == "full"
    at.radio(key="w_strategy").set_value("partial").run()
    assert at.number_input(key="w_trainable_blocks").value == 2


def test_settings_presets_fill_every_control_and_preview_updates(app_with_data):
    at = _goto(app_with_data, "settings")
    assert len(at.get("image")) == 8  # augmentation previews
    at.button(key="preset_Balanced").click().run()
    _no_exception(at)
    assert at.session_state["settings"]["strategy"] == "partial"
    assert at.slider(key="w_aug_hflip").value == 0.5
    assert at.session_state["preset"] == "Balanced"
    at.slider(key="w_aug_rotation").set_value(20.0).run()
    assert at.session_state["settings"]["aug_rotation"] == 20.0
    assert at.session_state["preset"] is None  # now a custom recipe
    at.button(key="preset_Quick").click().run()
    assert at.slider(key="w_aug_rotation").value == 0.0


def test_train_page_starts_one_run_shows_progress_and_finishes(app_with_data, colour_project):
    at = _goto(app_with_data, "train")
    start = next(b for b in at.button if b.label == "Start training")
    start.click().run()
    _no_exception(at)
    job = state.job_manager().latest()
    assert job is not None
    job.wait(120)
    assert job.status == "finished", job.error
    # A second session (another tab) sees the same run and cannot start a duplicate meanwhile.
    other = open_project_app(colour_project)
    other.switch_page("app_pages/train.py").run()
    _no_exception(other)
    assert any(f"Run {display_name(job.run)}" == s.value for s in other.subheader)
    assert any("Training finished" in s.value for s in other.success)
    assert len(colour_project.run_store().runs()) == 1
    assert any(b.label == "Evaluate this run" for b in other.button)


def test_train_button_says_training_while_the_users_run_trains(app_with_data):
    settings = app_with_data.session_state["settings"]
    settings.update(epochs=500, strategy="full")
    app_with_data.session_state["settings"] = settings
    at = _goto(app_with_data, "train")
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_exception(at)
    mine = state.job_manager().get(at.session_state["own_job"])
    assert mine.status == "running"
    labels = {b.label: b for b in at.button}
    assert "Queue training" not in labels and labels["Training…"].disabled
    assert labels["Queue another run"].disabled  # the same recipe is already training
    settings = at.session_state["settings"]
    settings.update(seed=7)  # another recipe
    at.session_state["settings"] = settings
    at.run()
    next(b for b in at.button if b.label == "Queue another run").click().run()
    _no_exception(at)
    queued = state.job_manager().get(at.session_state["own_job"])
    assert queued is not mine and queued.status == "queued"
    assert next(b for b in at.button if b.label == "Waiting in the queue…").disabled
    for job in (queued, mine):
        state.job_manager().cancel(job)
        job.wait(60)


def test_train_page_draws_a_finished_run_once(app_with_data, tiny_config, colour_project):
    earlier = state.job_manager().start(tiny_config.replace(seed=1), store=colour_project.run_store())
    earlier.wait(120)
    job = state.job_manager().start(tiny_config, store=colour_project.run_store())
    job.wait(120)
    assert job.status == "finished", job.error
    at = _goto(app_with_data, "train")
    assert [s.value for s in at.subheader if s.value.startswith("Run ")] == [f"Run {display_name(job.run)}"]
    assert len([e for e in at.expander if e.label == "Event log"]) == 2  # the finished run's and the earlier run's
    # Long lines (what the feature cache did and why) wrap instead of running off the page's edge.
    logs = [c for c in at.code if "Started:" in c.value]
    assert len(logs) == 2 and all(c.proto.wrap_lines for c in logs)
    earlier_runs = at.selectbox(key="train_past_run").options
    assert earlier_runs == [display_name(earlier.run)]  # the finished run is not drawn a second time below


def test_train_page_offers_to_resume_its_own_stopped_run(app_with_data, tiny_config, colour_project):
    job = state.job_manager().start(tiny_config.replace(epochs=200, strategy="full"), store=colour_project.run_store())
    deadline = time.monotonic() + 60
    while not any(e["event"] == "epoch" for e in job.events()) and time.monotonic() < deadline:
        time.sleep(0.05)
    job.stop()
    job.wait(60)
    assert job.status == "stopped"
    at = _goto(app_with_data, "train")
    assert len([e for e in at.expander if e.label == "Event log"]) == 1
    at.button(key="resume_current").click().run()
    _no_exception(at)
    resumed = state.job_manager().get(job.run.path)
    assert resumed is not job and resumed.active
    state.job_manager().cancel(resumed)
    resumed.wait(60)


def test_train_page_says_the_recipe_in_plain_words(app_with_data):
    at = _goto(app_with_data, "train")
    recipe = next(c.value for c in at.caption if c.value.startswith("Recipe:"))
    assert "adamw + onecycle" not in recipe and "+" not in recipe
    assert "AdamW" in recipe and "warms up, then decays" in recipe and "only the new last layer learns" in recipe


def test_evaluate_page_metrics_matrix_and_gallery_filter(app, finished_run):
    app.run()
    at = _goto(app, "evaluate")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Validation images"] == "9"
    assert "%" in metrics["Validation accuracy"]
    assert any("95 % interval" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the confusion matrix (every validation image right: no reliability diagram)
    show = at.selectbox(key="gallery_filter")
    assert show.options[0] == "All mistakes"
    show.set_value("Correct: red").run()
    _no_exception(at)
    assert any("images, highest loss" in c.value for c in at.caption)
    at.toggle(key="cm_normalize").set_value(True).run()
    _no_exception(at)


def test_backbone_shootout_compares_backbones_on_the_dataset(app_with_data):
    at = _goto(app_with_data, "backbone")
    at.button(key="shootout").click().run(timeout=300)
    _no_exception(at)
    table = at.dataframe[-1].value
    assert list(table.columns) == ["backbone", "validation accuracy", "LogME (estimate)", "ms / image", "seconds", "note"]
    bundled = table[table["backbone"].str.startswith("efficientnet_lite")]
    assert len(bundled) == 3
    assert (bundled["validation accuracy"] > 0.9).all()  # colours are easy for real ImageNet features
    assert bundled["LogME (estimate)"].notna().all()
    assert any(s.value.startswith("**Recommended:** efficientnet_lite") for s in at.success)
    assert any("within noise" in i.value or " is ahead " in i.value for i in at.info)  # what the ranking means


def test_a_refresh_keeps_the_open_project_and_a_guessed_name_opens_nothing(app):
    app.run()
    app.button[0].click().run()  # Try a sample dataset
    slug = app.session_state["project"]  # what the app writes into the URL
    fresh = new_app()  # a refreshed browser tab: a new session with the same URL
    fresh.query_params["project"] = slug
    fresh.run()
    _goto(fresh, "data")
    assert fresh.subheader[0].value == "Dataset: Handwritten digits (sample)"
    for guess in ("../../etc", "../projects/" + slug, "nobody"):
        bogus = new_app()
        bogus.query_params["project"] = guess
        bogus.run()
        _goto(bogus, "data")
        assert any("No dataset yet" in i.value for i in bogus.info)


def test_page_files_live_where_streamlit_does_not_list_them_on_its_own():
    """A pages/ folder beside app.py made a cold server show Streamlit's raw page list before the navigation."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert not (root / "pages").exists()
    listed = re.findall(r'st\.Page\("([^"]+)"', (root / "app.py").read_text(encoding="utf-8"))
    assert len(listed) == 9 and all((root / path).is_file() and path.startswith("app_pages/") for path in listed)


def test_settings_offers_a_gpu_count_only_with_several_gpus_and_a_run_trains_on_that_many(app_with_data, monkeypatch):
    import torch

    from transfer_core import WarmstartError
    from ui.jobs import JobManager

    at = _goto(app_with_data, "settings")
    assert not [n for n in at.number_input if n.label == "GPUs for this run"]  # one process on a CPU-only machine

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    at.run()
    gpus = next(n for n in at.number_input if n.label == "GPUs for this run")
    assert gpus.value == 4  # all of them by default
    gpus.set_value(2).run()

    asked = []

    def record(self, config, label=None, store=None, processes=1):
        asked.append(processes)
        raise WarmstartError("recorded")

    monkeypatch.setattr(JobManager, "start", record)
    at = _goto(at, "train")
    at.button(key="start_training").click().run()
    assert asked == [2] and "recorded" in [e.value for e in at.error]
