"""The Data page's unlabelled pool: add images (files and a zip), get a batch to label, label with one
click or key, skip, undo, refresh keeps everything, and retrain with the new labels."""

from __future__ import annotations

import io
import json
import zipfile

from transfer_core import POOL_SKIP, PoolLabels, ProjectStore, pool_labels_path_for
from ui import labelling, state

from ..conftest import COLORS, make_image
from .conftest import open_project_app
from .test_calibration_page import _array
from .test_pages import _goto, _no_exception


def _png(color, seed) -> bytes:
    buffer = io.BytesIO()
    make_image(color, seed=seed).save(buffer, "PNG")
    return buffer.getvalue()


def _button(at, key):
    return next(b for b in at.button if b.key == key)


def _labels(project) -> PoolLabels:
    return PoolLabels.load(pool_labels_path_for(ProjectStore(project.path.parent.parent).get(project.slug).dataset.pool))


def test_add_suggest_label_skip_undo_refresh_and_retrain(app_with_data, colour_project):
    colours = list(COLORS.items())
    at = _goto(app_with_data, "data")
    assert not any(b.key == "pool_suggest" for b in at.button)  # no pool yet: only the uploader
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(6):
            zf.writestr(f"more/z{i}.png", _png(colours[i % 3][1], 700 + i))
        zf.writestr("more/readme.txt", "not an image")
    files = [(f"loose{i}.png", _png(colours[i % 3][1], 600 + i), "image/png") for i in range(6)]
    uploader = next(u for u in at.file_uploader if u.key.startswith("pool_upload"))
    uploader.set_value([*files, ("more.zip", archive.getvalue(), "application/zip")]).run()
    _button(at, "add_pool").click().run()
    _no_exception(at)
    assert any(s.value == "Added 12 image(s) to the pool." for s in at.success)
    assert any("readme.txt" in e.value for e in at.error)  # the zip's non-image is refused by name
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images in the pool"] == "12" and metrics["Left to label"] == "12"
    uploader = next(u for u in at.file_uploader if u.key.startswith("pool_upload"))
    uploader.set_value(files[:2]).run()  # the same files again are not added twice
    _button(at, "add_pool").click().run()
    assert any(s.value == "Added 0 image(s) to the pool." for s in at.success)
    assert {m.label: m.value for m in at.metric}["Images in the pool"] == "12"

    at.number_input(key="pool_n").set_value(5).run()
    _button(at, "pool_suggest").click().run()
    _no_exception(at)
    assert any("Cold start" in c.value for c in at.caption)  # no run yet: the strategy says so
    pills = [p for p in at.pills if p.key.startswith("pool_pick_")]
    assert len(pills) == 5 and pills[0].options == [*sorted(COLORS), labelling.SKIP_TEXT]

    _button(at, "pool_give_0").click().run()  # the next image gets the first class (key 1)
    _button(at, "pool_skip").click().run()  # the one after that is no class (key S)
    _no_exception(at)
    labels = _labels(colour_project)
    first_class = sorted(COLORS)[0]
    assert sorted(labels.labels.values()) == sorted([first_class, POOL_SKIP])
    assert _button(at, "pool_give_0").proto.shortcut == "1" and _button(at, "pool_skip").proto.shortcut.upper() == "S"

    batch = json.loads((colour_project.path / "pool-suggestion.json").read_text())["paths"]
    third = at.pills(key=labelling._key(batch[2]))
    third.set_value(sorted(COLORS)[2]).run()  # one click in the grid labels any image of the batch
    _no_exception(at)
    assert len(_labels(colour_project).labels) == 3

    _button(at, "pool_undo").click().run()
    _no_exception(at)
    after_undo = _labels(colour_project)
    assert len(after_undo.labels) == 2 and sorted(COLORS)[2] not in after_undo.labels.values()
    assert [at.pills(key=labelling._key(path)).value for path in batch[:3]] == [first_class, labelling.SKIP_TEXT, None]

    refreshed = _goto(open_project_app(colour_project), "data")  # a new session: labels and batch come back from disk
    assert [refreshed.pills(key=labelling._key(path)).value for path in batch[:2]] == [first_class, labelling.SKIP_TEXT]
    assert {m.label: m.value for m in refreshed.metric}["Labelled"] == "1"

    _button(refreshed, "pool_retrain").click().run()
    _no_exception(refreshed)
    job = state.job_manager().latest(within=colour_project.run_store().root)
    assert job is not None and job.config.unlabeled == _labels_folder(colour_project)
    job.wait(120)
    assert job.status == "finished", job.error
    started = job.run.read_events({"started"})[0]
    assert started["train_size"] == _train_size(colour_project) + 1


