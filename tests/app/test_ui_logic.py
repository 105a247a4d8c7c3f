"""The Streamlit-free parts of the UI: job manager, progress summaries, figures, gallery filters."""

import time

import pytest

from transfer_core import RunStore
from transfer_core import Corrections
from ui import gallery
from ui.charts import class_counts_figure, confusion_matrix_figure, epoch_curves_figure, lr_figure, step_loss_figure
from ui.jobs import JobManager
from ui.progress import summarize_events

HANG_S = 300  # waits that only catch a hang: with one core busy elsewhere the queue test took 104 s instead of 11


def test_job_manager_never_duplicates_and_queues_beyond_the_limit(tmp_path, tiny_config):
    manager = JobManager(RunStore(tmp_path / "runs"), max_concurrent=1)
    slow = tiny_config.replace(epochs=200, strategy="full")
    first = manager.start(slow)
    assert manager.start(slow) is first  # a refresh or second tab asking again gets the same job
    second = manager.start(tiny_config)  # another user: waits its turn
    third = manager.start(tiny_config.replace(seed=3))
    assert first.status == "running" and second.status == "queued" and third.status == "queued"
    assert (manager.runs_ahead(first), manager.runs_ahead(second), manager.runs_ahead(third)) == (0, 1, 2)
    manager.cancel(third)
    assert third.status == "cancelled" and not third.active
    deadline = time.monotonic() + HANG_S
    while not any(e["event"] == "epoch" for e in first.events()):
        assert time.monotonic() < deadline, "the first run never finished an epoch"
        time.sleep(0.05)
    first.stop()
    first.wait(HANG_S)
    assert first.status == "stopped" and first.run.status() == "stopped"
    second.wait(HANG_S)  # started by itself once the slot was free
    assert second.status == "finished" and manager.latest() is third
    assert third.run.status() == "created"  # never trained

    resumed = manager.resume(first.run)
    resumed.wait(HANG_S)
    assert resumed.status == "finished" and first.run.status() == "finished"
    assert next(e for e in resumed.events() if e["event"] == "started")["start_epoch"] > 0


def test_failed_job_keeps_the_message_and_the_server_alive(tmp_path, tiny_config):
    manager = JobManager(RunStore(tmp_path / "runs"))
    job = manager.start(tiny_config.replace(data=str(tmp_path / "nothing-here")))
    job.wait(30)
    assert job.status == "failed" and "does not exist" in job.error


def test_progress_from_events(tmp_path, tiny_config):
    from transfer_core import Trainer

    records = []
    Trainer(tiny_config.replace(epochs=3), tmp_path / "run", [lambda e: records.append(e.to_dict())]).fit()
    done = summarize_events(records)
    assert done.status == "finished" and done.fraction == 1.0
    assert list(done.epochs_table["epoch"]) == [1, 2, 3]
    assert len(done.steps_table) == 9
    assert any("Finished in" in line for line in done.log)
    assert done.cache_summary.startswith("Features for 30 images computed in")
    middle = summarize_events(records[: next(i for i, r in enumerate(records) if r["event"] == "epoch") + 1], now=records[-1]["time"])
    assert middle.status == "running" and 0 < middle.fraction < 1 and middle.eta_seconds is not None
    assert "Epoch 1/3" in middle.text


def _step(n, time, steps_per_epoch=10):
    return {"event": "step", "time": time, "epoch": (n - 1) // steps_per_epoch + 1, "step": (n - 1) % steps_per_epoch + 1,
            "global_step": n, "loss": 1.0, "lr": 0.01}


def test_time_left_says_estimating_until_there_is_data_and_ignores_the_caching():
    started = {"event": "started", "time": 0.0, "epochs": 29, "steps_per_epoch": 10, "start_epoch": 0,
               "train_size": 300, "val_size": 100, "device": "cpu"}
    cached = {"event": "cached", "time": 100.0, "what": "features", "items": 400, "seconds": 100.0, "message": "…"}
    first = summarize_events([started, cached, _step(1, 101.0)], now=101.0)  # features took 100 s, then one step
    assert first.eta_seconds is None and "estimating…" in first.text  # not "about 29,000 s left"
    steps = [_step(n, 101.0 + n) for n in range(1, 6)]  # then a step a second
    later = summarize_events([started, cached, *steps], now=106.0)
    assert later.eta_seconds == pytest.approx(285, abs=5)  # 285 steps to go at 1 s each
    assert "about 4 min 45 s left" in later.text
    epoch = {"event": "epoch", "time": 112.0, "epoch": 1, "epochs": 29, "train_loss": 1.0, "train_accuracy": 0.5,
             "val_loss": 1.0, "val_accuracy": 0.5, "lr": 0.01, "seconds": 11.0}
    after_epoch = summarize_events([started, cached, *[_step(n, 101.0 + n) for n in range(1, 11)], epoch], now=112.0)
    assert after_epoch.eta_seconds == pytest.approx(28 * 11.0, abs=1)  # whole epochs, validation included


