"""The metadata that travels with a trained model, checked before the model is used.

A run folder or an exported model says which backbone, which classes (in output order)
and which preprocessing its weights expect. A file edited by hand, truncated, or paired
with the wrong weights would otherwise predict the wrong labels silently; here every
field is checked and the weights are compared name by name and shape by shape first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .registry import Preprocessing
from ..errors import WarmstartError

__all__ = ["ModelInfo", "check_weights"]


@dataclass(frozen=True)
class ModelInfo:
    backbone: str
    classes: list[str]
    preprocessing: Preprocessing
    num_features: int | None = None
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "classes": list(self.classes),
            "preprocessing": self.preprocessing.to_dict(),
            "num_features": self.num_features,
            "dropout": self.dropout,
        }

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
        return cls(backbone, list(classes), pre, int(num_features) if num_features else None, float(values.get("dropout", 0.0)))


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
