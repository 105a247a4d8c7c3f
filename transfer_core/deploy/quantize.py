"""int8 ONNX: static quantisation of the exported float model, calibrated on training images.

A float ONNX model stores every weight in 32 bits and computes in floats. Static quantisation
(ONNX Runtime's ``quantize_static``) stores weights as int8, per output channel (a convolution's
channels have very different ranges, so one scale each keeps far more precision than one per
tensor), and runs activations in uint8 with ranges measured beforehand on calibration images:
here, evaluation crops of up to :data:`CALIBRATION_IMAGES` training images (the images the model
will look like in use; never validation images, which must stay an honest check). The QDQ format
(QuantizeLinear / DequantizeLinear pairs around each operator) is the one every current runtime
(ONNX Runtime, TensorRT, OpenVINO) reads.

The final softmax and the temperature division stay in floats: quantising probabilities would
round small ones to zero.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np

from ..data.images import ImageReadError, open_rgb
from ..data.records import DatasetIndex
from ..errors import WarmstartError

__all__ = ["CALIBRATION_IMAGES", "calibration_batches", "quantize_onnx"]

CALIBRATION_IMAGES = 64  # ranges settle well before this; more only slows the export


def calibration_batches(train: DatasetIndex, inputs, limit: int = CALIBRATION_IMAGES, batch_size: int = 16,
                        seed: int = 0) -> list[np.ndarray]:
    """Normalised evaluation crops of up to ``limit`` training images, drawn at random across classes.

    Args:
        inputs: ``inputs(images) -> (n, 3, S, S)`` normalised batch (a Predictor's ``inputs``), so the
            crops are exactly what the exported model is fed.
    """
    records = list(train.records)
    random.Random(seed).shuffle(records)
    images = []
    for record in records:
        if len(images) >= limit:
            break
        try:
            images.append(open_rgb(record.path))
        except ImageReadError:
            continue
    if not images:
        raise WarmstartError("No readable training images to calibrate the int8 model on.")
    return [inputs(images[i : i + batch_size]).float().numpy() for i in range(0, len(images), batch_size)]


class _Reader:
    """ONNX Runtime's calibration data reader protocol over prepared batches (``rewind`` starts them over)."""

    def __init__(self, batches: list[np.ndarray], input_name: str) -> None:
        self._batches, self._name = batches, input_name
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return {self._name: self._batches[self._next - 1]}

    def rewind(self) -> None:
        self._next = 0


def quantize_onnx(float_model: str | Path, out: str | Path, batches: list[np.ndarray], input_name: str = "image") -> Path:
    """Write the int8 (QDQ, per-channel weights) version of ``float_model`` to ``out``.

    Raises:
        WarmstartError: onnxruntime's quantisation tools are missing, or quantisation fails.
    """
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static
    except ImportError:
        raise WarmstartError("onnxruntime (with its quantization tools) is not installed, so no int8 model can be made.") from None
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:
            # Shape inference and graph fusions first (BatchNorm into Conv), as ONNX Runtime recommends before quantising.
            quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared), str(out), _Reader(batches, input_name), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                op_types_to_quantize=["Conv", "MatMul", "Gemm", "Add", "Mul", "GlobalAveragePool", "Relu", "Clip"],
            )
        except WarmstartError:
            raise
        except Exception as exc:  # the quantiser raises anything from onnx, numpy or its own checks
            raise WarmstartError(f"int8 quantisation failed ({type(exc).__name__}: {exc}).") from None
    return Path(out)
