"""What an export folder holds: nothing of the trainer's file system, and one model at a time."""

from __future__ import annotations

import json

import pytest

from transfer_core import Trainer, TrainConfig
from transfer_core.cli import main
from transfer_core.data.corrections import Corrections, corrections_path_for
from transfer_core.deploy.export import export_run, load_exported
from transfer_core.deploy.verify import verify_export

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


def _formats_ok(run, folder) -> set[str]:
    return {r.format for r in verify_export(run, folder) if r.ok}


def test_an_export_does_not_carry_the_trainers_paths(workspace):
    root, run = workspace
    folder = export_run(run, out_dir=root / "shared")
    for path in folder.iterdir():
        assert str(root).encode() not in path.read_bytes(), f"{path.name} names the trainer's folders"
    recipe = json.loads((folder / "model.json").read_text())["recipe"]
    assert (recipe["data"], recipe["val_data"]) == ("colors", "colors-val")
    assert recipe["corrections"] == corrections_path_for(root / "colors").name


def test_a_second_format_joins_the_first_in_one_folder(workspace):
    root, run = workspace
    folder = root / "one-by-one"
    export_run(run, ("onnx",), folder)
    export_run(run, ("torchscript",), folder)
    assert {p.name for p in folder.iterdir()} == {"model.json", "model.onnx", "model.torchscript.pt"}
    assert _formats_ok(run, folder) == {"onnx", "torchscript"}
    export_run(run, ("safetensors", "onnx"), folder)  # a format written again replaces its own file only
    assert {p.name for p in folder.iterdir()} == {"model.json", "model.onnx", "model.torchscript.pt", "model.safetensors"}
    assert load_exported(folder).classes == ["blue", "green", "red"]


def test_cli_exports_formats_one_by_one_into_one_folder(workspace, capsys):
    root, run = workspace
    out = root / "cli-export"
    assert main(["export", str(run.path), "--format", "onnx", "--out", str(out)]) == 0
    assert main(["export", str(run.path), "--format", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnx: agrees with the engine" in printed and "torchscript: agrees with the engine" in printed
    assert (out / "model.onnx").is_file() and (out / "model.torchscript.pt").is_file()


def test_an_export_of_another_model_clears_the_first_models_files(workspace):
    root, run = workspace
    folder = root / "two-models"
    export_run(run, ("onnx", "card"), folder)
    (folder / "notes.txt").write_text("mine")  # not an export file: left alone
    other = Trainer(run.read_config().replace(epochs=1, seed=7), root / "other-run").fit().run
    export_run(other, ("torchscript",), folder)
    assert {p.name for p in folder.iterdir()} == {"model.json", "model.torchscript.pt", "notes.txt"}
    assert _formats_ok(other, folder) == {"torchscript"}
    meta = json.loads((folder / "model.json").read_text())
    assert meta["weights_sha256"] != json.loads((export_run(run, ("safetensors",), root / "third") / "model.json").read_text())["weights_sha256"]


def test_a_failed_export_leaves_the_folder_as_it_was(workspace, monkeypatch):
    import torch

    root, run = workspace
    folder = export_run(run, ("onnx",), root / "kept")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("tracer exploded")

    monkeypatch.setattr(torch.jit, "trace", broken)
    from transfer_core import WarmstartError

    with pytest.raises(WarmstartError, match="tracer exploded"):
        export_run(run, ("torchscript",), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_the_shared_recipe_keeps_only_the_final_names():
    from transfer_core.deploy.export import shared_recipe

    recipe = shared_recipe({"data": "C:\\Users\\ann\\flowers.zip", "val_data": "/home/ann/val/", "corrections": None, "seed": 3})
    assert recipe == {"data": "flowers.zip", "val_data": "val", "corrections": None, "seed": 3}
