"""Test-time augmentation on Evaluate and Predict, and the weight-averaging control on Settings."""

from __future__ import annotations

import numpy as np

from transfer_core import TTAComparison
from ui import insight

from .test_pages import _goto, _no_exception


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_evaluate_compares_with_tta_on_request_and_keeps_the_result_on_the_run(app, finished_run):
    app.run()
    at = _goto(app, "evaluate")
    assert not any(m.label == "Accuracy with TTA" for m in at.metric)  # nothing computed until asked
    _button(at, "Compare with test-time augmentation").click().run()
    _no_exception(at)
    report = finished_run.read_report()
    assert _metric(at, "Accuracy without TTA") == f"{report['val_accuracy']:.1%}"
    assert _metric(at, "Accuracy with TTA").endswith("%")
    assert any(c.value.startswith(("It fixed", "Test-time augmentation changed no prediction")) for c in at.caption)
    assert {"**Wrong → right: fixed by TTA**", "**Right → wrong: broken by TTA**"} <= {m.value for m in at.markdown}

    at = _goto(_goto(at, "predict"), "evaluate")  # away and back: still there, without asking again
    assert _metric(at, "Accuracy without TTA") == f"{report['val_accuracy']:.1%}"
    assert not any(b.label == "Compare with test-time augmentation" for b in at.button)


def test_evaluate_shows_images_tta_fixed_and_broke_with_both_predictions(app, finished_run):
    predictions = finished_run.read_predictions()
    paths = [p["path"] for p in predictions[:3]]
    classes = finished_run.read_report()["classes"]
    targets = [classes.index(p["true"]) for p in predictions[:3]]
    plain = np.full((3, 3), 0.1)
    tta = np.full((3, 3), 0.1)
    plain[0, targets[0]], tta[0, (targets[0] + 1) % 3] = 0.8, 0.8  # right → wrong
    plain[1, (targets[1] + 1) % 3], tta[1, targets[1]] = 0.8, 0.7  # wrong → right
    plain[2, targets[2]], tta[2, targets[2]] = 0.8, 0.8  # unchanged
    app.run()
    owner = (str(finished_run.path), insight.checkpoint_stamp(finished_run))
    app.session_state["tta_comparison"] = (owner, TTAComparison(classes, paths, targets, plain, tta))
    at = _goto(app, "evaluate")
    assert _metric(at, "Accuracy without TTA") == "66.7%" and _metric(at, "Accuracy with TTA") == "66.7%"
    assert any(c.value == "It fixed 1 and broke 1 of 3 predictions: no net change." for c in at.caption)
    tiles = [c.value for c in at.caption if c.value.startswith("true **")]
    wrong = lambda i: classes[(targets[i] + 1) % 3]  # noqa: E731
    broken = f"true **{classes[targets[0]]}** · without TTA **{classes[targets[0]]}** (80%) · with TTA **{wrong(0)}** (80%)"
    fixed = f"true **{classes[targets[1]]}** · without TTA **{wrong(1)}** (80%) · with TTA **{classes[targets[1]]}** (70%)"
    assert broken in tiles and fixed in tiles


def test_predict_page_tta_switch_outlives_the_page_and_marks_the_table(app, finished_run, color_dataset):
    app.run()
    at = _goto(app, "predict")
    at.toggle(key="w_predict_tta").set_value(True).run()
    at.text_input(key="predict_folder").set_value(str(color_dataset)).run()
    _button(at, "Predict all").click().run()
    _no_exception(at)
    assert len(at.dataframe[0].value) == 30
    assert any(c.value.startswith("30 images (with test-time augmentation)") for c in at.caption)
    at = _goto(_goto(at, "evaluate"), "predict")
    assert at.toggle(key="w_predict_tta").value is True


def test_settings_weight_averaging_control(app_with_data):
    at = _goto(app_with_data, "settings")
    box = at.checkbox(key="w_ema_decay")
    assert box.label == "Average the weights (EMA)" and box.disabled  # the Quick preset keeps the backbone frozen
    assert "frozen backbone" in box.help
    at.button(key="preset_Balanced").click().run()
    assert not at.checkbox(key="w_ema_decay").disabled
    at.checkbox(key="w_ema_decay").check().run()
    _no_exception(at)
    assert at.session_state["settings"]["ema_decay"] == 0.999
    at = _goto(at, "train")
    assert any(c.value.startswith("Recipe:") and "moving average of the weights" in c.value for c in at.caption)
    at = _goto(at, "settings")
    assert at.checkbox(key="w_ema_decay").value is True  # kept after leaving the page
    at.button(key="preset_Quick").click().run()  # a preset sets it too: frozen with averaging would be refused
    _no_exception(at)
    assert at.session_state["settings"]["ema_decay"] == 0.0 and at.checkbox(key="w_ema_decay").value is False
    assert not at.error
