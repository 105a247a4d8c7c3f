"""The insight, prediction, export and comparison pages, driven as a user would."""

from __future__ import annotations

import json

from transfer_core import Trainer, display_name, export_run, small_sample_warning
from transfer_core.data.corrections import Corrections, corrections_path_for
from ui import state

from .test_pages import _goto, _no_exception


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_evaluate_grad_cam_relabel_and_embedding_map(app, finished_run):
    app.run()
    at = _goto(app, "evaluate")
    at.selectbox(key="gallery_filter").set_value("Correct: red").run()
    plain = len(at.get("image"))
    at.toggle(key="gallery_cam").set_value(True).run()
    _no_exception(at)
    assert len(at.get("image")) == plain and plain > 0  # every tile now shows its Grad-CAM overlay
    at.radio(key="gallery_explain").set_value("true").run()
    _no_exception(at)
    assert len(at.get("image")) == plain
    box = next(s for s in at.selectbox if s.key and s.key.startswith("fix_"))
    original = box.value
    other = next(o for o in box.options if o not in (original, "exclude from training"))
    box.set_value(other).run()
    _no_exception(at)
    config = finished_run.read_config()
    fixes = Corrections.load(corrections_path_for(config.data))
    assert list(fixes.relabel.values()) == [other]
    assert any("1 relabelled and 0 excluded" in i.value for i in at.info)
    assert _button(at, "Retrain with these corrections")
    _button(at, "Show the embedding map").click().run()
    _no_exception(at)
    assert len(at.get("plotly_chart")) == 3  # confusion matrix + before + after
    at.radio(key="map_method").set_value("tsne").run()
    at.toggle(key="map_thumbs").set_value(True).run()
    _no_exception(at)
    after = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert len(after["layout"]["images"]) == 9 and after["layout"]["images"][0]["source"].startswith("data:image/png;base64,")


