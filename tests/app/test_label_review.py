"""The Data page's labels to check: a planted mislabel is listed first, and its box records corrections."""

from __future__ import annotations

from transfer_core import Corrections, TrainConfig
from ui import state

from ..conftest import TINY, make_image
from .test_pages import _goto, _no_exception


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _images(at) -> int:
    return sum(int(m.value.replace(",", "")) for m in at.metric if m.label in ("Training images", "Validation images"))


def test_a_planted_mislabel_is_listed_first_and_relabel_exclude_and_retrain_use_the_corrections(
    app_with_data, color_dataset, colour_project,
):
    planted = color_dataset / "blue" / "actually_red.png"
    make_image((200, 40, 40), seed=999).save(planted)
    at = _goto(app_with_data, "data")
    before = _images(at)
    _button(at, "Run the health check").click().run()
    _no_exception(at)
    review = next(e for e in at.expander if e.label.startswith("Labels to check, most doubtful first"))
    assert review.get("image") and any(m.value == "Labelled **blue** · suggested **red**" for m in review.markdown)
    assert review.caption[1].value.startswith("A model that never saw this image gives blue (its label)")  # [0] explains the list
    boxes = [s for s in review.selectbox if s.key and s.key.startswith("fix_")]
    assert boxes[0].key == state.relabel_box(str(planted)).key and boxes[0].value == "blue"
    assert boxes[0].options == ["blue", "green", "red", "exclude from training"]

    boxes[0].set_value("red").run()
    _no_exception(at)
    fixes = Corrections.load(colour_project.corrections_file)
    assert fixes.relabel == {str(planted): "red"} and not fixes.exclude
    assert any("1 relabelled and 0 excluded" in i.value for i in at.info)

    assert _images(at) == before
    box = next(s for s in at.selectbox if s.key == boxes[0].key)
    assert box.value == "red"  # the box shows the correction
    box.set_value("exclude from training").run()
    _no_exception(at)
    fixes = Corrections.load(colour_project.corrections_file)
    assert fixes.exclude == {str(planted)} and not fixes.relabel
    assert _images(at) == before - 1  # the dataset is read again with the corrections applied
    assert not any(b.label == "Retrain with these corrections" for b in at.button)  # no run to retrain yet

    colour_project.run_store().new_run(TrainConfig(data=str(color_dataset), backbone=TINY))  # an earlier run of the project
    at.run()
    _button(at, "Retrain with these corrections").click().run()
    _no_exception(at)
    job = state.job_manager().latest(within=colour_project.run_store().root)
    assert job is not None and job.config.corrections == str(colour_project.corrections_file)
    job.wait(120)



def test_setting_a_corrected_image_back_to_its_own_label_removes_the_correction(app_with_data, color_dataset, colour_project):
    planted = color_dataset / "blue" / "actually_red.png"
    make_image((200, 40, 40), seed=999).save(planted)
    at = _goto(app_with_data, "data")
    _button(at, "Run the health check").click().run()
    next(s for s in at.selectbox if s.key == state.relabel_box(str(planted)).key).set_value("green").run()  # a wrong fix
    _button(at, "Run the health check").click().run()  # now on the corrected labels: it reads "green" and is still doubtful
    _no_exception(at)
    assert any(m.value == "Labelled **green** · suggested **red**" for m in at.markdown)
    box = next(s for s in at.selectbox if s.key == state.relabel_box(str(planted)).key)
    assert box.value == "green"
    box.set_value("blue").run()  # back to the label the dataset itself gives it
    _no_exception(at)
    assert len(Corrections.load(colour_project.corrections_file)) == 0
