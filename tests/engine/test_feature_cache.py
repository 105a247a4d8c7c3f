"""Several image sets through the shared feature cache at once (``encode_cached_sets``)."""

from __future__ import annotations

import pytest
import torch

from transfer_core import get_backbone, load_train_val
from transfer_core.data.augment import eval_transform
from transfer_core.data.decode import cache_side_for
from transfer_core.data.image_cache import LabeledImages, shared_image_cache
from transfer_core.features import cache as feature_cache
from transfer_core.features import cpu_runtime
from transfer_core.features.inference import run_inference
from transfer_core.randomness import seeded_scope

from ..conftest import TINY

@pytest.fixture
def sets(color_dataset, monkeypatch, tmp_path):
    """The tiny backbone, three image sets (3, 4 and 2 images), an empty shared cache and a record of passes."""
    monkeypatch.setenv("WARMSTART_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cpu_runtime, "_SESSIONS", cpu_runtime.OrderedDict())
    spec = get_backbone(TINY)
    with seeded_scope(0):
        backbone = spec.build(pretrained=False).eval()
    train, _ = load_train_val(color_dataset)
    classes = {c: i for i, c in enumerate(train.classes)}
    cache = shared_image_cache(cache_side_for(spec.preprocessing.input_size))
    images = LabeledImages(train.records[:9], classes, cache, eval_transform(spec.preprocessing))
    shared = feature_cache.FeatureCache(10**8)
    monkeypatch.setattr(feature_cache, "_SHARED", shared)
    passes: list[int] = []
    real = feature_cache.run_inference
    monkeypatch.setattr(feature_cache, "run_inference", lambda forward, inputs, *a, **k: passes.append(len(inputs)) or real(forward, inputs, *a, **k))
    parts = [images.subset(range(0, 3)), images.subset(range(3, 7)), images.subset(range(7, 9))]
    return backbone, parts, shared, passes


def _encode(backbone, parts, **options):
    return feature_cache.encode_cached_sets(
        backbone, parts, ["first", "second", "third"], torch.device("cpu"), join=lambda sets: sets[0].joined(sets[1:]),
        weights=f"{TINY}|sets", **options,
    )


def test_sets_not_cached_yet_run_as_one_pass_and_are_each_cached_under_their_own_key(sets):
    """A frozen run's validation and training images go through the network in one pass (no pause of the
    workers between them), and each set is then found under its own key, as a later job looks it up."""
    backbone, (first, second, third), shared, passes = sets
    shared.put("second", run_inference(backbone, second, module=backbone))  # cached by an earlier job
    passes.clear()
    progress: list[int] = []
    found = _encode(backbone, [first, second, third], on_batch=progress.append)
    assert passes == [5]  # the first and third sets, together
    assert [len(f) for f in found] == [3, 4, 2]
    for name, subset, features in (("first", first, found[0]), ("third", third, found[2])):
        assert (features - run_inference(backbone, subset, module=backbone)).abs().max().item() <= 1e-4
        assert shared.get(name) is features
        assert features.untyped_storage().nbytes() == features.numel() * features.element_size()  # its own memory
    assert progress[0] == 4 and progress[-1] == 9  # the cached set counts as done at once


def test_sets_all_cached_run_nothing(sets):
    backbone, parts, shared, passes = sets
    _encode(backbone, parts)
    passes.clear()
    again = _encode(backbone, parts)
    assert passes == [] and all(a is shared.get(k) for a, k in zip(again, ["first", "second", "third"]))


def test_the_byte_limit_holds_for_each_set_not_for_the_sets_together(sets):
    """The limit was always one set's: four images' worth lets the 3-, 4- and 2-image sets through
    together (nine images' worth in all); three images' worth stops them, and nothing is cached."""
    backbone, parts, shared, _ = sets
    image = backbone.num_features * 4  # one image's pooled features, float32
    assert _encode(backbone, parts, max_bytes=3 * image) is None
    assert len(shared) == 0
    found = _encode(backbone, parts, max_bytes=4 * image)
    assert [len(f) for f in found] == [3, 4, 2]


def test_only_sets_read_from_one_image_cache_can_be_joined(sets, color_dataset):
    _, (first, second, _), _, _ = sets
    elsewhere = second.with_transform(second.transform)
    elsewhere.cache = shared_image_cache(999)
    with pytest.raises(ValueError, match="different decoded-image caches"):
        first.joined([elsewhere])
    joined = first.joined([second])
    assert [r.path for r in joined.records] == [r.path for r in first.records + second.records]
    assert joined.targets == first.targets + second.targets
