"""The Evaluate page's calibration section: ECE and NLL before → after, and the reliability diagram."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

__all__ = ["HELP", "reliability_figure", "show_calibration"]

HELP = "Temperature scaling makes the confidence honest; it never changes which class is predicted."
_SETS = {"before": "before (raw softmax)", "after": "after temperature scaling"}
_COLOURS = {_SETS["before"]: "#d62728", _SETS["after"]: "#1f77b4"}


def reliability_figure(calibration: dict[str, Any]) -> go.Figure:
    """Accuracy against mean confidence per confidence bin, before and after, with the diagonal.

    Args:
        calibration: a report's ``calibration`` dict (``before`` / ``after`` with their ``bins``).

    Returns:
        Lines with a marker per non-empty bin; hovering shows the bin's range and image count.
    """
    rows = [
        {**b, "set": _SETS[when], "range": f"{b['lower']:.0%}–{b['upper']:.0%}"}
        for when in ("before", "after")
        for b in calibration[when]["bins"]
    ]
    fig = px.line(
        pd.DataFrame(rows), x="confidence", y="accuracy", color="set", markers=True, color_discrete_map=_COLOURS,
        hover_data={"range": True, "count": True, "confidence": ":.1%", "accuracy": ":.1%", "set": False},
        title="Reliability: accuracy at each level of confidence",
    )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="honest (confidence = accuracy)",
                             line=dict(dash="dash", color="grey"), hoverinfo="skip"))
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), height=360, legend_title_text="",
                      xaxis_title="confidence (mean of the bin)", yaxis_title="accuracy in the bin")
    fig.update_xaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


def show_calibration(report: dict[str, Any]) -> None:
    """The section for a report; nothing at all for runs trained before calibration existed."""
    calibration = report.get("calibration")
    if not calibration:
        return
    st.subheader("Confidence")
    st.caption(HELP)
    if calibration.get("reason"):
        st.caption(calibration["reason"])
        return
    before, after = calibration["before"], calibration["after"]
    a, b, c = st.columns(3)
    a.metric("Calibration error (ECE)", f"{before['ece']:.1%} → {after['ece']:.1%}",
             help="Expected calibration error: how far, on average, the model's confidence is from its accuracy at that "
                  "confidence (images grouped into 15 bins by confidence). 0 % is perfectly honest.")
    b.metric("Log loss (NLL)", f"{before['nll']:.3f} → {after['nll']:.3f}",
             help="Negative log-likelihood of the true classes: lower means the probabilities put on the right class are "
                  "higher. Temperature scaling minimises it.")
    c.metric("Temperature", f"{calibration['temperature']:.2f}",
             help="The logits are divided by this before the softmax, in predictions and in every export. Above 1 softens "
                  "an over-confident model, below 1 sharpens an under-confident one.")
    st.plotly_chart(reliability_figure(calibration), key="reliability", width="stretch")
    st.caption(f"The 'after' numbers are cross-fitted: the {calibration['images']} validation images were split into "
               f"{calibration['folds']} folds and each fold was measured at a temperature fitted on the others, never on "
               "itself. Points on the dashed line are honest; below it the model is over-confident, above it under-confident.")
