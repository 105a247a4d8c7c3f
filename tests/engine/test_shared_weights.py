"""A frozen run's backbone weights: one copy in the workspace cache, hard-linked into each run folder."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from transfer_core import RunDir, Trainer
from transfer_core.deploy.predict import load_trained_model
from transfer_core.errors import WarmstartError
from transfer_core.runs import shared_weights
from transfer_core.workspace import home

SHARED = shared_weights.SHARED_WEIGHTS_FILE


@pytest.fixture(autouse=True)
def fresh_process_memory(monkeypatch):
    """Each test starts as a new process would: no shared copy checked yet."""
    monkeypatch.setattr(shared_weights, "_CHECKED", {})


def _train(config, path) -> Trainer:
    trainer = Trainer(config, path)
    assert trainer.fit().status == "finished"
    return trainer


def _same_state(run: RunDir, model: torch.nn.Module) -> bool:
    loaded = run.load_checkpoint()
    state = model.state_dict()
    return loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())


def test_frozen_runs_link_one_copy_of_the_backbone_and_keep_only_the_head_themselves(tiny_config, tmp_path):
    first, second = _train(tiny_config, tmp_path / "a"), _train(tiny_config.replace(epochs=2), tmp_path / "b")
    a, b = RunDir(tmp_path / "a"), RunDir(tmp_path / "b")
    assert (a.path / SHARED).stat().st_ino == (b.path / SHARED).stat().st_ino
    assert (a.path / SHARED).stat().st_nlink == 3  # the cache's copy and the two runs
    assert all(not k.startswith("backbone.") for k in load_file(a.checkpoint_file))
    assert _same_state(a, first.model) and _same_state(b, second.model)
    assert load_trained_model(b)[0].state_dict().keys() == second.model.state_dict().keys()


def test_a_run_stays_whole_when_the_cache_or_another_run_is_deleted(tiny_config, tmp_path):
    _train(tiny_config, tmp_path / "a")
    kept = _train(tiny_config, tmp_path / "b")
    shutil.rmtree(home() / "cache")
    shutil.rmtree(tmp_path / "a")
    assert _same_state(RunDir(tmp_path / "b"), kept.model)


def test_without_hard_links_a_run_writes_its_whole_checkpoint(tiny_config, tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    trainer = _train(tiny_config, tmp_path / "a")
    run = RunDir(tmp_path / "a")
    assert not (run.path / SHARED).exists()
    assert any(k.startswith("backbone.") for k in load_file(run.checkpoint_file))
    assert _same_state(run, trainer.model)


def test_a_cached_copy_that_differs_from_the_backbone_is_replaced_before_it_is_linked(tiny_config, tmp_path):
    _train(tiny_config, tmp_path / "a")
    (cached,) = shared_weights.shared_folder().glob("*.safetensors")
    wrong = {k: v + 1 if v.is_floating_point() else v for k, v in load_file(cached).items()}
    save_file(wrong, tmp_path / "wrong.safetensors")
    os.replace(tmp_path / "wrong.safetensors", cached)  # a new file: run a's link keeps the right weights
    shared_weights._CHECKED.clear()  # as a new process finds it

    trainer = _train(tiny_config, tmp_path / "b")
    assert _same_state(RunDir(tmp_path / "b"), trainer.model)
    assert (tmp_path / "b" / SHARED).stat().st_ino == cached.stat().st_ino  # replaced, then linked
    assert _same_state(RunDir(tmp_path / "a"), trainer.model)  # same data, seed and backbone


def test_a_missing_backbone_file_is_one_clear_sentence(tiny_config, tmp_path):
    _train(tiny_config, tmp_path / "a")
    (tmp_path / "a" / SHARED).unlink()
    with pytest.raises(WarmstartError, match="backbone.safetensors.*missing"):
        RunDir(tmp_path / "a").load_checkpoint()


@pytest.mark.parametrize("strategy", ["partial", "full"])
def test_runs_that_train_the_backbone_keep_all_their_weights_themselves(tiny_config, tmp_path, strategy):
    trainer = _train(tiny_config.replace(strategy=strategy, epochs=2), tmp_path / "a")
    run = RunDir(tmp_path / "a")
    assert not (run.path / SHARED).exists() and _same_state(run, trainer.model)
