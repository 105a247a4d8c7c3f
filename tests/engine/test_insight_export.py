"""Grad-CAM, embedding map, LR finder, corrections, health check, export and run management."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch

from transfer_core import RunStore, Trainer, WarmstartError, load_train_val
from transfer_core.models.registry import get_backbone
from transfer_core.insight.compare import config_differences, scratch_baseline
from transfer_core.data.corrections import Corrections, corrections_path_for
from transfer_core.insight.embedding_map import embedding_map
from transfer_core.insight.explain import cam_target_layer, grad_cam, overlay_heatmap
from transfer_core.deploy.export import export_run, export_zip, load_exported
from transfer_core.deploy.verify import verify_export
from transfer_core.insight.health import health_check
from transfer_core.training.lr_finder import find_lr
from transfer_core.models.transfer import TransferModel
from transfer_core.deploy.predict import Predictor, expand_inputs, predictions_table

from ..conftest import TINY, make_image, train_tiny_run, write_dataset


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("insight"), per_class=10)


@pytest.mark.parametrize(
    "name, target",
    [
        ("efficientnet_lite0", "stage"), ("resnet18", "stage"), ("mobilenet_v3_large", "stage"), ("efficientnet_b0", "stage"),
        ("convnext_tiny", "stage"), ("vit_b_16", "ln_1"), ("timm/resnet18", "stage"), ("timm/vit_tiny_patch16_224", "norm1"),
    ],
)
def test_grad_cam_works_for_every_backbone_family(name, target):
    spec = get_backbone(name)
    torch.manual_seed(0)
    model = TransferModel(spec.build(pretrained=spec.source.value == "bundled"), 3)
    layer = cam_target_layer(model)
    assert layer is model.backbone.stages[-1] if target == "stage" else type(layer).__name__ == "LayerNorm"
    size = spec.preprocessing.input_size
    heat = grad_cam(model, torch.randn(2, 3, size, size), [0, 2])
    assert heat.shape == (2, size, size) and heat.min() >= 0 and heat.max() <= 1 + 1e-6


def test_grad_cam_of_a_trained_model_overlays_the_image(trained_run):
    predictor = Predictor.from_run(trained_run)
    image = make_image((200, 40, 40), size=(40, 40))
    heat = grad_cam(predictor.model, predictor.inputs([image]))
    assert heat.shape == (1, 32, 32) and heat.min() >= 0
    # Normalised to [0, 1], or all zero when no place adds positive evidence (Grad-CAM's ReLU).
    assert heat.max() == pytest.approx(1.0) or heat.max() == 0.0
    blended = overlay_heatmap(image, heat[0])
    assert blended.size == image.size and blended.mode == "RGB"
    assert np.abs(np.asarray(blended, float) - np.asarray(image, float)).mean() > 1  # the heatmap shows


def test_export_formats_reproduce_the_engine(trained_run):
    folder = export_run(trained_run)
    assert {p.name for p in folder.iterdir()} == {
        "model.json", "model.safetensors", "model.torchscript.pt", "model.onnx", "model.int8.onnx", "MODEL_CARD.md", "confusion_matrix.png"
    }
    card = (folder / "MODEL_CARD.md").read_text()
    assert "## Known weaknesses" in card and "Accuracy: **" in card
    results = {r.format: r for r in verify_export(trained_run, folder)}
    assert set(results) == {"onnx", "onnx-int8", "torchscript"}
    for name in ("onnx", "torchscript"):  # the float files give the engine's own probabilities; int8 has its own check
        assert results[name].ok and results[name].agreement == 1.0 and results[name].max_difference <= 1e-4, results[name]
    # The safetensors + model.json reload predicts exactly what the run does.
    images = [make_image(c, seed=i) for i, c in enumerate([(200, 40, 40), (40, 180, 60), (40, 60, 200)])]
    assert np.array_equal(load_exported(folder).probabilities(images), Predictor.from_run(trained_run).probabilities(images))
    with zipfile.ZipFile(BytesIO(export_zip(folder))) as zf:
        assert any(n.endswith("model.onnx") for n in zf.namelist())


def test_onnx_in_a_separate_process_gives_the_same_top1(trained_run, tmp_path):
    folder = export_run(trained_run, out_dir=tmp_path / "export")
    config = trained_run.read_config()
    _, val = load_train_val(config.data, config.val_data, config.val_split, config.seed)
    expected = [p.top[0][0] for p in Predictor.from_run(trained_run).predict_files([r.path for r in val.records], top_k=1)]
    consumer = """
