"""int8 ONNX exports (calibrated on training images, judged by the accuracy they keep) and measured latency."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from transfer_core.cli import main
from transfer_core.deploy import quantize
from transfer_core.deploy.export import export_run
from transfer_core.deploy.latency import LATENCY_FILE, measure_latency, read_latency
from transfer_core.deploy.model_card import DEPLOYMENT_HEADING, add_deployment_section
from transfer_core.deploy.verify import INT8_ACCURACY_DROP, FormatAgreement, describe, verify_export

from ..conftest import train_tiny_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("int8"), per_class=12)


def test_int8_file_is_quantized_loads_and_keeps_the_accuracy(tiny_run, tmp_path, monkeypatch):
    seen = []
    real = quantize.calibration_batches

    def recording(train, inputs, **kwargs):
        seen.extend(r.path for r in train.records)
        return real(train, inputs, **kwargs)

    monkeypatch.setattr("transfer_core.deploy.export.calibration_batches", recording)
    folder = export_run(tiny_run, ("onnx", "onnx-int8"), out_dir=tmp_path / "export")
    from transfer_core.data.splits import load_run_split

    train, val = load_run_split(tiny_run.read_config())
    assert seen and set(seen) <= {r.path for r in train.records} and not set(seen) & {r.path for r in val.records}
    int8, float32 = folder / "model.int8.onnx", folder / "model.onnx"
    ops = {node.op_type for node in __import__("onnx").load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    session = onnxruntime.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    probabilities = session.run(None, {"image": np.zeros((2, *shape[1:]), dtype=np.float32)})[0]
    assert probabilities.shape[0] == 2 and np.allclose(probabilities.sum(1), 1, atol=1e-3)
    checks = {c.format: c for c in verify_export(tiny_run, folder)}
    assert checks["onnx"].ok and not checks["onnx"].quantized
    quantized = checks["onnx-int8"]
    assert quantized.quantized and quantized.error is None and quantized.agreement >= 0.9
    assert quantized.ok == (quantized.engine_accuracy - quantized.accuracy <= INT8_ACCURACY_DROP)
    assert "the same class as the float model" in describe(quantized)


def test_an_int8_check_that_loses_accuracy_says_prefer_the_float_model():
    lossy = FormatAgreement("onnx-int8", 100, 0.9, 0.3, accuracy=0.80, engine_accuracy=0.85, quantized=True)
    assert not lossy.ok and "prefer the float model" in describe(lossy)
    assert "-5.0 points" in describe(lossy)


def test_latency_is_measured_per_file_kept_beside_it_and_cleared_by_a_new_export(tiny_run, tmp_path):
    folder = export_run(tiny_run, ("onnx", "onnx-int8", "torchscript", "safetensors", "card"), out_dir=tmp_path / "export")
    side = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"]).get_inputs()[0].shape[-1]
    costs = measure_latency(folder, side, repeats=2)
    assert [c.format for c in costs] == ["onnx", "onnx-int8", "torchscript", "safetensors"]
    assert all(c.error is None and c.ms_per_image_batch1 > 0 and c.ms_per_image_batch32 > 0 and c.megabytes > 0 for c in costs)
    assert read_latency(folder) == costs
    add_deployment_section(folder, verify_export(tiny_run, folder), costs)
    add_deployment_section(folder, verify_export(tiny_run, folder), costs)  # replaced, not repeated
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.count(DEPLOYMENT_HEADING) == 1 and "ms per image, batch 32" in card and "onnx-int8" in card
    export_run(tiny_run, ("onnx",), out_dir=folder)
    assert not (folder / LATENCY_FILE).exists()  # the files changed: old timings would mislead


def test_cli_export_prints_the_int8_check_and_the_costs(tiny_run, tmp_path, capsys):
    code = main(["export", str(tiny_run.path), "--format", "onnx,onnx-int8", "--out", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "onnx-int8: the same class as the float model" in out and "| onnx-int8 | model.int8.onnx |" in out