def test_report_json_carries_intervals_that_the_evaluate_page_and_model_card_share(app, finished_run):
    report = json.loads(finished_run.report_file.read_text())
    acc_low, acc_high = report["intervals"]["val_accuracy"]
    f1_low, f1_high = report["intervals"]["macro_f1"]
    assert acc_low <= report["val_accuracy"] <= acc_high and f1_low <= report["macro_f1"] <= f1_high
    card = (export_run(finished_run, ("card",)) / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"interval {acc_low:.1%}–{acc_high:.1%}" in card and f"interval {f1_low:.3f}–{f1_high:.3f}" in card
    assert small_sample_warning(report) in card  # 9 validation images: the card warns as the page does
    shown = [f"95 % interval: {acc_low:.1%} – {acc_high:.1%}", f"95 % interval: {f1_low:.3f} – {f1_high:.3f}"]
    app.run()
    at = _goto(app, "evaluate")
    assert all(text in [c.value for c in at.caption] for text in shown)
    del report["intervals"]  # a run from before intervals were stored: the page computes the same numbers
    finished_run.report_file.write_text(json.dumps(report))
    at = _goto(at, "evaluate")
    assert all(text in [c.value for c in at.caption] for text in shown)


def test_evaluate_warns_about_four_validation_images_and_their_interval_does_not_collapse(app, finished_run):
    from transfer_core.insight.evaluate import wilson_interval

    report = json.loads(finished_run.report_file.read_text())
    report.update(val_accuracy=1.0, macro_f1=1.0, val_size=4, confusion_matrix=[[2, 0, 0], [0, 1, 0], [0, 0, 1]],
                  intervals={"val_accuracy": [1.0, 1.0], "macro_f1": [1.0, 1.0]})  # a bootstrap interval, as reports stored it
    report.pop("interval_methods", None)
    finished_run.report_file.write_text(json.dumps(report))
    app.run()
    at = _goto(app, "evaluate")
    low, high = wilson_interval(4, 4)
    assert f"95 % interval: {low:.1%} – {high:.1%}" in [c.value for c in at.caption]
    assert not any("100.0% – 100.0%" in c.value for c in at.caption)
    assert any("Only 4 validation images" in w.value for w in at.warning)


def test_evaluate_says_what_the_best_epoch_and_the_separation_score_mean(app, finished_run):
    report = json.loads(finished_run.report_file.read_text())
    report.update(best_epoch=2, epochs_run=6)
    finished_run.report_file.write_text(json.dumps(report))
    app.run()
    at = _goto(app, "evaluate")
    assert any("The best model came from epoch 2 of 6" in i.value for i in at.info)
    _button(at, "Show the embedding map").click().run()
    _no_exception(at)
    assert any("higher is better" in c.value for c in at.caption)


def test_insight_pages_speak_plainly(app, finished_run):
    app.run()
    at = _goto(app, "evaluate")
    at.selectbox(key="gallery_filter").set_value("Correct: red").run()
    assert not any("p(true)" in c.value for c in at.caption)
    assert any("predicted **red**" in c.value and "sure" in c.value for c in at.caption)
    _button(at, "Show the embedding map").click().run()
    assert at.radio(key="map_method").options == ["Overall layout (PCA)", "Neighbourhoods (t-SNE)"]
    at = _goto(at, "export")
    assert not any("opset" in option for option in at.multiselect(key="export_formats").options)
    assert "opset" in at.multiselect(key="export_formats").help  # said in the help, for those who need it


def test_predict_page_batch_table_and_csv(app, finished_run, color_dataset):
    app.run()
    at = _goto(app, "predict")
    at.text_input(key="predict_folder").set_value(str(color_dataset)).run()
    _button(at, "Predict all").click().run()
    _no_exception(at)
    table = at.dataframe[0].value
    assert len(table) == 30 and set(table["predicted"]) <= {"red", "green", "blue"}
    assert (table["error"] == "").all()
    assert at.get("download_button")
    at.text_input(key="predict_folder").set_value(str(color_dataset / "nope")).run()
    _button(at, "Predict all").click().run()
    assert "does not exist on the server" in at.error[0].value


def test_export_page_exports_checks_and_offers_the_zip(app, finished_run):
    app.run()
    at = _goto(app, "export")
    _button(at, "Export and check").click().run()
    _no_exception(at)
    successes = " ".join(s.value for s in at.success)
    assert "onnx: agrees with the app" in successes and "torchscript: agrees with the app" in successes
    assert not at.error
    assert at.get("download_button")
    meta = json.loads((finished_run.path / "export" / "model.json").read_text())
    assert meta["output"]["classes_in_order"] == ["blue", "green", "red"]


def test_compare_page_table_scratch_baseline_rename_and_delete(app, finished_run, tiny_config, workspace):
    second = state.run_store().new_run(tiny_config.replace(epochs=2, lr=0.1))
    Trainer(tiny_config.replace(epochs=2, lr=0.1), second).fit()
    app.run()
    at = _goto(app, "compare")
    table = at.dataframe[0].value
    assert len(table.data if hasattr(table, "data") else table) == 2
    assert any("differ between runs are highlighted" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 3  # accuracy, loss, F1 per class
    at.selectbox(key="scratch_base").set_value(str(finished_run.path)).run()
    _button(at, "Train the from-scratch baseline").click().run()
    _no_exception(at)
    job = state.job_manager().get(at.session_state["own_job"])
    assert job.run.name.endswith("-scratch") and not job.config.pretrained and job.config.strategy == "full"
    job.wait(120)
    at = _goto(at, "compare")
    at.selectbox(key="manage_run").set_value(str(second.path)).run()
    at.text_input(key=f"rename_{second.name}").set_value("lower lr").run()
    _button(at, "Rename").click().run()
    _no_exception(at)
    assert "lower-lr" in [r.name for r in state.run_store().runs()]
    at.selectbox(key="manage_run").set_value(str(second.path.parent / "lower-lr")).run()
    _button(at, "Yes, delete it").click().run()
    _no_exception(at)
    assert "lower-lr" not in [r.name for r in state.run_store().runs()]


def test_compare_table_names_the_dataset_adds_up_resumed_segments_and_prints_no_none(app, tiny_config, workspace):
    config = tiny_config.replace(epochs=4)
    resumed = state.run_store().new_run(config)
    trainer = Trainer(config, resumed, [lambda e: trainer.request_stop() if e.kind == "epoch" and e.epoch == 2 else None])
    trainer.fit()
    Trainer(config, resumed).fit(resume=True)
    # As if decoding the images had taken two minutes in the first segment (the resumed one reused them).
    records = [json.loads(line) for line in resumed.metrics_file.read_text(encoding="utf-8").splitlines()]
    next(r for r in records if r["event"] == "cached" and r["what"] == "images")["seconds"] += 120
    resumed.metrics_file.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert resumed.read_report()["train_seconds"] < 60  # the report knows only the last segment
    automatic = state.run_store().new_run(tiny_config.replace(epochs=1, lr=None, image_size=48))
    Trainer(tiny_config.replace(epochs=1, lr=None, image_size=48), automatic).fit()
    app.run()
    at = _goto(app, "compare")
    table = at.dataframe[0].value
    table = table.data if hasattr(table, "data") else table
    assert list(table["dataset"]) == ["colors", "colors"]
    assert not table.astype(str).apply(lambda column: column.str.contains("None|nan")).any().any()
    rows = table.set_index("run")
    assert rows.loc[display_name(resumed), "training time"].startswith("2 min")  # both segments, not the last one's seconds
    assert set(rows["lr"]) == {"0.3", "automatic"}  # as typed, not clipped to '300000' or '007000'
    assert {"backbone", "strategy"}.isdisjoint(table.columns)  # shared settings go in a caption, not in columns
    assert any("All runs share" in c.value and "tiny_cnn" in c.value for c in at.caption)


def test_data_health_check_and_settings_lr_finder(app_with_data, color_dataset):
    (color_dataset / "blue" / "copy.png").write_bytes((color_dataset / "blue" / "blue_0.png").read_bytes())
    at = _goto(app_with_data, "data")
    _button(at, "Run the health check").click().run()
    _no_exception(at)
    assert any(e.label.startswith(("Near-duplicates", "Same image in training and validation")) for e in at.expander)
    at = _goto(at, "settings")
    _button(at, "Find a learning rate").click().run()
    _no_exception(at)
    assert any("Suggested head learning rate" in m.value for m in at.markdown)
    apply = next(b for b in at.button if b.key == "lr_apply")
    apply.click().run()
    _no_exception(at)
    assert at.session_state["settings"]["lr"] is not None and not at.session_state["w_lr_auto"]
