"""The metadata that travels with a trained model, checked before the model is used.

A run folder or an exported model says which backbone, which classes (in output order)
and which preprocessing its weights expect. A file edited by hand, truncated, or paired
with the wrong weights would otherwise predict the wrong labels silently; here every
field is checked and the weights are compared name by name and shape by shape first.

:class:`ModelInfo` is the only writer of ``model.json`` (:meth:`ModelInfo.to_json_bytes`) and
:func:`build_model` the only way back from it to a model, so runs and exports cannot drift
into two layouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import WarmstartError
from ..runs.store import json_bytes
from .backbone import Preprocessing
from .registry import get_backbone
from .transfer import TransferModel

__all__ = ["ModelInfo", "build_model", "check_weights"]


@dataclass(frozen=True)
class ModelInfo:
    """What a set of weights is: the backbone, the classes in output order, the preprocessing.

    ``temperature`` divides the logits before the softmax wherever probabilities leave the engine
    (see :mod:`transfer_core.insight.calibration`); files written before calibration existed read as 1.
    """

    backbone: str
    classes: list[str]
    preprocessing: Preprocessing
    num_features: int | None = None
    dropout: float = 0.0
    temperature: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "classes": list(self.classes),
            "preprocessing": self.preprocessing.to_dict(),
            "num_features": self.num_features,
            "dropout": self.dropout,
            "temperature": self.temperature,
        }

    def to_json_bytes(self, **extra: Any) -> bytes:
        """The bytes of a ``model.json``: this description first, then ``extra`` top-level fields.

        The description is read back through :meth:`from_dict` before anything is rendered,
        so a file that the loaders would refuse is never written.

        Args:
            **extra: further fields, e.g. an export's ``format_version``, ``input``, ``recipe``;
                they may not reuse the names of the description's own fields.

        Returns:
            UTF-8 JSON, laid out like every other JSON file of the project.

        Raises:
            ValueError: an extra field reuses a description field's name.
            WarmstartError: the description itself is unusable (e.g. fewer than two classes).
        """
        values = self.to_dict()
        clash = sorted(set(values) & set(extra))
        if clash:
            names = ", ".join(f"'{name}'" for name in clash)
            raise ValueError(f"{names} describe the model itself; set them on ModelInfo, not as extra model.json fields.")
        ModelInfo.from_dict(values, "model.json")
        return json_bytes({**values, **extra})

    @classmethod
    def from_dict(cls, values: Any, source: str) -> ModelInfo:
        """Validate ``model.json`` contents; ``source`` names the file in messages."""

        def bad(problem: str) -> WarmstartError:
            return WarmstartError(f"'{source}' is not usable model metadata: {problem}.")

        if not isinstance(values, dict):
            raise bad("it is not a JSON object")
        backbone, classes = values.get("backbone"), values.get("classes")
        if not isinstance(backbone, str) or not backbone:
            raise bad("'backbone' is missing")
        if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
            raise bad("'classes' must list at least two class names")
        if len(set(classes)) != len(classes):
            raise bad("'classes' has duplicate names")
        try:
            pre = Preprocessing.from_dict(values["preprocessing"])
        except (KeyError, TypeError, ValueError):
            raise bad("'preprocessing' needs input_size, mean and std") from None
        if not (16 <= pre.input_size <= 4096 and len(pre.mean) == 3 and len(pre.std) == 3 and all(s > 0 for s in pre.std)):
            raise bad("'preprocessing' has an impossible input size, mean or std")
        num_features = values.get("num_features")
        temperature = values.get("temperature", 1.0)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
            raise bad("'temperature' must be a positive number")
        return cls(backbone, list(classes), pre, int(num_features) if num_features else None, float(values.get("dropout", 0.0)),
                   float(temperature))


def check_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights whose names or shapes differ from ``model``'s, saying how they differ."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or wrong):
        return
    head = [k for k in wrong if k.startswith("head.") and state[k].shape[0] != expected[k].shape[0]]
    if head and len(wrong) == len(head) and not (missing or unexpected):
        k = head[0]
        raise WarmstartError(
            f"The weights in '{source}' have {state[k].shape[0]} outputs but the metadata lists "
            f"{expected[k].shape[0]} classes; the metadata and weights do not belong together."
        )
    detail = wrong[:1] or missing[:1] or unexpected[:1]
    raise WarmstartError(
        f"The weights in '{source}' do not fit the backbone named in the metadata "
        f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} of another shape, e.g. '{detail[0]}')."
    )


def build_model(
    info: ModelInfo, state: dict[str, torch.Tensor] | None = None, *, source: str = "the state dict"
) -> TransferModel:
    """The model ``info`` describes, in eval mode, with ``state`` loaded once it is checked to fit.

    The backbone is built without pretrained weights (nothing is downloaded): the trained
    weights in ``state`` replace all of them anyway.

    Args:
        info: backbone, classes and dropout of the model.
        state: its weights; ``None`` leaves the model randomly initialised.
        source: where ``state`` came from (a file name), for error messages.

    Returns:
        The :class:`TransferModel`, ready for inference.

    Raises:
        WarmstartError: unknown backbone, or weights that do not fit the metadata (see :func:`check_weights`).
    """
    model = TransferModel(get_backbone(info.backbone).build(pretrained=False), len(info.classes), info.dropout)
    if state is not None:
        check_weights(model, state, source)
        model.load_state_dict(state)
    return model.eval()
