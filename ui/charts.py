"""Plotly figures as pure functions of tables (testable without a browser)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

__all__ = [
    "class_colours",
    "class_counts_figure",
    "confusion_matrix_figure",
    "compare_curves_figure",
    "compare_f1_figure",
    "embedding_figure",
    "epoch_curves_figure",
    "lr_figure",
    "lr_finder_figure",
    "per_class_f1_figure",
    "step_loss_figure",
    "top_k_figure",
]

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, legend_title_text="")

# Classes, runs and data sets are told apart by hue. Streamlit's plotly theme starts its colours with
# two blues, which made ants and bees two shades of one colour, so the colours are set here, explicitly
# (a theme replaces only the colours a figure leaves to it).
_CLASS_PALETTE = px.colors.qualitative.D3 + [c for c in px.colors.qualitative.Alphabet if c not in px.colors.qualitative.D3]
_DISTINCT = dict(color_discrete_sequence=_CLASS_PALETTE)


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """One colour per class, of clearly different hues for the first ten, in the order given."""
    return {str(c): _CLASS_PALETTE[i % len(_CLASS_PALETTE)] for i, c in enumerate(classes)}


def class_counts_figure(counts: dict[str, int], val_counts: dict[str, int] | None = None) -> go.Figure:
    """Images per class, split into training and validation when ``val_counts`` is given."""
    rows = [{"class": c, "images": n, "set": "training" if val_counts is not None else "images"} for c, n in counts.items()]
    if val_counts is not None:
        rows += [{"class": c, "images": n, "set": "validation"} for c, n in val_counts.items()]
    fig = px.bar(pd.DataFrame(rows), x="class", y="images", color="set", barmode="stack", title="Images per class", **_DISTINCT)
    fig.update_layout(**_LAYOUT)
    fig.update_xaxes(type="category")  # class names like "0".."9" are labels, not numbers
    return fig


def epoch_curves_figure(epochs: pd.DataFrame, metric: str) -> go.Figure:
    """Train and validation ``metric`` ('loss' or 'accuracy') per epoch."""
    data = epochs.melt(
        id_vars="epoch", value_vars=[f"train_{metric}", f"val_{metric}"], var_name="set", value_name=metric
    )
    data["set"] = data["set"].str.replace(f"_{metric}", "", regex=False).map({"train": "training", "val": "validation"})
    fig = px.line(data, x="epoch", y=metric, color="set", markers=True, title=f"{metric.capitalize()} per epoch", **_DISTINCT)
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
    """Confusion matrix as square cells filling the plot, with a clickable point at each cell's centre.

    A heatmap colours the cells (edge to edge, square whatever the number of classes); heatmaps
    cannot be selected, so a scatter of invisible markers over the cells takes the clicks and
    carries the numbers. Each point's ``customdata`` is ``[true class, predicted class, count]``.
    """
    counts = np.asarray(matrix, dtype=float)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    names = [str(c) for c in classes]
    rows = []
    for i, true in enumerate(names):
        for j, predicted in enumerate(names):
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
    n = len(names)
    cell = max(18, min(120, 600 // max(n, 1)))  # pixels per cell
    top = 1.0 if normalize else max(1.0, float(values.max()))
    clicks = go.Scatter(
        x=data["predicted"],
        y=data["true"],
        mode="markers+text",
        text=data["label"],
        textfont=dict(
            size=max(9, min(18, cell // 4)),
            color=["white" if v > 0.55 * max(values.max(), 1e-9) else "#1f2937" for v in data["value"]],
        ),
        marker=dict(symbol="square", size=int(cell * 0.9), color="rgba(0,0,0,0)"),
        customdata=data[["true", "predicted", "count"]].values,
        hovertemplate="true %{customdata[0]} → predicted %{customdata[1]}: %{customdata[2]} images<extra></extra>",
        showlegend=False,
    )
    cells = go.Heatmap(
        x=names, y=names, z=values.tolist(), zmin=0, zmax=top, colorscale="Blues", xgap=2, ygap=2,
        colorbar=dict(title="share", tickformat=".0%") if normalize else dict(title="images", dtick=max(1, int(np.ceil(top / 5)))),
        hoverinfo="skip",
    )
    fig = go.Figure([clicks, cells])  # heatmaps draw below scatters whatever the order; the clicks stay data[0]
    # type="category": class names such as "0".."9" must not become a numeric axis. The ranges end at the
    # cells' outer edges and the y axis is tied to the x axis, so the cells are square and fill the plot.
    axis = dict(type="category", categoryorder="array", showgrid=False, zeroline=False, range=[-0.5, n - 0.5])
    fig.update_xaxes(title="predicted class", categoryarray=names, side="bottom", constrain="domain", **axis)
    fig.update_yaxes(title="true class", categoryarray=names[::-1], scaleanchor="x", scaleratio=1, constrain="domain", **axis)
    fig.update_layout(
        title="Confusion matrix" + (" (share of each true class)" if normalize else " (image counts)"),
        height=cell * n + 170,
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


def embedding_figure(
    points: pd.DataFrame, when: str, separation: float | None, thumbnails: Sequence[str | None] | None = None
) -> go.Figure:
    """Validation images in 2-D (``when`` is 'before' or 'after'), coloured by class, wrong ones as crosses.

    ``customdata`` holds the row position, so a selected point can show its image. With
    ``thumbnails`` (data URIs, one per row) each image is drawn at its point.
    """
    data = points.assign(
        x=points[f"{when}_x"], y=points[f"{when}_y"], result=np.where(points["label"] == points["predicted"], "correct", "wrong"),
        file=points["path"].map(lambda p: p.replace("\\", "/").rsplit("/", 1)[-1]), row=np.arange(len(points)),
    )
    title = f"{'Before' if when == 'before' else 'After'} training"
    if separation is not None:
        title += f" · class separation {separation:.2f}"
    fig = px.scatter(
        data, x="x", y="y", color="label", color_discrete_map=class_colours(sorted(data["label"].astype(str).unique())),
        symbol="result", symbol_map={"correct": "circle", "wrong": "x"},
        custom_data=["row"], hover_name="file", hover_data={"label": True, "predicted": True, "x": False, "y": False, "result": False, "row": False},
        title=title,
    )
    fig.update_traces(marker=dict(size=9, line=dict(width=0.5, color="white")))
    fig.update_layout(**{**_LAYOUT, "height": 420}, xaxis_title="component 1", yaxis_title="component 2", clickmode="event+select")
    if thumbnails is not None:
        span = max(float(np.ptp(data["x"])), float(np.ptp(data["y"])), 1e-9)
        fig.update_layout(images=[
            dict(source=uri, x=x, y=y, xref="x", yref="y", sizex=span / 18, sizey=span / 18, xanchor="center", yanchor="middle", layer="above")
            for uri, x, y in zip(thumbnails, data["x"], data["y"]) if uri
        ])
    return fig


def lr_finder_figure(lrs: Sequence[float], losses: Sequence[float], suggestion: float) -> go.Figure:
    """Smoothed loss against the learning rate on a log axis, with the suggested rate marked."""
    fig = px.line(x=list(lrs), y=list(losses), log_x=True, title="Learning-rate range test", labels={"x": "learning rate", "y": "loss"})
    fig.add_vline(x=suggestion, line_dash="dash", line_color="#dc2626", annotation_text=f"suggested {suggestion:.1e}")
    fig.update_layout(**_LAYOUT)
    # Show the valley, not the blow-up at the end: from just below the minimum to a little above the start.
    start = max(losses[: max(1, len(losses) // 10)])
    low = min(losses)
    fig.update_yaxes(range=[low - 0.05 * (start - low + 1e-6), start + 0.15 * (start - low + 1e-6)])
    fig.update_xaxes(exponentformat="e")
    return fig


def top_k_figure(top: Sequence[tuple[str, float]]) -> go.Figure:
    """Horizontal bars of the top classes of one prediction, most likely on top."""
    data = pd.DataFrame(top, columns=["class", "probability"]).iloc[::-1]
    fig = px.bar(data, x="probability", y="class", orientation="h", range_x=[0, 1], text_auto=".0%")
    fig.update_layout(**{**_LAYOUT, "height": 60 + 34 * len(data), "margin": dict(l=10, r=10, t=10, b=10)})
    fig.update_yaxes(type="category", title=None)
    fig.update_xaxes(tickformat=".0%", title=None)
    return fig


def compare_curves_figure(histories: dict[str, pd.DataFrame], metric: str = "val_accuracy") -> go.Figure:
    """One line per run of ``metric`` per epoch."""
    rows = [{"run": name, "epoch": r["epoch"], metric: r[metric]} for name, h in histories.items() for r in h.to_dict("records")]
    label = metric.replace("_", " ")
    fig = px.line(pd.DataFrame(rows), x="epoch", y=metric, color="run", markers=True, title=f"{label.capitalize()} per epoch",
                  **_DISTINCT)
    fig.update_layout(**{**_LAYOUT, "legend": dict(orientation="h", y=-0.25)})
    if "accuracy" in metric:
        fig.update_yaxes(tickformat=".0%")
    return fig


def compare_f1_figure(per_class: pd.DataFrame) -> go.Figure:
    """Per-class F1 of several runs side by side (columns: run, class, f1)."""
    fig = px.bar(per_class, x="class", y="f1", color="run", barmode="group", range_y=[0, 1], title="F1 per class", **_DISTINCT)
    fig.update_layout(**{**_LAYOUT, "legend": dict(orientation="h", y=-0.25)})
    fig.update_xaxes(type="category")
    return fig


def learning_curve_figure(points: pd.DataFrame) -> go.Figure:
    """Validation accuracy against labelled training images (columns: run, labels, pseudo_labels, accuracy),
    runs with pseudo-labels as a second series."""
    data = points.assign(kind=points["pseudo_labels"].map(lambda n: "with pseudo-labels" if n else "real labels only"))
    fig = px.line(data, x="labels", y="accuracy", color="kind", markers=True, hover_data={"run": True, "pseudo_labels": True, "kind": False},
                  title="Accuracy against labelled images", labels={"labels": "labelled training images", "accuracy": "validation accuracy"},
                  **_DISTINCT)
    fig.update_layout(**{**_LAYOUT, "legend": dict(orientation="h", y=-0.25, title=None)})
    fig.update_yaxes(tickformat=".1%")  # rounds often differ by a point or two: whole percents would repeat
    span = int(points["labels"].max() - points["labels"].min())
    fig.update_xaxes(dtick=max(1, -(-span // 6)), tickformat="d")  # whole images only
    return fig
