"""Grad-CAM: which parts of an image drove the model toward a class.

The target layer is the output of the backbone's last stage (or ``Backbone.cam_layer`` when a
backbone names a better one), so one implementation serves every family in the catalog:
convolutional maps ``(B, C, H, W)`` are used as they are, channels-last maps ``(B, H, W, C)``
are transposed, and transformer tokens ``(B, N, C)`` lose their class/register tokens and are
folded back into their square patch grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..models.transfer import TransferModel

__all__ = ["cam_target_layer", "grad_cam", "overlay_heatmap"]


def cam_target_layer(model: TransferModel) -> nn.Module:
    """The layer whose activations and gradients Grad-CAM weighs, chosen per backbone.

    Convolutional networks: the last stage's output. Vision transformers pool the class token
    after their last block, so that block's patch tokens get no gradient; their target is the
    normalised input of the last block's attention instead (``ln_1`` in torchvision, ``norm1``
    in timm), where every patch still feeds the class token.
    """
    backbone = model.backbone
    explicit = getattr(backbone, "cam_layer", None)
    if explicit is not None:
        return explicit
    last = backbone.stages[-1]
    if hasattr(last, "ln_1"):  # torchvision ViT encoder block
        return last.ln_1
    blocks = getattr(getattr(last, "model", None), "blocks", None)  # timm ViT-style models
    if isinstance(blocks, nn.Sequential) and len(blocks) and hasattr(blocks[-1], "norm1"):
        return blocks[-1].norm1
    return last


def _as_feature_map(activation: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Any supported activation layout as ``(B, C, h, w)``."""
    if activation.ndim == 4:
        if channels is not None and activation.shape[-1] == channels and activation.shape[1] != channels:
            return activation.permute(0, 3, 1, 2)
        return activation
    if activation.ndim == 3:  # tokens: drop the leading class/register tokens, fold the rest
        n = activation.shape[1]
        side = math.isqrt(n)
        prefix = n - side * side
        grid = activation[:, prefix:, :]
        return grid.transpose(1, 2).reshape(activation.shape[0], -1, side, side)
    raise ValueError(f"Grad-CAM cannot use an activation of shape {tuple(activation.shape)}.")


def grad_cam(model: TransferModel, batch: torch.Tensor, class_indices: Sequence[int] | None = None) -> np.ndarray:
    """Heatmaps in [0, 1] of shape ``(B, H, W)`` (the input's size) for each image's class.

    Args:
        model: a trained model (put in eval mode here; gradients flow even through frozen layers).
        batch: normalised images ``(B, 3, H, W)``.
        class_indices: the class to explain per image; default: each image's predicted class.
    """
    model.eval()
    layer = cam_target_layer(model)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        output = output[0] if isinstance(output, tuple) else output
        output.retain_grad()
        captured["activation"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(batch.detach().clone().requires_grad_(True))
            targets = logits.argmax(1) if class_indices is None else torch.as_tensor(list(class_indices), device=logits.device)
            model.zero_grad(set_to_none=True)
            logits.gather(1, targets.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
    activation = captured["activation"]
    channels = getattr(model.backbone, "num_features", None)
    maps = _as_feature_map(activation.detach(), channels)
    grads = _as_feature_map(activation.grad, channels)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # one importance weight per channel
    cam = F.relu((weights * maps).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=batch.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = cam.flatten(1).min(1).values.view(-1, 1, 1)
    high = cam.flatten(1).max(1).values.view(-1, 1, 1)
    return ((cam - low) / (high - low).clamp(min=1e-8)).cpu().numpy()


# Dark blue -> cyan -> yellow -> red: readable over photos and in grayscale print.
_STOPS = np.array([[0.0, 0, 0, 130], [0.35, 0, 200, 255], [0.65, 255, 230, 0], [1.0, 220, 0, 0]])


def overlay_heatmap(image: Image.Image, heatmap: np.ndarray, opacity: float = 0.45) -> Image.Image:
    """``heatmap`` (values in [0, 1]) coloured and blended over ``image`` (resized to match)."""
    heat = np.asarray(Image.fromarray((heatmap * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR)) / 255.0
    colours = np.stack([np.interp(heat, _STOPS[:, 0], _STOPS[:, c]) for c in (1, 2, 3)], axis=-1)
    base = np.asarray(image.convert("RGB"), dtype=np.float64)
    alpha = opacity * (0.3 + 0.7 * heat[..., None])  # cool regions stay mostly visible
    return Image.fromarray((base * (1 - alpha) + colours * alpha).clip(0, 255).astype(np.uint8))
