"""Comparing runs: which settings differ, how long each trained and on what, and the from-scratch
baseline of a transfer run."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ..config import Strategy, TrainConfig

__all__ = ["config_differences", "dataset_name", "flatten_config", "LearningCurve", "learning_curve", "scratch_baseline", "training_seconds"]

_ENDS_SEGMENT = ("finished", "stopped", "failed")


def flatten_config(config: TrainConfig) -> dict[str, Any]:
    """One level of keys (augmentation fields as ``augment.<name>``), for tables."""
    values = config.to_dict()
    augment = values.pop("augment")
    values.update({f"augment.{k}": v for k, v in augment.items()})
    return values


def config_differences(configs: Sequence[TrainConfig]) -> list[str]:
    """Settings whose value is not the same in every config (in config field order)."""
    flat = [flatten_config(c) for c in configs]
    if len(flat) < 2:
        return []
    return [key for key in flat[0] if any(f.get(key) != flat[0].get(key) for f in flat[1:])]


def scratch_baseline(config: TrainConfig) -> TrainConfig:
    """The same architecture, data, epochs and seed, from random weights.

    Random features are worthless frozen, so every layer trains, at one learning rate
    (nothing pretrained to protect), without the head warm-up or L2-SP (which pull toward
    the pretrained start).
    """
    return config.replace(
        pretrained=False, strategy=Strategy.FULL, backbone_lr_factor=1.0, head_warmup_epochs=0, l2sp=0.0, lr=None
    )


def _starts_segment(record: dict[str, Any]) -> bool:
    """Every fit decodes its images first and says so once, before it starts: a new segment."""
    return record["event"] == "cached" and record.get("what") == "images"


def training_seconds(events: Sequence[dict[str, Any]], report: dict[str, Any] | None = None) -> float | None:
    """Seconds a run spent training, over every segment of a stopped or interrupted and resumed run.

    ``report.json``'s ``train_seconds`` is the last segment's alone (each resume rewrites it). The
    run's recorded events (``metrics.jsonl``) give each segment: from its image decoding to its
    ``finished`` event's own clock, or else to its last event, so the days between a stop and a
    resume are not counted.

    Args:
        events: the run's event records in the order they were written.
        report: the run's report, whose time is used when there are no events.

    Returns:
        Seconds, or None when neither events nor report say.
    """
    segments: list[list[dict[str, Any]]] = []
    for record in events:
        if not segments or _starts_segment(record) or segments[-1][-1]["event"] in _ENDS_SEGMENT:
            segments.append([])
        segments[-1].append(record)
    if not segments:
        return None if report is None else report.get("train_seconds")
    total = 0.0
    for segment in segments:
        finished = next((r for r in segment if r["event"] == "finished" and "seconds" in r), None)
        if finished is not None:
            total += float(finished["seconds"])
            continue
        first = segment[0]
        begun = first["time"] - (first.get("seconds", 0.0) if _starts_segment(first) else 0.0)
        total += max(0.0, segment[-1]["time"] - begun)
    return total


_UPLOAD_DIGEST = re.compile(r"^[0-9a-f]{16}-")  # uploaded zips are stored as <content digest>-<name>
_CLASS_UPLOADS = re.compile(r"^classes-[0-9a-f]+$")  # images added class by class in the app


def dataset_name(config: TrainConfig) -> str:
    """A short, readable name of the data a run trained on: its folder, zip or CSV file name."""
    name = PurePath(config.data.rstrip("/\\")).name
    if _CLASS_UPLOADS.match(name):
        return "images added by class"
    return _UPLOAD_DIGEST.sub("", name) or config.data


_POOL_FIELDS = ("unlabeled", "pseudo_labels_from", "pseudo_threshold", "pseudo_cap")


@dataclass
class LearningCurve:
    """One point per finished run of a labelling sequence (fewest labels first), and how many runs were left out."""

    points: list[dict[str, Any]]
    left_out: int

    @property
    def drawable(self) -> bool:
        """Two rounds that differ in labels, or in pseudo-labels used or not (a repeat of one round is not a curve)."""
        return len({(p["labels"], p["pseudo_labels"] > 0) for p in self.points}) >= 2


def learning_curve(runs: Sequence[Any]) -> LearningCurve:
    """Validation accuracy against the number of labelled training images, one point per finished run.

    What each round of labelling bought: a run counts the images it trained on with a real label
    (its dataset plus the pool images labelled by then); its pseudo-labels are counted apart. Only
    runs of one sequence are kept: the same dataset, split and corrections (so the same validation
    images) and the same recipe, differing only in their pool images. Of several such sequences, the
    one with the most rounds (then the most recent) is drawn; the other runs are counted in ``left_out``.

    Args:
        runs: :class:`~transfer_core.runs.store.RunDir` objects (unfinished or unreadable ones are skipped).

    Returns:
        Points ``{run, labels, pseudo_labels, accuracy}``.
    """
    from ..errors import WarmstartError
    from ..training.pool_data import read_pseudo_labels

    found = []
    for run in runs:
        accuracy = run.final_accuracy()
        try:
            started, config = run.read_events({"started"}), run.read_config()
        except (OSError, ValueError, WarmstartError):
            continue
        if accuracy is None or not started:
            continue
        pseudo = len(read_pseudo_labels(run.path) or [])
        recipe = {k: v for k, v in config.to_dict().items() if k not in _POOL_FIELDS}
        found.append((run.last_activity(), json.dumps(recipe, sort_keys=True),
                      {"run": run.name, "labels": int(started[0]["train_size"]) - pseudo, "pseudo_labels": pseudo, "accuracy": accuracy}))
    if not found:
        return LearningCurve([], 0)
    groups: dict[str, list] = {}
    for item in found:
        groups.setdefault(item[1], []).append(item)

    def rounds(group: list) -> tuple[int, float]:  # distinct labelling rounds, then the latest activity
        return len({(p["labels"], p["pseudo_labels"] > 0) for _, _, p in group}), max(item[0] for item in group)

    chosen = max(groups.values(), key=rounds)
    points = [point for _, _, point in chosen]
    return LearningCurve(sorted(points, key=lambda p: (p["labels"], p["pseudo_labels"])), len(found) - len(points))
