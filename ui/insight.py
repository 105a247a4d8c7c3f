"""Cached wrappers of the engine's explanation tools, keyed by run folder and checkpoint time.

A retrained or replaced checkpoint changes the modification time, so no stale explanation
is ever served; the heavy objects (models) live in ``cache_resource``, the pictures and
tables in ``cache_data``. Parameter counts, report intervals and training times are cached here
too, keyed by the settings or the files they come from. Embedding maps are kept in a small store of
their own, because computing one draws a progress bar that a ``cache_data`` replay would draw again.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict

import pandas as pd
import streamlit as st
from PIL import Image

from torchvision.transforms.v2 import functional as F

from transfer_core import (
    Predictor,
    RunDir,
    StrategyParameters,
    TrainConfig,
    WarmstartError,
    embedding_map,
    grad_cam,
    open_rgb,
    overlay_heatmap,
    parameter_counts,
    report_intervals,
    training_seconds,
)
from ui import busy

__all__ = [
    "checkpoint_stamp",
    "clear_embedding_points",
    "embedding_points",
    "events_stamp",
    "grad_cam_for_upload",
    "grad_cam_image",
    "intervals",
    "predictor",
    "report_stamp",
    "strategy_parameters",
    "thumbnail_data_uri",
    "total_training_seconds",
]


def checkpoint_stamp(run: RunDir) -> int:
    """Changes whenever the trained model does: its weights, or its ``model.json`` (the temperature is
    written there when the run ends, possibly after the last checkpoint)."""
    return sum(path.stat().st_mtime_ns for path in (run.checkpoint_file, run.model_file) if path.exists())


@st.cache_resource(max_entries=4, show_spinner="Loading the trained model…")
def predictor(run_path: str, stamp: int) -> Predictor:
    """The run's trained model; ``stamp`` (:func:`checkpoint_stamp`) is in the cache key, so a rewritten checkpoint reloads.

    Streamlit leaves parameters named with a leading underscore out of the key: the stamp must not have one.
    """
    return Predictor.from_run(run_path)


def _cam_view(model: Predictor, image: Image.Image, class_name: str | None) -> Image.Image:
    """The evaluation crop of ``image`` with the Grad-CAM of ``class_name`` (default: predicted) over it."""
    view = model.views([image])[0]  # resized and cropped once, for the model and for the picture
    target = None if class_name is None else [model.classes.index(class_name)]
    heat = grad_cam(model.model, model.inputs(views=[view]), target)[0]
    return overlay_heatmap(F.to_pil_image(view), heat)


@st.cache_data(max_entries=500, show_spinner=False)
def grad_cam_image(run_path: str, stamp: int, image_path: str, class_name: str | None = None) -> Image.Image | None:
    """Grad-CAM overlay for an image file, or None when the file is no longer readable."""
    try:
        return _cam_view(predictor(run_path, stamp), open_rgb(image_path), class_name)
    except WarmstartError:
        return None


def grad_cam_for_upload(run_path: str, stamp: int, image: Image.Image, class_name: str | None = None) -> Image.Image:
    return _cam_view(predictor(run_path, stamp), image, class_name)


_MAPS: OrderedDict[tuple[str, int, str], tuple[pd.DataFrame, float | None, float | None]] = OrderedDict()
_MAPS_LOCK = threading.Lock()
_MAPS_KEPT = 8


def embedding_points(run_path: str, stamp: int, method: str = "pca") -> tuple[pd.DataFrame, float | None, float | None]:
    """The embedding map's points and separation scores; computed under a progress bar once per run, stamp and method.

    Not ``st.cache_data``: a cached function replays the elements it drew, and the progress bar
    must show only while the map is really being computed. The last few maps are kept for all sessions.
    """
    key = (run_path, stamp, method)
    with _MAPS_LOCK:
        if key in _MAPS:
            _MAPS.move_to_end(key)
            points, before, after = _MAPS[key]
            return points.copy(), before, after
    with busy.progress("Computing features before and after training") as on_progress:
        result = embedding_map(run_path, method=method, on_progress=on_progress)
    entry = (pd.DataFrame(result.points), result.separation_before, result.separation_after)
    with _MAPS_LOCK:
        _MAPS[key] = entry
        while len(_MAPS) > _MAPS_KEPT:
            _MAPS.popitem(last=False)
    return entry[0].copy(), entry[1], entry[2]


def clear_embedding_points() -> None:
    """Forget every kept embedding map (tests)."""
    with _MAPS_LOCK:
        _MAPS.clear()


@st.cache_data(max_entries=5000, show_spinner=False)
def thumbnail_data_uri(path: str, size: int = 40) -> str | None:
    """A tiny PNG of ``path`` as a data URI, for drawing images onto a chart."""
    try:
        image = open_rgb(path)
    except WarmstartError:
        return None
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@st.cache_data(show_spinner="Counting parameters…")
def strategy_parameters(
    backbone: str, strategy: str, trainable_blocks: int, unfreeze_every: int, epochs: int, n_classes: int
) -> StrategyParameters:
    """Trainable and frozen parameters of a backbone under a strategy (keyed by just the settings that matter)."""
    config = TrainConfig(backbone=backbone, strategy=strategy, trainable_blocks=trainable_blocks,
                         unfreeze_every=unfreeze_every, epochs=epochs)
    return parameter_counts(config, n_classes)


def report_stamp(run: RunDir) -> int:
    return run.report_file.stat().st_mtime_ns if run.report_file.exists() else 0


@st.cache_data(max_entries=64, show_spinner=False)
def intervals(run_path: str, stamp: int) -> dict[str, tuple[float, float]]:
    """The 95 % intervals of a run's report (computed here only for reports that predate them)."""
    return report_intervals(RunDir(run_path).read_report())


def events_stamp(run: RunDir) -> int:
    return run.metrics_file.stat().st_mtime_ns if run.metrics_file.exists() else 0


@st.cache_data(max_entries=256, show_spinner=False)
def total_training_seconds(run_path: str, stamp: int) -> float | None:
    """Seconds a run trained over all its segments (a resumed run's report knows only the last one)."""
    run = RunDir(run_path)
    return training_seconds(run.read_events(), run.read_report())
