"""Test-time augmentation: the views, their average, the changes it makes both ways, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as F

from transfer_core import Predictor, RunDir, Trainer, WarmstartError, compare_tta
from transfer_core.cli import main
from transfer_core.data.decode import cache_side_for, shrink_to_tensor
from transfer_core.deploy.tta import TTA_VIEWS, tta_changes, tta_probabilities, tta_views, view_probabilities
from transfer_core.models.registry import Preprocessing

from ..conftest import make_image, write_dataset


@pytest.fixture
def trained_run(tiny_config, tmp_path):
    Trainer(tiny_config.replace(epochs=4), tmp_path / "run").fit()
    return tmp_path / "run"


def _oblong() -> Image.Image:
    """A 60 x 40 image whose every region differs: a horizontal and a vertical gradient plus noise."""
    x, y = np.meshgrid(np.linspace(0, 255, 60), np.linspace(0, 255, 40))
    noise = np.random.default_rng(0).integers(0, 40, (40, 60))
    return Image.fromarray(np.stack([x, y, noise], axis=-1).astype(np.uint8), "RGB")


def test_views_are_the_evaluation_crop_its_mirror_and_the_corners_of_the_same_resize():
    pre = Preprocessing(input_size=32)
    image = shrink_to_tensor(_oblong(), cache_side_for(32, pre.crop_pct))
    views = tta_views(image, pre)
    assert views.shape == (6, 3, 32, 32) and views.dtype == torch.uint8 and len(TTA_VIEWS) == 6
    predictor = Predictor(nn.Conv2d(3, 2, 1), ["a", "b"], pre)
    assert torch.equal(views[0], predictor.views([_oblong()])[0])  # the plain prediction's own crop
    assert torch.equal(views[1], views[0].flip(-1))
    resized = F.resize(image, [37], antialias=True)  # short side 32 / 0.875 → 37
    assert resized.shape[-2] == 37 and resized.shape[-1] > 37
    assert torch.equal(views[2], resized[:, :32, :32]) and torch.equal(views[3], resized[:, :32, -32:])
    assert torch.equal(views[4], resized[:, -32:, :32]) and torch.equal(views[5], resized[:, -32:, -32:])
    assert len({v.numpy().tobytes() for v in views}) == 6


def test_tta_is_the_mean_of_each_view_predicted_alone(trained_run):
    predictor = Predictor.from_run(trained_run)
    images = [_oblong(), make_image((200, 40, 40), size=(50, 30), seed=5), make_image((40, 60, 200), seed=6)]
    seen = []
    per_view = view_probabilities(predictor, images, on_batch=seen.append)
    assert per_view.shape == (6, 3, 3) and seen[-1] == 3
    side = cache_side_for(predictor.preprocessing.input_size, predictor.preprocessing.crop_pct)
    for i, image in enumerate(images):
        views = tta_views(shrink_to_tensor(image, side), predictor.preprocessing)
        alone = predictor.probabilities(inputs=predictor.inputs(views=list(views)))
        assert np.allclose(per_view[:, i], alone, atol=1e-6)
    assert np.allclose(per_view[0], predictor.probabilities(images), atol=1e-6)  # view 0 is the plain prediction
    averaged = predictor.probabilities(images, tta=True)
    assert np.allclose(averaged, per_view.mean(0)) and np.allclose(averaged, tta_probabilities(predictor, images))
    assert not np.allclose(averaged, per_view[0])  # the views do change the answer
    with pytest.raises(WarmstartError, match="pass images, not a prepared batch"):
        predictor.probabilities(inputs=predictor.inputs(images), tta=True)


class _MeanColour(nn.Module):
    """A classifier that sees only an image's mean colour: the same for every view of a one-colour image."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


def test_a_model_that_every_view_looks_the_same_to_gets_the_plain_answer():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        predictor = Predictor(_MeanColour(), ["r", "g", "b"], Preprocessing(input_size=32))
    plain_colours = [Image.new("RGB", (50, 40), colour) for colour in ((200, 40, 40), (10, 250, 90), (90, 90, 90))]
    assert np.allclose(predictor.probabilities(plain_colours, tta=True), predictor.probabilities(plain_colours), atol=1e-6)
    varied = [_oblong()]  # the control: where the views differ, so does the answer
    assert not np.allclose(predictor.probabilities(varied, tta=True), predictor.probabilities(varied), atol=1e-4)


def test_changes_are_reported_both_ways():
    classes = ["cat", "dog", "fox"]
    plain = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    tta = np.array([[0.4, 0.5, 0.1], [0.6, 0.3, 0.1], [0.8, 0.1, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6]])
    targets = [0, 0, 0, 0, 2]  # right→wrong, wrong→right, unchanged, wrong→another wrong, unchanged
    changes = tta_changes(["a", "b", "c", "d", "e"], targets, plain, tta, classes)
    assert [(c.path, c.kind) for c in changes] == [("a", "broken"), ("b", "fixed"), ("d", "still wrong")]
    broken = changes[0]
    assert (broken.true, broken.before, broken.after) == ("cat", "cat", "dog")
    assert (broken.before_confidence, broken.after_confidence) == (0.6, 0.5)


def test_compare_tta_on_the_validation_set_matches_the_plain_evaluation(trained_run):
    run = RunDir(trained_run)
    steps = []
    comparison = compare_tta(trained_run, on_progress=lambda done, total, what: steps.append((done, total, what)))
    report = run.read_report()
    assert len(comparison.paths) == report["val_size"] == 9
    assert comparison.accuracy_plain == report["val_accuracy"]
    saved = {p["path"]: p["predicted"] for p in run.read_predictions()}
    assert [comparison.classes[i] for i in comparison.plain.argmax(1)] == [saved[p] for p in comparison.paths]
    assert 0.0 <= comparison.accuracy_tta <= 1.0
    assert comparison.count("fixed") - comparison.count("broken") == round((comparison.accuracy_tta - comparison.accuracy_plain) * 9)
    assert {what for _, _, what in steps} == {"reading images", "images predicted through 6 views"} and steps[-1][:2] == (9, 9)


def test_compare_tta_refuses_classes_the_model_never_learned(trained_run, tmp_path):
    other = write_dataset(tmp_path / "other", per_class=2, colors={"red": (200, 40, 40), "purple": (120, 20, 160)})
    with pytest.raises(WarmstartError, match="not trained on these classes: purple"):
        compare_tta(trained_run, other)


def test_cli_predict_and_evaluate_with_tta(trained_run, color_dataset, capsys):
    blue = str(color_dataset / "blue" / "blue_0.png")
    assert main(["predict", str(trained_run), blue, "--json", "--tta"]) == 0
    with_tta = json.loads(capsys.readouterr().out)
    expected = Predictor.from_run(trained_run).probabilities([Image.open(blue).convert("RGB")], tta=True)[0].max()
    assert with_tta["top"][0]["probability"] == pytest.approx(float(expected), abs=1e-6)

    assert main(["evaluate", str(trained_run), "--tta"]) == 0
    printed = capsys.readouterr().out
    assert "with test-time augmentation (6 views); without it accuracy" in printed and "TTA fixed" in printed
    assert main(["evaluate", str(trained_run), "--tta", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tta"]["views"] == list(TTA_VIEWS) and len(report["predictions"]) == 9
    assert report["tta"]["val_accuracy_without_tta"] == RunDir(trained_run).read_report()["val_accuracy"]
    assert report["tta"]["fixed"] == sum(c["kind"] == "fixed" for c in report["tta"]["changes"])
