"""Temperature scaling: the fit, ECE, honest cross-fitting, the trainer's report and every place probabilities leave."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from transfer_core import Predictor, RunDir, Trainer, TrainConfig, WarmstartError, evaluate_run
from transfer_core.cli import main
from transfer_core.deploy.export import export_run, load_exported
from transfer_core.deploy.verify import verify_export
from transfer_core.insight import calibration
from transfer_core.insight.calibration import (
    calibrate,
    calibrated_probabilities,
    confidence_metrics,
    cross_fitted_probabilities,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from transfer_core.models.metadata import ModelInfo

from ..conftest import TINY, write_dataset


def _sampled(n: int, k: int, true_temperature: float, scale: float = 3.0, seed: int = 0):
    """Logits and labels drawn from softmax(logits / true_temperature): a model off by exactly that temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, size=(n, k))
    probabilities = calibrated_probabilities(logits, true_temperature)
    labels = (rng.random((n, 1)) > probabilities.cumsum(1)).sum(1)
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_the_fit_recovers_a_known_temperature(true_temperature):
    logits, labels = _sampled(20_000, 5, true_temperature)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    # it is the minimum: a little either side is worse
    assert negative_log_likelihood(logits, labels, fitted) < negative_log_likelihood(logits, labels, fitted * 1.1)
    assert negative_log_likelihood(logits, labels, fitted) < negative_log_likelihood(logits, labels, fitted / 1.1)


def test_ece_is_near_zero_for_calibrated_data_and_large_for_overconfident_data():
    logits, labels = _sampled(100_000, 4, 1.0)
    assert expected_calibration_error(calibrated_probabilities(logits, 1.0), labels) < 0.01
    overconfident = calibrated_probabilities(logits, 0.3)  # the same model, three times too sure
    assert expected_calibration_error(overconfident, labels) > 0.1