def test_figures_are_built_from_tables():
    import pandas as pd

    epochs = pd.DataFrame({"epoch": [1, 2], "train_loss": [1, 0.5], "val_loss": [1.1, 0.7], "train_accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]})
    loss = epoch_curves_figure(epochs, "loss")
    assert {trace.name for trace in loss.data} == {"training", "validation"}
    steps = pd.DataFrame({"global_step": [1, 2, 3], "loss": [2, 1, 0.5], "lr": [0.1, 0.05, 0.01]})
    assert len(step_loss_figure(steps).data) == 1 and len(lr_figure(steps).data) == 1
    counts = class_counts_figure({"a": 3, "b": 5}, {"a": 1, "b": 2})
    assert {trace.name for trace in counts.data} == {"training", "validation"}
    matrix = confusion_matrix_figure([[3, 1], [0, 4]], ["cat", "dog"], normalize=True)
    labels = list(matrix.data[0].text)
    assert labels == ["75%", "25%", "0%", "100%"]
    assert [list(c) for c in matrix.data[0].customdata][1] == ["cat", "dog", 1]


def test_a_two_class_confusion_matrix_fills_a_square_plot():
    fig = confusion_matrix_figure([[3, 1], [0, 4]], ["ant", "bee"])
    cells = next(trace for trace in fig.data if trace.type == "heatmap")  # colour fills each whole cell
    assert [list(row) for row in cells.z] == [[3, 1], [0, 4]]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1  # square cells, not a wide strip
    assert tuple(fig.layout.xaxis.range) == (-0.5, 1.5) and tuple(fig.layout.yaxis.range) == (-0.5, 1.5)  # edge to edge
    clicks = next(trace for trace in fig.data if trace.type == "scatter")  # one clickable point per cell
    assert len(clicks.x) == 4 and clicks.marker.size >= 40


def _hue(colour: str) -> float:
    import colorsys

    r, g, b = (int(colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def test_classes_get_colours_of_distinct_hues_that_no_theme_replaces():
    import pandas as pd
    import plotly.io as pio
    import streamlit  # noqa: F401  (makes Streamlit's plotly template, whose first colours are two blues, the default)

    from ui.charts import class_colours, embedding_figure

    assert pio.templates.default == "streamlit"
    points = pd.DataFrame({
        "path": ["/a/1.png", "/a/2.png", "/b/3.png"], "label": ["ant", "ant", "bee"], "predicted": ["ant", "bee", "bee"],
        "confidence": [0.9, 0.6, 0.8], "before_x": [0, 1, 2], "before_y": [0, 1, 0], "after_x": [0, 0, 3], "after_y": [1, 1, 0],
    })
    colours = {trace.name.split(",")[0]: trace.marker.color for trace in embedding_figure(points, "after", 0.4).data}
    assert colours == class_colours(["ant", "bee"])  # the same colour for a class before and after, in every trace
    gap = abs(_hue(colours["ant"]) - _hue(colours["bee"]))
    assert min(gap, 360 - gap) >= 60  # two hues, not two shades of one blue
    ten = list(class_colours([str(i) for i in range(10)]).values())
    assert len(set(ten)) == 10


def test_runs_and_sets_are_told_apart_by_hue_too():
    import pandas as pd
    import streamlit  # noqa: F401  (Streamlit's plotly template: its first two colours are blues)

    from ui.charts import compare_curves_figure, compare_f1_figure

    def hue_gap(fig):
        first, second = (_hue(trace.marker.color or trace.line.color) for trace in fig.data[:2])
        return min(abs(first - second), 360 - abs(first - second))

    epochs = pd.DataFrame({"epoch": [1, 2], "train_loss": [1, 0.5], "val_loss": [1.1, 0.7], "train_accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]})
    histories = {"r1": epochs, "r2": epochs}
    f1 = pd.DataFrame({"run": ["r1", "r2"], "class": ["ant", "ant"], "f1": [0.5, 0.9]})
    for fig in (epoch_curves_figure(epochs, "loss"), compare_curves_figure(histories), compare_f1_figure(f1),
                class_counts_figure({"a": 3}, {"a": 1})):
        assert hue_gap(fig) >= 60, fig.layout.title.text


def test_insight_figures():
    import pandas as pd

    from ui.charts import compare_curves_figure, compare_f1_figure, embedding_figure, lr_finder_figure, top_k_figure

    points = pd.DataFrame({
        "path": ["/a/1.png", "/a/2.png", "/b/3.png"], "label": ["a", "a", "b"], "predicted": ["a", "b", "b"],
        "confidence": [0.9, 0.6, 0.8], "before_x": [0, 1, 2], "before_y": [0, 1, 0], "after_x": [0, 0, 3], "after_y": [1, 1, 0],
    })
    fig = embedding_figure(points, "after", 0.42)
    assert "class separation 0.42" in fig.layout.title.text
    assert sorted(int(c[0]) for trace in fig.data for c in trace.customdata) == [0, 1, 2]  # rows for click-to-see
    assert any(trace.marker.symbol == "x" for trace in fig.data)  # the wrong prediction stands out
    lr = lr_finder_figure([1e-5, 1e-4, 1e-3, 1e-2, 1e-1], [2.3, 2.2, 1.4, 1.0, 5.0], 1e-3)
    assert lr.layout.xaxis.type == "log" and lr.layout.yaxis.range[1] < 5.0  # the blow-up does not squash the valley
    bars = top_k_figure([("cat", 0.7), ("dog", 0.2), ("fox", 0.1)])
    assert list(bars.data[0].y) == ["fox", "dog", "cat"]  # most likely on top
    histories = {"r1": pd.DataFrame({"epoch": [1, 2], "val_accuracy": [0.5, 0.7]}), "r2": pd.DataFrame({"epoch": [1, 2], "val_accuracy": [0.1, 0.3]})}
    assert len(compare_curves_figure(histories).data) == 2
    f1 = compare_f1_figure(pd.DataFrame({"run": ["r1", "r2"], "class": ["0", "0"], "f1": [0.5, 0.9]}))
    assert f1.layout.xaxis.type == "category" and len(f1.data) == 2


def _prediction(path, true, predicted, loss):
    return {"path": path, "true": true, "predicted": predicted, "correct": true == predicted, "loss": loss}


PREDICTIONS = [
    _prediction("a.png", "cat", "cat", 0.1),
    _prediction("b.png", "cat", "dog", 0.9),
    _prediction("c.png", "dog", "cat", 2.5),
    _prediction("d.png", "cat", "dog", 1.7),
    _prediction("e.png", "dog", "dog", 0.3),
    _prediction("f.png", "cat", "cat", 0.4),
]


def test_gallery_filters_offer_mistakes_confused_pairs_and_each_class():
    options = gallery.filter_options(PREDICTIONS, ["cat", "dog", "fox"])
    assert options == ["All mistakes", "cat → dog", "dog → cat", "Correct: cat", "Correct: dog", "Correct: fox"]
    assert gallery.cell_filter("cat", "dog") == "cat → dog"  # an off-diagonal cell of the confusion matrix
    assert gallery.cell_filter("fox", "fox") == "Correct: fox"  # the diagonal
    assert gallery.cell_filter("fox", "cat") not in options  # a cell with no images


def test_gallery_shows_what_the_filter_names_highest_loss_first():
    def paths(choice):
        return [p["path"] for p in gallery.gallery_images(PREDICTIONS, choice)]

    assert paths("All mistakes") == ["c.png", "d.png", "b.png"]
    assert paths("cat → dog") == ["d.png", "b.png"]
    assert paths("Correct: cat") == ["f.png", "a.png"]
    assert paths("Correct: fox") == []


def test_gallery_label_box_shows_and_records_corrections():
    fixes = Corrections()
    assert gallery.label_options("dog", ["cat", "dog", "fox"]) == ["dog", "cat", "fox", gallery.EXCLUDE]
    assert gallery.current_label(fixes, "b.png", "cat") == "cat"
    gallery.apply_label(fixes, "b.png", "dog", "cat")
    assert fixes.relabel == {"b.png": "dog"} and gallery.current_label(fixes, "b.png", "cat") == "dog"
    gallery.apply_label(fixes, "b.png", gallery.EXCLUDE, "cat")
    assert fixes.exclude == {"b.png"} and not fixes.relabel
    assert gallery.current_label(fixes, "b.png", "cat") == gallery.EXCLUDE
    gallery.apply_label(fixes, "b.png", "cat", "cat")  # back to its own label: no correction left
    assert len(fixes) == 0
