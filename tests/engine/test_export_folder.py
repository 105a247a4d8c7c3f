"""What an export folder holds: nothing of the trainer's file system, and one model at a time."""

from __future__ import annotations

import json

import pytest

from transfer_core import Trainer, TrainConfig
from transfer_core.data.corrections import Corrections, corrections_path_for
from transfer_core.deploy.export import export_run

from ..conftest import TINY, write_dataset


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A run trained on a folder, a separate validation folder and a corrections file, all under one root."""
    root = tmp_path_factory.mktemp("sharing")
    data = write_dataset(root / "colors", per_class=8)
    val = write_dataset(root / "colors-val", per_class=3)
    fixes = Corrections()
    fixes.set_excluded(str(next((data / "red").iterdir())))
    corrections = corrections_path_for(data)
    fixes.save(corrections)
    config = TrainConfig(data=str(data), val_data=str(val), corrections=str(corrections), backbone=TINY,
                         epochs=2, batch_size=8, lr=0.3, head_warmup_epochs=0)
    run = Trainer(config, root / "run").fit().run
    return root, run


def test_an_export_does_not_carry_the_trainers_paths(workspace):
    root, run = workspace
    folder = export_run(run, out_dir=root / "shared")
    for path in folder.iterdir():
        assert str(root).encode() not in path.read_bytes(), f"{path.name} names the trainer's folders"
    recipe = json.loads((folder / "model.json").read_text())["recipe"]
    assert (recipe["data"], recipe["val_data"]) == ("colors", "colors-val")
    assert recipe["corrections"] == corrections_path_for(root / "colors").name


def test_the_shared_recipe_keeps_only_the_final_names():
    from transfer_core.deploy.export import shared_recipe

    recipe = shared_recipe({"data": "C:\\Users\\ann\\flowers.zip", "val_data": "/home/ann/val/", "corrections": None, "seed": 3})
    assert recipe == {"data": "flowers.zip", "val_data": "val", "corrections": None, "seed": 3}