import json, sys
import numpy as np, onnxruntime
from PIL import Image
folder, paths = sys.argv[1], sys.argv[2:]
meta = json.load(open(folder + "/model.json"))
pre, size = meta["preprocessing"], meta["preprocessing"]["input_size"]
short = round(size / pre["crop_pct"])
def load(path):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    scale = short / min(w, h)
    image = image.resize((round(w * scale), round(h * scale)), {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[pre["interpolation"]])
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    x = np.asarray(image.crop((left, top, left + size, top + size)), np.float32) / 255.0
    return ((x - pre["mean"]) / pre["std"]).transpose(2, 0, 1)
session = onnxruntime.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
probabilities = session.run(None, {"image": np.stack([load(p) for p in paths]).astype(np.float32)})[0]
print(json.dumps([meta["classes"][i] for i in probabilities.argmax(1)]))
"""
    out = subprocess.run([sys.executable, "-c", consumer, str(folder), *[r.path for r in val.records]],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == expected


def test_export_metadata_that_does_not_match_is_refused(trained_run, tmp_path):
    folder = export_run(trained_run, formats=("safetensors",), out_dir=tmp_path / "e")
    meta = json.loads((folder / "model.json").read_text())
    meta["classes"] = meta["classes"][:2]
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(WarmstartError, match="3 outputs but the metadata lists 2 classes"):
        load_exported(folder)
    with pytest.raises(WarmstartError, match="Unknown export format"):
        export_run(trained_run, formats=("pickle",))


def test_embedding_map_has_every_validation_image_before_and_after(trained_run):
    result = embedding_map(trained_run)
    assert len(result.points) == 9
    assert {"before_x", "after_y", "predicted", "confidence"} <= set(result.points[0])
    assert result.separation_before is not None and result.separation_after is not None
    tsne = embedding_map(trained_run, method="tsne")
    assert len(tsne.points) == 9 and tsne.separation_after == pytest.approx(result.separation_after)  # same features
    with pytest.raises(WarmstartError, match="Unknown projection 'umap'"):
        embedding_map(trained_run, method="umap")


def test_lr_finder_suggests_a_rate_inside_the_range(tiny_config):
    result = find_lr(tiny_config, steps=60)
    assert result.on_features and len(result.lrs) >= 5
    assert result.lrs[0] < result.suggestion < result.lrs[-1]
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:]))
    full = find_lr(tiny_config.replace(strategy="full"), image_steps=12)
    assert not full.on_features and len(full.lrs) >= 5


def test_corrections_relabel_and_exclude_without_touching_the_files(tiny_config, color_dataset, tmp_path):
    red = sorted((color_dataset / "red").iterdir())
    before = {p: p.read_bytes() for p in red}
    fixes = Corrections()
    fixes.set_label(str(red[0]), "blue", "red")
    fixes.set_excluded(str(red[1]))
    fixes.set_label(str(red[2]), "green", "red")
    fixes.set_label(str(red[2]), "red", "red")  # undone
    path = corrections_path_for(color_dataset)
    fixes.save(path)
    assert path.parent == color_dataset.parent and Corrections.load(path).relabel == {str(red[0]): "blue"}
    train, val = load_train_val(str(color_dataset), val_fraction=0.3, corrections=path)
    labels = {r.path: r.label for r in train.records + val.records}
    assert labels[str(red[0])] == "blue" and str(red[1]) not in labels and len(labels) == 29
    assert any("1 image(s) relabelled and 1 excluded" in n for n in train.notes)
    result = Trainer(tiny_config.replace(corrections=str(path), epochs=1), tmp_path / "run").fit()
    assert result.report["train_size"] + result.report["val_size"] == 29
    assert {p: p.read_bytes() for p in red} == before


def test_health_check_finds_leakage_duplicates_and_mislabels(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=8)
    (root / "green" / "twin.png").write_bytes((root / "green" / "green_0.png").read_bytes())
    make_image((200, 40, 40), seed=999).save(root / "blue" / "actually_red.png")
    train, val = load_train_val(root, val_fraction=0.3)
    report = health_check(train, val, backbone=TINY)  # threshold adapted to the data
    found = report.leakage + report.near_duplicates
    assert any({Path(p).name for p in (d.get("train") or d["a"], d.get("val") or d["b"])} == {"twin.png", "green_0.png"} for d in found)
    flagged = {Path(m["path"]).name: m["suggested"] for m in report.likely_mislabeled}
    assert flagged.get("actually_red.png") == "red"
    assert report.images == 26 and not report.clean


def test_duplicate_threshold_adapts_to_how_alike_the_images_are():
    from transfer_core.insight.health import _duplicate_threshold

    photos = np.array([0.62, 0.70, 0.69, 0.75, 0.66, 0.71, 0.80])  # distinct photos: low similarity
    digits = np.array([0.965, 0.970, 0.968, 0.962, 0.975, 0.971])  # tiny upscaled digits all look alike
    assert _duplicate_threshold(photos) == pytest.approx(0.9)
    assert 0.975 < _duplicate_threshold(digits) <= 0.995  # above every real pair, so no false alarms


def test_runs_can_be_renamed_deleted_and_zipped(tiny_config, tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.new_run(tiny_config.replace(epochs=1))
    Trainer(tiny_config.replace(epochs=1), run).fit()
    renamed = store.rename(run.name, "my best run!")
    assert renamed.name == "my-best-run" and renamed.read_report() is not None
    other = store.new_run(tiny_config)
    with pytest.raises(WarmstartError, match="already exists"):
        store.rename(other.name, "my-best-run")
    with zipfile.ZipFile(BytesIO(store.zip_bytes(renamed))) as zf:
        names = zf.namelist()
    assert "my-best-run/best.safetensors" in names and not any(n.endswith("resume.pt") for n in names)
    store.delete("my-best-run")
    assert [r.name for r in store.runs()] == [other.name]


def test_scratch_baseline_and_config_differences(tiny_config):
    scratch = scratch_baseline(tiny_config)
    assert not scratch.pretrained and scratch.strategy == "full" and scratch.epochs == tiny_config.epochs
    assert config_differences([tiny_config, scratch]) == ["strategy", "lr", "backbone_lr_factor", "pretrained"]
    assert config_differences([tiny_config]) == []


def _cached_images(time, seconds):
    return {"event": "cached", "what": "images", "time": time, "seconds": seconds, "items": 30, "message": "…"}


def test_training_seconds_add_up_the_segments_of_a_resumed_run():
    from transfer_core.insight.compare import training_seconds

    first = [_cached_images(102.0, 2.0), {"event": "started", "time": 102.5}, {"event": "epoch", "time": 130.0},
             {"event": "stopped", "time": 131.0}]  # 100 s to 131 s
    second = [_cached_images(5001.0, 1.0), {"event": "started", "time": 5001.5}, {"event": "epoch", "time": 5290.0},
              {"event": "finished", "time": 5290.5, "seconds": 290.5}]  # the next day, resumed: 290.5 s by its own clock
    report = {"train_seconds": 290.5}  # report.json is rewritten by the last segment alone
    assert training_seconds(first + second, report) == pytest.approx(31.0 + 290.5)
    assert training_seconds(second, report) == pytest.approx(290.5)
    killed = first[:-1] + second  # the first segment was interrupted: no closing event
    assert training_seconds(killed, report) == pytest.approx(30.0 + 290.5)
    failed = [{"event": "failed", "time": 3000.0}]  # a resume that failed at once adds nothing
    assert training_seconds(first + failed + second, report) == pytest.approx(31.0 + 290.5)
    assert training_seconds([], report) == 290.5 and training_seconds([], None) is None


def test_dataset_names_leave_out_upload_prefixes():
    from transfer_core import TrainConfig
    from transfer_core.insight.compare import dataset_name

    assert dataset_name(TrainConfig(data="/home/me/photos/")) == "photos"
    assert dataset_name(TrainConfig(data="/w/uploads/0123456789abcdef-ants and bees.zip")) == "ants and bees.zip"
    assert dataset_name(TrainConfig(data="/w/uploads/classes-0123456789")) == "images added by class"
    assert dataset_name(TrainConfig(data="/w/lists/labels.csv")) == "labels.csv"


def test_shootout_verdict_says_when_differences_are_within_noise():
    from transfer_core.insight.shootout import shootout_verdict

    close = shootout_verdict({"lite0": 0.88, "lite1": 0.90, "lite2": 0.60, "offline": None}, 50)
    assert close.startswith("lite1 scored highest") and "lite0 is within noise" in close and "lite2" not in close
    clear = shootout_verdict({"lite0": 0.95, "lite1": 0.70}, 2000)
    assert clear.startswith("lite0 is ahead") and "more than" in clear
    assert shootout_verdict({"lite0": 0.9, "offline": None}, 50) is None


def test_separation_verdict_says_that_higher_is_better():
    from transfer_core.insight.embedding_map import separation_verdict

    assert "higher is better" in separation_verdict(0.21, 0.48) and "easier to tell apart" in separation_verdict(0.21, 0.48)
    assert "harder to tell apart" in separation_verdict(0.40, 0.30)
    assert "hardly changed" in separation_verdict(0.30, 0.31)
    assert separation_verdict(None, None) is None


def test_predict_inputs_expand_folders_and_zips(tmp_path):
    root = write_dataset(tmp_path / "imgs", per_class=2)
    (root / "red" / ".hidden.png").write_bytes(b"x")
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(root / "red" / "red_0.png", "inside/red_0.png")
        zf.writestr("inside/readme.txt", "hi")
    files = expand_inputs([root, archive, tmp_path / "loose.jpg"])
    assert len(files) == 6 + 1 + 1 and files[-1].endswith("loose.jpg")
    predictions = Predictor(TransferModel(get_backbone(TINY).build(False), 2), ["a", "b"], get_backbone(TINY).preprocessing).predict_files(files[-2:])
    rows = predictions_table(predictions)
    assert rows[0]["predicted"] in ("a", "b") and rows[0]["error"] == "" and "class_2" in rows[0]
    assert rows[1]["predicted"] == "" and rows[1]["error"] == "file not found"
