"""Backbone page: LogME beside the measured probe accuracy, and a recommended backbone; the Auto recipe
trains the shoot-out's winner and says why."""

from __future__ import annotations

from torch import nn

from transfer_core import display_name
from transfer_core.insight.backbone_choice import CANDIDATES_ENV
from transfer_core.models.registry import Backbone, BackboneSpec, Preprocessing, WeightsSource, register_backbone
from ui import state

from ..conftest import TINY

WIDE = "tiny_wide_test"  # a second test network, so the shoot-out has something to compare


def _wide_backbone(pretrained: bool) -> Backbone:
    stage = nn.Sequential(nn.Conv2d(3, 24, 5, stride=4, padding=2), nn.ReLU())
    return Backbone([stage], nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)), 24)


register_backbone(BackboneSpec(name=WIDE, source=WeightsSource.LOCAL, description="One wide conv (test).",
                               preprocessing=Preprocessing(input_size=32), builder=_wide_backbone, licence="test"), replace=True)


def _goto(at, page):
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_shootout_shows_logme_as_an_estimate_and_recommends_a_backbone_to_use(app_with_data, monkeypatch):
    monkeypatch.setenv(CANDIDATES_ENV, f"{TINY},{WIDE}")
    at = _goto(app_with_data, "backbone")
    at.selectbox(key="w_backbone").set_value("auto").run()  # Auto on: "Use" is offered whichever backbone wins
    assert at.session_state["settings"]["backbone_auto"] is True
    at.button(key="shootout").click().run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert list(table.columns) == ["backbone", "validation accuracy", "LogME (estimate)", "ms / image", "seconds", "note"]
    assert set(table["backbone"]) == {TINY, WIDE} and table["LogME (estimate)"].notna().all()
    outcome = at.session_state["shootout_result"][1]
    [shown] = [s.value for s in at.success if s.value.startswith("**Recommended:**")]
    assert outcome.reason in shown and outcome.reason.startswith(outcome.recommended)
    assert table["backbone"].iloc[0] == outcome.recommended  # the rule's pick heads the table

    at.button(key="use_recommended").click().run()
    assert not at.exception
    settings = at.session_state["settings"]
    assert (settings["backbone"], settings["backbone_auto"]) == (outcome.recommended, False)
    assert at.selectbox(key="w_backbone").value == outcome.recommended


def test_auto_recipe_trains_the_winner_and_the_train_page_says_why(app_with_data, monkeypatch):
    monkeypatch.setenv(CANDIDATES_ENV, TINY)  # read by the training worker too
    at = _goto(app_with_data, "settings")
    at.button(key="preset_Auto").click().run()
    assert at.session_state["preset"] == "Auto" and at.session_state["settings"]["backbone_auto"] is True
    assert any("**Backbone:** auto (chosen when training starts)" in m.value for m in at.sidebar.markdown)
    assert at.session_state["settings"]["backbone"] == TINY  # previews and the LR finder keep a real backbone
    at = _goto(at, "train")
    assert any("the backbone a shoot-out on your training images picks" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Start training").click().run()
    job = state.job_manager().latest()
    assert job.config.backbone == "auto"
    job.wait(120)
    assert job.status == "finished", job.error
    assert job.run.read_config().backbone == TINY  # the run records what it trained
    at.run()
    assert any(i.value.startswith("Auto chose tiny_cnn after a shoot-out of 1 backbone") for i in at.info)
    assert display_name(job.run).startswith("tiny_cnn · frozen") and display_name(job.run).endswith("· auto")
