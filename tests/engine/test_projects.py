"""Projects on disk (ProjectStore / Project), the recipe they store, and the names runs are listed by."""

import json

import pytest

from transfer_core import (
    DatasetRef,
    ProjectStore,
    RunDir,
    RunStore,
    TrainConfig,
    Trainer,
    WarmstartError,
    config_from_recipe,
    corrections_file_for_run,
    display_name,
    recipe_from_config,
)
from transfer_core.runs.store import atomic_write_json
from transfer_core.training.events import RunFinished, RunStarted, RunStopped

from ..conftest import TINY


def _started(run: RunDir) -> None:
    run.append_event(RunStarted(epochs=2, steps_per_epoch=1, train_size=4, val_size=2, classes=["a", "b"], device="cpu"))


def _finished(run: RunDir, accuracy: float) -> None:
    _started(run)
    run.append_event(RunFinished(best_epoch=1, val_accuracy=accuracy, macro_f1=accuracy, seconds=1.0))
    atomic_write_json(run.report_file, {"val_accuracy": accuracy})


def _run_named(root, name: str, config: TrainConfig) -> RunDir:
    run = RunDir(root / name)
    run.write_config(config)
    return run


# -- the store -------------------------------------------------------------------------------


def test_equal_names_get_their_own_folders_and_names_need_a_letter_or_digit(tmp_path):
    store = ProjectStore(tmp_path)
    first, second = store.create("My  Flowers"), store.create("my flowers")
    assert (first.slug, second.slug) == ("my-flowers", "my-flowers-2")
    assert first.name == "My Flowers"  # whitespace collapsed
    assert {p.slug for p in store.projects()} == {"my-flowers", "my-flowers-2"}
    assert store.create("日本").slug == "project"  # no ASCII letter: a generic folder name, the name kept
    for bad in ("", "   ", "---", "!?"):
        with pytest.raises(WarmstartError, match="letter or digit"):
            store.create(bad)


@pytest.mark.parametrize("slug", ["../x", "a/b", "", ".hidden", "..", "Demo", "demo/../demo", "/etc"])
def test_get_refuses_anything_but_a_project_folder_of_this_store(tmp_path, slug):
    store = ProjectStore(tmp_path / "mine")
    store.create("demo")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "project.json").write_text(json.dumps({"name": "outside"}))
    with pytest.raises(WarmstartError, match="No project"):
        store.get(slug)


def test_a_folder_without_project_json_is_no_project(tmp_path):
    store = ProjectStore(tmp_path)
    (store.root / "stray").mkdir(parents=True)
    with pytest.raises(WarmstartError, match="No project"):
        store.get("stray")
    assert store.projects() == []


def test_one_store_cannot_reach_another_stores_projects(tmp_path):
    alice, bob = ProjectStore(tmp_path / "alice"), ProjectStore(tmp_path / "bob")
    secret = alice.create("secret")
    with pytest.raises(WarmstartError, match="No project"):
        bob.get(secret.slug)
    with pytest.raises(WarmstartError, match="No project"):
        bob.get(f"../alice/projects/{secret.slug}")
    assert bob.find("secret") is None
    assert alice.owns(secret.path / "runs" / "r") and not bob.owns(secret.path)


def test_rename_keeps_the_folder_and_find_takes_name_or_folder(tmp_path):
    store = ProjectStore(tmp_path)
    project = store.create("demo")
    renamed = store.rename("demo", "  Birds   of Prey ")
    assert renamed.slug == "demo" and renamed.path == project.path
    assert store.get("demo").name == "Birds of Prey"
    assert store.find("birds of prey").slug == "demo" and store.find("demo").name == "Birds of Prey"
    assert store.find("nothing") is None
    with pytest.raises(WarmstartError, match="letter or digit"):
        store.rename("demo", "...")


def test_delete_removes_uploads_and_runs_but_not_while_a_run_trains(tmp_path):
    store = ProjectStore(tmp_path)
    project = store.create("demo")
    (project.uploads / "photos").mkdir(parents=True)
    (project.uploads / "photos" / "a.png").write_bytes(b"x")
    run = project.run_store().new_run(TrainConfig(data="x"))
    _started(run)
    run.mark_owner()  # this test process "trains" it
    assert run.status() == "running"
    with pytest.raises(WarmstartError, match="training"):
        store.delete("demo")
    assert project.path.is_dir()
    (run.path / "owner.json").unlink()  # its process is gone: interrupted, deletable
    assert run.status() == "interrupted"
    store.delete("demo")
    assert not project.path.exists() and store.projects() == []
    with pytest.raises(WarmstartError, match="No project"):
        store.delete("demo")


def test_project_json_round_trips_and_unreadable_projects_are_skipped(tmp_path):
    store = ProjectStore(tmp_path)
    dataset = DatasetRef("colors", "/data/colors", images=30, classes=["blue", "green", "red"])
    store.create("demo", dataset=dataset, recipe={"epochs": 3})
    loaded = store.get("demo")
    assert loaded.dataset == dataset and loaded.recipe == {"epochs": 3}
    (store.root / "broken").mkdir()
    (store.root / "broken" / "project.json").write_text("{not json")
    assert [p.slug for p in store.projects()] == ["demo"]
    with pytest.raises(WarmstartError, match="cannot be read"):
        store.get("broken")


