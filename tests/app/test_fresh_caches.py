"""Streamlit caches keyed by a file's stamp serve the new content once the file changes."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from transfer_core.data.corrections import Corrections, corrections_path_for
from ui import insight, state


def _touch(path: Path, seconds_later: int) -> int:
    """Move ``path``'s mtime forward (a rewrite within one clock tick must still look new); the new stamp."""
    stamp = path.stat().st_mtime_ns + seconds_later * 10**9
    os.utime(path, ns=(stamp, stamp))
    return path.stat().st_mtime_ns


def test_predictor_is_reloaded_when_the_checkpoint_is_rewritten(finished_run):
    insight.predictor.clear()
    path = str(finished_run.path)
    first = insight.predictor(path, insight.checkpoint_stamp(finished_run))
    assert insight.predictor(path, insight.checkpoint_stamp(finished_run)) is first  # cached while unchanged

    retrained = {k: v + 1.0 if v.is_floating_point() else v for k, v in load_file(finished_run.checkpoint_file).items()}
    save_file(retrained, finished_run.checkpoint_file)
    stamp = _touch(finished_run.checkpoint_file, 1)
    stamp += finished_run.model_file.stat().st_mtime_ns
    assert stamp == insight.checkpoint_stamp(finished_run)

    second = insight.predictor(path, stamp)
    assert second is not first
    loaded = second.model.state_dict()
    assert all(torch.equal(loaded[k].cpu(), v) for k, v in retrained.items() if v.is_floating_point())
    insight.predictor.clear()


def test_predictor_is_reloaded_when_the_temperature_is_written_after_the_last_checkpoint(finished_run):
    """A run writes its temperature into model.json when it ends, possibly after its last checkpoint: a model
    loaded while it trained must not keep temperature 1."""
    import json

    insight.predictor.clear()
    path = str(finished_run.path)
    first = insight.predictor(path, insight.checkpoint_stamp(finished_run))
    info = json.loads(finished_run.model_file.read_text())
    info["temperature"] = 0.5
    finished_run.model_file.write_text(json.dumps(info))
    _touch(finished_run.model_file, 7)
    second = insight.predictor(path, insight.checkpoint_stamp(finished_run))
    assert second is not first and second.temperature == 0.5
    insight.predictor.clear()


def test_dataset_indexes_follow_a_second_corrections_edit(workspace, color_dataset):
    state._load_indexes.clear()
    source = str(color_dataset)
    red = sorted(str(p) for p in (color_dataset / "red").iterdir())
    corrections = corrections_path_for(source)
    fixes = Corrections()
    fixes.set_label(red[0], "blue", "red")
    fixes.save(corrections)
    stamp = _touch(corrections, 1)
    train, val = state._load_indexes(source, None, 0.3, 0, str(corrections), stamp)
    assert {r.path: r.label for r in train.records + val.records}[red[0]] == "blue"

    fixes.set_excluded(red[1])  # the second edit of the same file
    fixes.save(corrections)
    stamp = _touch(corrections, 2)
    train, val = state._load_indexes(source, None, 0.3, 0, str(corrections), stamp)
    labels = {r.path: r.label for r in train.records + val.records}
    assert red[1] not in labels and labels[red[0]] == "blue"
    state._load_indexes.clear()
