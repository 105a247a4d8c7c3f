"""What a backbone is: a feature extractor in stages, its preprocessing, and the spec that builds it.

Every backbone is wrapped as a :class:`Backbone`: an ordered list of *stages* (run one after
the other, so the output of a frozen prefix can be cached) followed by a pooling module that
returns one feature vector per image, and a list of *groups* of parameter names, from input
to output, which are the unit of freezing ("train the last N blocks"). A :class:`BackboneSpec`
is the registered value: builder, weights source, preprocessing and the metadata users see.
The catalogues that fill the registry live in :mod:`.catalogs`, the lookup in :mod:`.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import torch
from torch import nn

from ..errors import WarmstartError

__all__ = ["DEFAULT_BACKBONE", "Availability", "Backbone", "BackboneSpec", "Preprocessing", "WeightsSource"]

DEFAULT_BACKBONE = "efficientnet_lite0"  # bundled, so it works offline


class WeightsSource(StrEnum):
    BUNDLED = "bundled"
    TORCHVISION = "torchvision"
    TIMM = "timm"
    LOCAL = "local"  # models defined in code (tests, from-scratch baselines)


class Availability(StrEnum):
    BUNDLED = "bundled"
    CACHED = "cached"
    DOWNLOAD = "needs download"


@dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared for this backbone's pretrained weights."""

    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"

    def to_dict(self) -> dict:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, values: dict) -> Preprocessing:
        return cls(
            input_size=int(values["input_size"]),
            mean=tuple(values["mean"]),
            std=tuple(values["std"]),
            crop_pct=float(values.get("crop_pct", 0.875)),
            interpolation=values.get("interpolation", "bilinear"),
        )


class Backbone(nn.Module):
    """A feature extractor split into sequential stages, plus the groups used for freezing.

    Args:
        stages: modules applied in order to the image batch.
        pool: turns the last stage's output into ``(batch, num_features)``.
        num_features: width of the pooled feature vector.
        groups: parameter names (relative to this module) per freezing group, input first;
            by default one group per stage, with the pool's parameters in the last group.
    """

    def __init__(
        self,
        stages: list[nn.Module],
        pool: nn.Module,
        num_features: int,
        groups: list[list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.pool = pool
        self.num_features = num_features
        if groups is None:
            groups = [[f"stages.{i}.{n}" for n, _ in stage.named_parameters()] for i, stage in enumerate(stages)]
            groups[-1] += [f"pool.{n}" for n, _ in pool.named_parameters()]
        self.groups = [g for g in groups if g]
        self.stage_aligned = len(self.groups) == len(stages)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Pooled features; ``start`` skips stages whose output was precomputed into ``x``."""
        for stage in self.stages[start:]:
            x = stage(x)
        return self.pool(x)

    def forward_prefix(self, x: torch.Tensor, end: int) -> torch.Tensor:
        """Output of the first ``end`` stages (the input of stage ``end``)."""
        for stage in self.stages[:end]:
            x = stage(x)
        return x

    def group_parameters(self) -> list[list[nn.Parameter]]:
        params = dict(self.named_parameters())
        return [[params[name] for name in group] for group in self.groups]


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: metadata shown to users plus the builder.

    ``build(pretrained=True)`` returns a :class:`Backbone` with the weights loaded;
    ``pretrained=False`` gives the same architecture randomly initialised (used to rebuild a
    trained run before loading its own weights, and for from-scratch baselines).
    """

    name: str
    source: WeightsSource
    description: str
    preprocessing: Preprocessing
    builder: Callable[[bool], Backbone] = field(repr=False, compare=False)
    params: int | None = None
    imagenet_top1: float | None = None
    licence: str = ""
    weights_file: Callable[[], Path | None] | None = field(default=None, repr=False, compare=False)

    def availability(self) -> Availability:
        if self.source in (WeightsSource.BUNDLED, WeightsSource.LOCAL):
            return Availability.BUNDLED
        locate = self.weights_file
        path = locate() if locate else None
        return Availability.CACHED if path and path.exists() else Availability.DOWNLOAD

    def build(self, pretrained: bool = True) -> Backbone:
        if not pretrained:
            return self.builder(False)
        try:
            return self.builder(True)
        except WarmstartError:
            raise
        except Exception as exc:  # network and cache errors differ across libraries
            if self.availability() is Availability.DOWNLOAD:
                raise WarmstartError(
                    f"Weights for '{self.name}' are not on this machine and could not be downloaded "
                    f"({type(exc).__name__}); connect to the internet once or choose a bundled backbone "
                    f"such as {DEFAULT_BACKBONE}."
                ) from exc
            raise WarmstartError(f"Could not load the weights of '{self.name}': {exc}.") from exc

    def to_dict(self) -> dict:
        """Metadata as a flat dict (one table row)."""
        return {
            "name": self.name,
            "source": self.source.value,
            "description": self.description,
            "params_millions": round(self.params / 1e6, 2) if self.params else None,
            "imagenet_top1": self.imagenet_top1,
            "input_size": self.preprocessing.input_size,
            "availability": self.availability().value,
            "licence": self.licence,
        }
