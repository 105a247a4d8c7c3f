"""The three-conv test backbone, registered on import (by the tests and by training workers they start)."""

from __future__ import annotations

from torch import nn

from transfer_core.models.registry import Backbone, BackboneSpec, Preprocessing, WeightsSource, register_backbone

TINY = "tiny_cnn"


def _tiny_backbone(pretrained: bool) -> Backbone:
    def block(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

    stages = [block(3, 8), block(8, 16), block(16, 32)]
    return Backbone(stages, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)), 32)


register_backbone(
    BackboneSpec(
        name=TINY,
        source=WeightsSource.LOCAL,
        description="Three-conv test network.",
        preprocessing=Preprocessing(input_size=32),
        builder=_tiny_backbone,
        params=7_000,
        licence="test",
    ),
    replace=True,
)