def test_ece_and_bins_follow_the_standard_definition():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    labels = [0, 1, 1, 0]  # 0.9-bin: one right of two; 0.6-bin: both right
    bins = reliability_bins(probabilities, labels)
    assert [(b["count"], b["accuracy"]) for b in bins] == [(2, 1.0), (2, 0.5)]
    assert bins[0]["lower"] == pytest.approx(8 / 15) and bins[0]["upper"] == pytest.approx(9 / 15)
    assert bins[0]["confidence"] == pytest.approx(0.6) and bins[1]["confidence"] == pytest.approx(0.9)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert confidence_metrics(probabilities, labels)["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.6, 0.6])))


def test_temperature_never_changes_the_predicted_class():
    logits = np.random.default_rng(1).normal(0, 4, size=(500, 7))
    for temperature in (0.05, 0.3, 1.0, 4.0, 20.0):
        probabilities = calibrated_probabilities(logits, temperature)
        assert np.array_equal(probabilities.argmax(1), logits.argmax(1))
        assert np.allclose(probabilities.sum(1), 1.0)


def test_the_after_numbers_are_cross_fitted_and_the_shipped_temperature_uses_every_image(monkeypatch):
    fitted_on = []
    real_fit = calibration.fit_temperature

    def recording(logits, targets, *args):
        fitted_on.append(len(targets))
        return real_fit(logits, targets, *args)

    monkeypatch.setattr(calibration, "fit_temperature", recording)
    logits, labels = _sampled(40, 3, 2.0, seed=3)
    result = calibrate(logits, labels)
    assert result.folds == 5 and sorted(fitted_on) == [32, 32, 32, 32, 32, 40]  # five held-out folds, then all 40
    assert result.temperature == pytest.approx(real_fit(logits, labels))
    assert result.after == confidence_metrics(cross_fitted_probabilities(logits, labels, 5), labels)
    in_sample = confidence_metrics(calibrated_probabilities(logits, result.temperature), labels)
    assert result.after["nll"] != pytest.approx(in_sample["nll"])  # not measured on the images it was fitted on
    assert result.before == confidence_metrics(calibrated_probabilities(logits, 1.0), labels)

    fitted_on.clear()
    wrong = int(np.flatnonzero(logits.argmax(1) != labels)[0])
    rows = [wrong] + [i for i in range(40) if i != wrong][:8]  # nine images, one of them a mistake (something to fit)
    small = calibrate(logits[rows], labels[rows])  # a tiny set: fewer folds, each held-out fold still 4+ images
    assert small.folds == 2 and sorted(fitted_on) == [4, 5, 9]


def test_sets_too_small_or_outputs_not_finite_keep_temperature_one():
    logits, labels = _sampled(7, 3, 2.0)
    tiny = calibrate(logits, labels).to_dict()
    assert tiny["temperature"] == 1.0 and "Only 7 validation images" in tiny["reason"] and "after" not in tiny
    logits, labels = _sampled(30, 3, 2.0)
    logits[0, 0] = np.nan
    assert "not finite" in calibrate(logits, labels).to_dict()["reason"]
    with pytest.raises(WarmstartError, match="outside the 3 classes"):
        fit_temperature(logits[1:], [5] * 29)


def test_old_model_json_reads_temperature_one_and_a_bad_one_is_refused():
    info = ModelInfo.from_dict(
        {"backbone": TINY, "classes": ["a", "b"], "preprocessing": {"input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}}, "m"
    )
    assert info.temperature == 1.0
    for bad in (0, -1.5, "2", float("nan"), True):
        with pytest.raises(WarmstartError, match="'temperature' must be a positive number"):
            ModelInfo.from_dict({**info.to_dict(), "temperature": bad}, "m")
    assert ModelInfo.from_dict({**info.to_dict(), "temperature": 1.7}, "m").temperature == 1.7


# -- a trained tiny run ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> RunDir:
    root = tmp_path_factory.mktemp("calibration")
    data = write_dataset(root / "colors", per_class=14)
    classes = sorted(p for p in data.iterdir() if p.is_dir())
    for source, target in zip(classes, classes[1:] + classes[:1]):  # a few wrong labels: mistakes to calibrate against
        for image in sorted(source.iterdir())[:3]:
            image.rename(target / f"mislabelled-{source.name}-{image.name}")
    config = TrainConfig(data=str(data), backbone=TINY, epochs=3, batch_size=8, lr=0.3, val_split=0.3, head_warmup_epochs=0)
    return Trainer(config, root / "run").fit().run


def _set_temperature(run: RunDir, temperature: float | None) -> None:
    values = run.read_model_info()
    values.pop("temperature", None)
    if temperature is not None:
        values["temperature"] = temperature
    run.model_file.write_text(json.dumps(values))


def test_a_run_stores_its_temperature_and_reports_before_and_after(tiny_run):
    report = tiny_run.read_report()
    stored = report["calibration"]
    temperature = tiny_run.read_model_info()["temperature"]
    assert stored["temperature"] == temperature and stored["images"] == report["val_size"] == 12
    assert stored["folds"] == 3 and stored["after_measured"] == "cross-fitted"
    for when in ("before", "after"):
        assert sum(b["count"] for b in stored[when]["bins"]) == 12 and 0 <= stored[when]["ece"] <= 1
    predictor = Predictor.from_run(tiny_run)
    assert predictor.temperature == temperature
    # predictions.json carries the calibrated confidence the predictor gives, and the same classes
    predictions = {p["path"]: p for p in tiny_run.read_predictions()}
    evaluated = evaluate_run(tiny_run)
    for row in evaluated["predictions"]:
        saved = predictions[row["path"]]
        assert saved["predicted"] == row["predicted"] and saved["confidence"] == pytest.approx(row["confidence"], abs=1e-4)
    assert evaluated["confidence"]["fitted_on_these_images"] == (temperature != 1.0)


def test_exports_give_the_engines_calibrated_probabilities(tiny_run, tmp_path):
    _set_temperature(tiny_run, 2.7)
    try:
        folder = export_run(tiny_run, ("onnx", "torchscript", "safetensors"), tmp_path / "export")
        assert json.loads((folder / "model.json").read_text())["temperature"] == 2.7
        engine = Predictor.from_run(tiny_run)
        batch = engine.inputs(views=engine.views([_image(i) for i in range(6)]))
        expected = engine.probabilities(inputs=batch)
        plain = engine.model(batch).softmax(1).detach().numpy()
        assert np.abs(expected - plain).max() > 1e-3  # T = 2.7 really changed the numbers
        assert np.array_equal(expected.argmax(1), plain.argmax(1))
        session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        onnx_out = session.run(None, {"image": batch.numpy()})[0]
        scripted = torch.jit.load(str(folder / "model.torchscript.pt")).eval()
        with torch.inference_mode():
            script_out = scripted(batch).numpy()
        loaded = load_exported(folder)
        assert loaded.temperature == 2.7
        for got in (onnx_out, script_out, loaded.probabilities(inputs=batch)):
            assert np.abs(got - expected).max() < 1e-5
        assert all(result.ok for result in verify_export(tiny_run, folder))
    finally:
        _set_temperature(tiny_run, tiny_run.read_report()["calibration"]["temperature"])


def test_an_old_run_without_temperature_loads_with_one(tiny_run):
    _set_temperature(tiny_run, None)
    try:
        engine = Predictor.from_run(tiny_run)
        assert engine.temperature == 1.0
        batch = engine.inputs(views=engine.views([_image(0)]))
        assert np.abs(engine.probabilities(inputs=batch) - engine.model(batch).softmax(1).detach().numpy()).max() < 1e-5
    finally:
        _set_temperature(tiny_run, tiny_run.read_report()["calibration"]["temperature"])


def test_cli_evaluate_reports_the_cross_fitted_numbers_on_the_validation_set(tiny_run, capsys, tmp_path):
    assert main(["evaluate", str(tiny_run.path)]) == 0
    out = capsys.readouterr().out
    stored = tiny_run.read_report()["calibration"]
    assert f"Temperature {stored['temperature']:.2f}" in out and "cross-fitting over 3 folds" in out
    other = write_dataset(tmp_path / "other", per_class=3)
    assert main(["evaluate", str(tiny_run.path), str(other)]) == 0
    assert f"confidence at temperature {stored['temperature']:.2f}: expected calibration error" in capsys.readouterr().out


def _image(seed: int):
    from ..conftest import COLORS, make_image

    return make_image(list(COLORS.values())[seed % 3], seed=500 + seed)


def test_the_model_card_has_a_calibration_line_only_when_the_run_was_calibrated(tiny_run, tmp_path):
    stored = tiny_run.read_report()["calibration"]
    card = (export_run(tiny_run, ("card",), tmp_path / "card") / "MODEL_CARD.md").read_text(encoding="utf-8")
    line = next(line for line in card.splitlines() if line.startswith("- Calibration:"))
    assert f"Temperature {stored['temperature']:.2f}" in line
    assert f"{stored['before']['ece']:.1%} before, {stored['after']['ece']:.1%} after" in line
    report = tiny_run.read_report()
    try:
        del report["calibration"]  # a run from before calibration
        tiny_run.report_file.write_text(json.dumps(report))
        old = (export_run(tiny_run, ("card",), tmp_path / "old") / "MODEL_CARD.md").read_text(encoding="utf-8")
        assert "Calibration" not in old
    finally:
        tiny_run.report_file.write_text(json.dumps({**report, "calibration": stored}))


def test_a_validation_set_without_mistakes_keeps_temperature_one():
    """Every image right: the NLL falls forever as T shrinks, so the 'fit' would be the search's edge
    (T = 0.05, a model twenty times surer of itself on new images). Nothing to fit: T stays 1, said why."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    logits = rng.normal(0.0, 1.0, (40, 3))
    logits[np.arange(40), labels] += 4.0  # always the highest
    assert fit_temperature(logits, labels) == 1.0
    result = calibrate(logits, labels)
    assert result.temperature == 1.0 and "right on all 40" in result.reason
    logits[0, (labels[0] + 1) % 3] += 10.0  # one confident mistake: now there is something to fit
    assert calibrate(logits, labels).temperature > 1.0
