"""Plotly figures as pure functions of tables (testable without a browser)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

__all__ = [
    "class_counts_figure",
    "confusion_matrix_figure",
    "epoch_curves_figure",
    "lr_figure",
    "per_class_f1_figure",
    "step_loss_figure",
]

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, legend_title_text="")


def class_counts_figure(counts: dict[str, int], val_counts: dict[str, int] | None = None) -> go.Figure:
    """Images per class, split into training and validation when ``val_counts`` is given."""
    rows = [{"class": c, "images": n, "set": "training" if val_counts is not None else "images"} for c, n in counts.items()]
    if val_counts is not None:
        rows += [{"class": c, "images": n, "set": "validation"} for c, n in val_counts.items()]
    fig = px.bar(pd.DataFrame(rows), x="class", y="images", color="set", barmode="stack", title="Images per class")
    fig.update_layout(**_LAYOUT)
    fig.update_xaxes(type="category")  # class names like "0".."9" are labels, not numbers
    return fig


def epoch_curves_figure(epochs: pd.DataFrame, metric: str) -> go.Figure:
    """Train and validation ``metric`` ('loss' or 'accuracy') per epoch."""
    data = epochs.melt(
        id_vars="epoch", value_vars=[f"train_{metric}", f"val_{metric}"], var_name="set", value_name=metric
    )
    data["set"] = data["set"].str.replace(f"_{metric}", "", regex=False).map({"train": "training", "val": "validation"})
    fig = px.line(data, x="epoch", y=metric, color="set", markers=True, title=f"{metric.capitalize()} per epoch")
    fig.update_layout(**_LAYOUT)
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_xaxes(dtick=1 if len(epochs) <= 20 else None)
    return fig


def step_loss_figure(steps: pd.DataFrame) -> go.Figure:
    fig = px.line(steps, x="global_step", y="loss", title="Training loss per step")
    fig.update_layout(**_LAYOUT, xaxis_title="step")
    return fig


def lr_figure(steps: pd.DataFrame) -> go.Figure:
    fig = px.line(steps, x="global_step", y="lr", title="Learning rate (head)")
    fig.update_layout(**_LAYOUT, xaxis_title="step", yaxis_title="learning rate")
    fig.update_yaxes(exponentformat="e")
    return fig


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str], normalize: bool = False) -> go.Figure:
    """Confusion matrix drawn as square markers, so a click selects a cell (heatmaps cannot be selected).

    Each point's ``customdata`` is ``[true class, predicted class, count]``.
    """
    counts = np.asarray(matrix, dtype=float)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    rows = []
    for i, true in enumerate(classes):
        for j, predicted in enumerate(classes):
            value = values[i, j]
            rows.append(
                {
                    "true": true,
                    "predicted": predicted,
                    "value": value,
                    "count": int(counts[i, j]),
                    "label": f"{value:.0%}" if normalize else f"{int(value)}",
                }
            )
    data = pd.DataFrame(rows)
    data[["true", "predicted"]] = data[["true", "predicted"]].astype(str)
    n = len(classes)
    size = max(18, min(70, 520 // max(n, 1)))
    fig = go.Figure(
        go.Scatter(
            x=data["predicted"],
            y=data["true"],
            mode="markers+text",
            text=data["label"],
            textfont=dict(
                size=max(9, min(16, size // 4)),
                color=["white" if v > 0.55 * max(values.max(), 1e-9) else "#1f2937" for v in data["value"]],
            ),
            marker=dict(
                symbol="square",
                size=size,
                color=data["value"],
                colorscale="Blues",
                cmin=0,
                cmax=1 if normalize else max(1.0, float(values.max())),
                colorbar=dict(title="share" if normalize else "images"),
                line=dict(width=1, color="white"),
            ),
            customdata=data[["true", "predicted", "count"]].values,
            hovertemplate="true %{customdata[0]} → predicted %{customdata[1]}: %{customdata[2]} images<extra></extra>",
        )
    )
    # type="category": class names such as "0".."9" must not become a numeric axis.
    axis = dict(type="category", categoryorder="array", showgrid=False, zeroline=False)
    fig.update_xaxes(title="predicted class", categoryarray=[str(c) for c in classes], side="bottom", **axis)
    fig.update_yaxes(title="true class", categoryarray=[str(c) for c in reversed(classes)], **axis)
    fig.update_layout(
        title="Confusion matrix" + (" (share of each true class)" if normalize else " (image counts)"),
        height=max(360, size * n + 160),
        margin=dict(l=10, r=10, t=50, b=10),
        plot_bgcolor="white",
        clickmode="event+select",
    )
    return fig


def per_class_f1_figure(per_class: pd.DataFrame) -> go.Figure:
    fig = px.bar(per_class, x="class", y="f1", title="F1 per class", range_y=[0, 1])
    fig.update_layout(**_LAYOUT)
    fig.update_xaxes(type="category")
    return fig
