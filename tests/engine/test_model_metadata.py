"""ModelInfo writes every model.json and rebuilds every model from one."""

from __future__ import annotations

import json

import pytest
import torch

from transfer_core import Trainer, WarmstartError, get_backbone
from transfer_core.models.metadata import ModelInfo, build_model

from ..conftest import TINY


def _info(classes=("cat", "dog", "fox")) -> ModelInfo:
    return ModelInfo(TINY, list(classes), get_backbone(TINY).preprocessing, num_features=32, dropout=0.1)


def test_model_json_reads_back_as_the_same_model_info():
    info = _info()
    raw = json.loads(info.to_json_bytes(format_version=1, recipe={"data": "photos"}))
    assert ModelInfo.from_dict(raw, "model.json") == info
    assert raw["format_version"] == 1 and raw["recipe"] == {"data": "photos"}
    assert list(raw)[:5] == ["backbone", "classes", "preprocessing", "num_features", "dropout"]


def test_extra_fields_cannot_overwrite_the_model_description():
    with pytest.raises(ValueError, match="'classes'"):
        _info().to_json_bytes(classes=["a", "b"])


def test_metadata_that_readers_would_refuse_is_never_written():
    with pytest.raises(WarmstartError, match="at least two class names"):
        _info(classes=("only",)).to_json_bytes()


def test_build_model_loads_the_weights_the_metadata_describes():
    info = _info()
    torch.manual_seed(0)
    trained = build_model(info)
    assert trained.head[1].out_features == 3 and trained.head[0].p == pytest.approx(0.1) and not trained.training
    rebuilt = build_model(info, trained.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), trained.state_dict().values()))
    with pytest.raises(WarmstartError, match="3 outputs but the metadata lists 2 classes"):
        build_model(_info(classes=("cat", "dog")), trained.state_dict(), source="best.safetensors")


def test_the_trainers_model_json_is_what_model_info_writes(tiny_config, tmp_path):
    run = Trainer(tiny_config.replace(epochs=1), tmp_path / "run").fit().run
    written = run.model_file.read_bytes()
    assert ModelInfo.from_dict(json.loads(written), "model.json").to_json_bytes() == written