def _labels_folder(project) -> str:
    return ProjectStore(project.path.parent.parent).get(project.slug).dataset.pool


def _train_size(project) -> int:
    from transfer_core.data.splits import load_train_val

    train, _ = load_train_val(project.dataset.source, None, project.recipe["val_split"], project.recipe["seed"])
    return len(train)


def test_with_a_finished_run_the_batch_is_the_runs_least_sure_and_pseudo_labels_can_join(app_with_data, colour_project):
    colours = list(COLORS.values())
    at = _goto(app_with_data, "data")
    uploader = next(u for u in at.file_uploader if u.key.startswith("pool_upload"))
    uploader.set_value([(f"p{i}.png", _png(colours[i % 3], 800 + i), "image/png") for i in range(9)]).run()
    _button(at, "add_pool").click().run()
    assert _button(at, "pool_retrain").disabled  # nothing labelled yet

    job = state.job_manager().start(_config(colour_project), store=colour_project.run_store())
    job.wait(120)
    assert job.status == "finished", job.error
    at.run()
    assert not at.checkbox(key="pool_cold").value  # a run exists: uncertainty is the default
    at.number_input(key="pool_n").set_value(3).run()
    _button(at, "pool_suggest").click().run()
    _no_exception(at)
    assert any("Using run" in c.value and "least sure" in c.value for c in at.caption)
    _button(at, "pool_give_0").click().run()  # one more real label for this round
    at.checkbox(key="pool_pseudo").check().run()
    at.slider(key="pool_threshold").set_value(0.5).run()
    _button(at, "pool_retrain").click().run()
    _no_exception(at)
    retrained = state.job_manager().latest(within=colour_project.run_store().root)
    assert retrained is not job and retrained.config.pseudo_labels_from == str(job.run.path)
    retrained.wait(120)
    assert retrained.status == "finished", retrained.error
    assert (retrained.run.path / "pseudo-labels.json").exists()

    _goto(at, "compare")  # two rounds: the learning curve has a point per run
    curve = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "labelled images" in c.proto.spec)
    assert curve["layout"]["title"]["text"] == "Accuracy against labelled images"
    assert sum(len(_array(trace["x"])) for trace in curve["data"]) == 2
    assert {trace["name"] for trace in curve["data"]} == {"real labels only", "with pseudo-labels"}


def _config(project):
    from transfer_core import config_from_recipe

    store = ProjectStore(project.path.parent.parent)
    fresh = store.get(project.slug)
    return config_from_recipe(fresh.recipe, fresh.dataset.source).replace(unlabeled=fresh.dataset.pool)


def test_class_keys_are_the_class_names_for_digits_and_numbers_otherwise():
    assert labelling.class_keys([str(d) for d in range(10)]) == [str(d) for d in range(10)]
    assert labelling.class_keys(["a", "b"]) == ["a", "b"]
    assert labelling.class_keys(["cat", "dog"]) == ["1", "2"]
    assert labelling.class_keys(["r", "x"]) == ["1", "2"]  # R is Streamlit's own key
    assert labelling.class_keys([f"c{i}" for i in range(11)])[-2:] == [None, None]


def test_a_key_pressed_before_the_page_caught_up_labels_the_next_image(app_with_data, colour_project):
    """A key pressed while the page is still redrawing after the previous label runs the button's callback
    as the *previous* run registered it. Labelling then must go to the next unlabelled image of the batch,
    never overwrite the image just labelled (seen in a browser: 7 then S quickly gave image 2 "skip")."""
    colours = list(COLORS.values())
    at = _goto(app_with_data, "data")
    uploader = next(u for u in at.file_uploader if u.key.startswith("pool_upload"))
    uploader.set_value([(f"p{i}.png", _png(colours[i % 3], 800 + i), "image/png") for i in range(4)]).run()
    _button(at, "add_pool").click().run()
    _button(at, "pool_suggest").click().run()
    batch = json.loads((colour_project.path / "pool-suggestion.json").read_text())["paths"]
    first_class = sorted(COLORS)[0]
    labels_file = pool_labels_path_for(_labels_folder(colour_project))
    # The first image's label lands (the earlier key press) while this page still shows it as the next one.
    labels = PoolLabels.load(labels_file)
    labels.set(batch[0], first_class)
    labels.save(labels_file)

    _button(at, "pool_skip").click().run()
    _no_exception(at)
    after = _labels(colour_project).labels
    assert after == {batch[0]: first_class, batch[1]: POOL_SKIP}
    assert any(p.text == "2 of 4 images of this batch labelled" for p in at.get("progress"))
