"""The Evaluate page's calibrated-confidence section, for a trained tiny run and for runs from before it existed."""

from __future__ import annotations

import base64
import json

import numpy as np

from ui.calibration import HELP

from .test_pages import _goto


def _array(value) -> np.ndarray:
    """A plotly array from a chart's JSON: a list, or plotly's base64 ``bdata`` with a dtype (and a shape)."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value["shape"]).split(",")]) if "shape" in value else flat
    return np.asarray(value)


def _reliability_chart(at):
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next((c for c in charts if c["layout"]["title"]["text"].startswith("Reliability")), None)


def _calibrated_report(run) -> dict:
    """The run's report with a calibration of 9 validation images that hold mistakes to fit against (the
    tiny run gets every image right, and then keeps temperature 1: see the engine tests)."""
    from transfer_core.insight.calibration import calibrate

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 9)
    logits = rng.normal(0.0, 3.0, (9, 3))
    logits[:3, :] = logits[:3, ::-1]  # a few confident mistakes
    report = json.loads(run.report_file.read_text())
    report["calibration"] = calibrate(logits, labels).to_dict()
    assert "reason" not in report["calibration"]
    run.report_file.write_text(json.dumps(report))
    return report


def test_evaluate_shows_ece_and_nll_before_and_after_and_the_reliability_diagram(app, finished_run):
    calibration = _calibrated_report(finished_run)["calibration"]
    before, after = calibration["before"], calibration["after"]
    app.run()
    at = _goto(app, "evaluate")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calibration error (ECE)"] == f"{before['ece']:.1%} → {after['ece']:.1%}"
    assert metrics["Log loss (NLL)"] == f"{before['nll']:.3f} → {after['nll']:.3f}"
    assert metrics["Temperature"] == f"{calibration['temperature']:.2f}"
    assert HELP in [c.value for c in at.caption]
    assert any("cross-fitted" in c.value and "2 folds" in c.value for c in at.caption)  # 9 validation images
    chart = _reliability_chart(at)
    names = [trace["name"] for trace in chart["data"]]
    assert names == ["before (raw softmax)", "after temperature scaling", "honest (confidence = accuracy)"]
    for trace, when in zip(chart["data"], ("before", "after")):
        assert np.allclose(_array(trace["x"]), [b["confidence"] for b in calibration[when]["bins"]])
        assert "count" in trace["hovertemplate"]  # counts on hover
        assert [int(n) for n in _array(trace["customdata"])[:, 1]] == [b["count"] for b in calibration[when]["bins"]]


def test_a_run_from_before_calibration_shows_nothing_about_it(app, finished_run):
    report = json.loads(finished_run.report_file.read_text())
    del report["calibration"]
    finished_run.report_file.write_text(json.dumps(report))
    app.run()
    at = _goto(app, "evaluate")
    assert "Confidence" not in [h.value for h in at.subheader]
    assert "Calibration error (ECE)" not in [m.label for m in at.metric]
    assert _reliability_chart(at) is None and HELP not in [c.value for c in at.caption]


def test_a_run_too_small_to_calibrate_says_why(app, finished_run):
    report = json.loads(finished_run.report_file.read_text())
    report["calibration"] = {"method": "temperature scaling", "temperature": 1.0, "images": 5,
                             "reason": "Only 5 validation images: at least 8 are needed."}
    finished_run.report_file.write_text(json.dumps(report))
    app.run()
    at = _goto(app, "evaluate")
    assert "Only 5 validation images: at least 8 are needed." in [c.value for c in at.caption]
    assert _reliability_chart(at) is None