def test_summary_counts_images_classes_runs_and_best_accuracy(tiny_config, color_dataset, tmp_path):
    store = ProjectStore(tmp_path / "home")
    project = store.create("colors", dataset=DatasetRef("colors", str(color_dataset), images=30, classes=["blue", "green", "red"]))
    empty = project.summary()
    assert (empty.images, empty.classes, empty.best_accuracy, empty.runs) == (30, 3, None, 0)

    config = tiny_config.replace(epochs=1)
    trained = Trainer(config, project.run_store().new_run(config)).fit()
    accuracy = trained.report["val_accuracy"]
    lower = project.run_store().new_run(config, label="worse")
    _finished(lower, accuracy / 2)
    project.run_store().new_run(config, label="not-started")  # no report: counted, no accuracy

    summary = project.summary()
    assert summary.runs == 3 and summary.best_accuracy == pytest.approx(accuracy)
    assert summary.last_activity >= project.updated
    assert store.create("no data").summary().images is None


# -- recipes and corrections -----------------------------------------------------------------


def test_recipe_round_trips_and_tolerates_unknown_and_missing_keys():
    config = TrainConfig(data="/d", val_data="/v", corrections="/c.json", backbone=TINY, strategy="partial",
                         epochs=7, lr=0.01, image_size=64, augment="light", seed=3)
    recipe = recipe_from_config(config)
    assert json.loads(json.dumps(recipe)) == recipe  # JSON-ready: enums as their values
    assert recipe["strategy"] == "partial" and recipe["aug_hflip"] == config.augment.hflip
    assert not {"data", "val_data", "corrections", "augment"} & set(recipe)
    assert config_from_recipe(recipe, "/d", "/v", "/c.json") == config

    older = {**recipe, "preset": "Quick", "done": ["Data"], "removed_setting": 1}
    assert config_from_recipe(older, "/d", "/v", "/c.json") == config
    partial = config_from_recipe({"epochs": 2, "aug_hflip": 0.5}, "/d")
    assert partial == TrainConfig(data="/d").replace(epochs=2, augment={**TrainConfig().augment.__dict__, "hflip": 0.5})


@pytest.mark.parametrize("recipe", [{"strategy": "sideways"}, {"epochs": 0}, {"epochs": "ten"}, {"aug_hflip": "yes"}])
def test_a_bad_recipe_value_is_a_warmstart_error(recipe):
    with pytest.raises(WarmstartError):
        config_from_recipe(recipe, "/d")


def test_corrections_go_to_the_project_or_beside_the_dataset(tmp_path):
    project = ProjectStore(tmp_path).create("demo")
    run = project.run_store().new_run(TrainConfig(data="/data/colors"))
    assert corrections_file_for_run(run.path, "/data/colors") == project.corrections_file
    loose = RunStore(tmp_path / "runs").new_run(TrainConfig(data="/data/colors"))
    assert corrections_file_for_run(loose.path, "/data/colors").as_posix() == "/data/colors.corrections.json"


# -- run names -------------------------------------------------------------------------------


def test_display_name_of_finished_renamed_labelled_and_unfinished_runs(tmp_path):
    config = TrainConfig(data="x", backbone=TINY)
    finished = _run_named(tmp_path, "20231123-140512-tiny_cnn-frozen", config)
    _finished(finished, 0.95)
    assert display_name(finished) == "tiny_cnn · frozen · 95.0 % · Nov 23 14:05"
    again = _run_named(tmp_path, "20231123-140512-tiny_cnn-frozen-1", config)  # same second: a suffix, same name
    _finished(again, 0.95)
    assert display_name(again) == display_name(finished)

    renamed = RunStore(tmp_path).rename(finished.name, "best so far")
    assert display_name(renamed) == "best-so-far · tiny_cnn · frozen · 95.0 %"

    corrected = _run_named(tmp_path, "20231123-150000-corrected-1", config)
    _finished(corrected, 0.9)
    assert display_name(corrected) == "tiny_cnn · frozen · 90.0 % · Nov 23 15:00 · corrected"

    stopped = _run_named(tmp_path, "20231124-090000-tiny_cnn-partial", config.replace(strategy="partial"))
    _started(stopped)
    stopped.append_event(RunStopped(epoch=1, best_epoch=1, message="stopped by the user"))
    atomic_write_json(stopped.report_file, {"val_accuracy": 0.5})
    assert display_name(stopped) == "tiny_cnn · partial · 50.0 % · stopped · Nov 24 09:00"

    interrupted = _run_named(tmp_path, "20231124-100000-tiny_cnn-frozen", config)
    _started(interrupted)  # no live owner: the process died
    assert display_name(interrupted) == "tiny_cnn · frozen · interrupted · Nov 24 10:00"
    interrupted.mark_owner()
    assert display_name(interrupted) == "tiny_cnn · frozen · training… · Nov 24 10:00"


def test_display_name_of_a_stamp_like_name_that_is_no_date(tmp_path):
    run = _run_named(tmp_path, "12345678-999999-mine", TrainConfig(data="x", backbone=TINY))
    assert display_name(run) == "12345678-999999-mine · tiny_cnn · frozen · not started"


def test_a_damaged_report_or_a_newer_project_file_does_not_hide_a_project(tmp_path, tiny_config):
    import json as _json

    from transfer_core import ProjectStore, display_name

    store = ProjectStore(tmp_path)
    project = store.create("birds")
    run = project.run_store().new_run(tiny_config)
    run.report_file.write_text("{not json", encoding="utf-8")
    assert project.summary().best_accuracy is None and project.summary().runs == 1
    assert "tiny_cnn" in display_name(run)
    data = _json.loads(project.file.read_text(encoding="utf-8"))
    data["dataset"] = {"name": "birds", "source": "/x", "licence": "cc-by"}  # a field this version does not know
    project.file.write_text(_json.dumps(data), encoding="utf-8")
    assert [p.name for p in store.projects()] == ["birds"]
