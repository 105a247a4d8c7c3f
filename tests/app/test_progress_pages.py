"""Pages that run a long engine call hand it a progress callback, and still show the result afterwards."""

from __future__ import annotations

import functools

import pytest

import transfer_core
from ui import busy, insight

from ..conftest import TINY
from .test_pages import _goto, _no_exception


def _recording(monkeypatch, owner, name: str) -> list[tuple[int, int, str]]:
    """Wrap ``owner.name`` so the ``on_progress`` a page passes is recorded on its way to the real function."""
    real = getattr(owner, name)
    calls: list[tuple[int, int, str]] = []

    @functools.wraps(real)
    def wrapper(*args, on_progress=None, **kwargs):
        assert on_progress is not None, f"the page called {name} without a progress callback"

        def record(done, total, what):
            calls.append((done, total, what))
            on_progress(done, total, what)

        return real(*args, on_progress=record, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def _whats(calls) -> list[str]:
    return list(dict.fromkeys(what for _, _, what in calls))


def test_progress_text_names_the_phase_and_its_units():
    assert busy.progress_text("Finding a learning rate", 12, 40, "range-test steps") == (
        "Finding a learning rate · Range-test steps: 12 of 40"
    )


def test_settings_lr_finder_reports_progress_and_shows_the_suggestion(app_with_data, monkeypatch):
    calls = _recording(monkeypatch, transfer_core, "find_lr")
    at = _goto(app_with_data, "settings")
    at.button(key="lr_find").click().run()
    _no_exception(at)
    assert _whats(calls) == ["reading images", f"encoding images with {TINY}", "range-test steps"]
    assert any("Suggested head learning rate" in m.value for m in at.markdown)


def test_data_health_check_reports_progress_and_says_what_it_found(app_with_data, monkeypatch):
    calls = _recording(monkeypatch, transfer_core, "health_check")
    at = _goto(app_with_data, "data")
    at.button(key="run_health").click().run()
    _no_exception(at)
    assert _whats(calls) == ["reading images", f"encoding images with {TINY}"]
    report = at.session_state["health"][1]
    assert report.images == 30 and report.summary.endswith("among 30 images.")
    assert report.summary in [m.value for m in [*at.success, *at.info, *at.warning]]  # one plain sentence, then the findings


def test_backbone_shootout_reports_progress_per_backbone(app_with_data, monkeypatch):
    real = transfer_core.backbone_shootout
    monkeypatch.setattr(transfer_core, "backbone_shootout", lambda tr, va, names, **kw: real(tr, va, [TINY], **kw))
    calls = _recording(monkeypatch, transfer_core, "backbone_shootout")
    at = _goto(app_with_data, "backbone")
    at.button(key="shootout").click().run()
    _no_exception(at)
    assert _whats(calls) == [f"{TINY} (1 of 1): reading images", f"{TINY} (1 of 1): encoding images with {TINY}"]
    assert list(at.dataframe[-1].value["backbone"]) == [TINY]


def test_evaluate_embedding_map_reports_progress_then_draws_both_maps(app, finished_run, monkeypatch):
    insight.clear_embedding_points()
    calls = _recording(monkeypatch, insight, "embedding_map")
    app.run()
    at = _goto(app, "evaluate")
    at.button(key="show_map").click().run()
    _no_exception(at)
    assert _whats(calls) == [
        "reading images", "encoding images before training", "encoding images after training", "PCA projections",
    ]
    assert len(at.get("plotly_chart")) == 3  # confusion matrix + before + after
    calls.clear()
    at.run()  # a rerun serves the kept map: no recomputation, no progress bar
    assert calls == [] and len(at.get("plotly_chart")) == 3
    insight.clear_embedding_points()


@pytest.mark.parametrize("name", ["export_run", "verify_export"])
def test_export_reports_progress_and_shows_the_check(app, finished_run, monkeypatch, name):
    calls = _recording(monkeypatch, transfer_core, name)
    app.run()
    at = _goto(app, "export")
    next(b for b in at.button if b.label == "Export and check").click().run()
    _no_exception(at)
    assert calls and calls[-1][0] == calls[-1][1]  # the last phase ran to its end
    assert "onnx: agrees with the app" in " ".join(s.value for s in at.success)


def test_data_page_says_plainly_when_nothing_stands_out(app_with_data, monkeypatch):
    monkeypatch.setattr(transfer_core, "health_check", lambda train, val, **kw: transfer_core.HealthReport(images=30))
    at = _goto(app_with_data, "data")
    at.button(key="run_health").click().run()
    _no_exception(at)
    assert "No duplicates, no leakage, no likely mislabels among 30 images." in [s.value for s in at.success]
    assert not [e for e in at.expander if e.label.startswith(("Near-duplicates", "Same image", "Likely mislabelled"))]
