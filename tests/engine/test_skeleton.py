"""Networks built as skeletons for pretrained weights: the same network as built and loaded, in any thread."""

import threading
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torchvision.models import get_model

from transfer_core import get_backbone
from transfer_core.models import catalogs
from transfer_core.models.skeleton import built_with_weights, skeleton


def _seeded_resnet18_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return get_model("resnet18", weights=None).state_dict()


def test_a_skeleton_holding_the_weights_is_the_network_built_and_loaded():
    weights = _seeded_resnet18_weights()
    ordinary = get_model("resnet18", weights=None)
    ordinary.load_state_dict(weights)
    built = built_with_weights(lambda: get_model("resnet18", weights=None), weights)
    assert not any(t.is_meta for t in [*built.parameters(), *built.buffers()])
    assert built.state_dict().keys() == weights.keys()
    assert all(torch.equal(built.state_dict()[k], weights[k]) for k in weights)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in built.parameters())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(built.eval()(x), ordinary.eval()(x))


class _WithComputedBuffer(nn.Module):
    """Like models that compute a lookup table in their constructor and leave it out of the state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.register_buffer("table", torch.arange(4.0), persistent=False)


class _WithTensorAttribute(_WithComputedBuffer):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.full((4,), 2.0)


class _NeedsNumbers(_WithComputedBuffer):
    def __init__(self) -> None:
        super().__init__()
        self.width = int(self.table.sum().item())


@pytest.mark.parametrize("model", [_WithComputedBuffer, _WithTensorAttribute, _NeedsNumbers])
def test_a_network_that_cannot_be_a_skeleton_is_built_the_ordinary_way(model):
    weights = model().state_dict()
    built = built_with_weights(model, weights)
    assert torch.equal(built.table, torch.arange(4.0))
    assert torch.equal(built.linear.weight, weights["linear.weight"])
    assert not any(t.is_meta for m in built.modules() for t in vars(m).values() if isinstance(t, torch.Tensor))


def test_a_skeleton_in_one_thread_leaves_models_built_in_another_initialised():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def build_skeleton():
        with skeleton():
            seen["skeleton"] = nn.Linear(8, 8).weight
            inside.set()
            done.wait(10)

    worker = threading.Thread(target=build_skeleton)
    worker.start()
    assert inside.wait(10)
    try:
        torch.manual_seed(0)
        here = nn.Linear(8, 8).weight
    finally:
        done.set()
        worker.join()
    assert seen["skeleton"].is_meta
    assert here.device.type == "cpu" and here.abs().sum() > 0


def test_torchvision_backbones_with_weights_on_the_machine_are_built_as_skeletons(monkeypatch):
    weights = _seeded_resnet18_weights()
    monkeypatch.setattr(catalogs, "_torchvision_weights", lambda name: SimpleNamespace(get_state_dict=lambda **_: weights))
    backbone = get_backbone("resnet18").build(pretrained=True)
    got = list(backbone.state_dict().values())
    assert not any(t.is_meta for t in got)
    convs = [t for t in got if t.ndim == 4]
    assert len(convs) == sum(1 for t in weights.values() if t.ndim == 4)
    assert torch.equal(convs[0], weights["conv1.weight"]) and torch.equal(convs[-1], weights["layer4.1.conv2.weight"])
    assert convs[0].data_ptr() == weights["conv1.weight"].data_ptr()  # assigned as loaded, not copied into a built model
