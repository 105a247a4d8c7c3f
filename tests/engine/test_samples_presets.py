import pytest

from transfer_core import TrainConfig, WarmstartError, load_dataset
from transfer_core.presets import PRESETS, apply_preset
from transfer_core.data.samples import prepare_sample


def test_digits_sample_is_built_offline_from_real_scans(tmp_path):
    folder = prepare_sample("digits", tmp_path, per_class=4, size=32)
    index = load_dataset(folder)
    assert index.classes == [str(d) for d in range(10)]
    assert set(index.counts().values()) == {4}
    assert prepare_sample("digits", tmp_path, per_class=4, size=32) == folder  # idempotent


def test_download_samples_fail_offline_with_one_sentence(tmp_path):
    with pytest.raises(WarmstartError) as caught:
        prepare_sample("ants_bees", tmp_path, timeout=5)
    message = str(caught.value)
    assert "Could not download" in message and "offline" in message and "\n" not in message
    assert not (tmp_path / "ants_bees").exists()
    with pytest.raises(WarmstartError, match="Unknown sample"):
        prepare_sample("cats", tmp_path)


def test_presets_set_every_recipe_choice_and_keep_the_data():
    base = TrainConfig(data="photos", backbone="efficientnet_lite1", seed=7)
    for name in PRESETS:
        config = apply_preset(base, name)
        backbone = "auto" if name == "Auto" else "efficientnet_lite1"  # Auto's point is choosing the backbone
        assert (config.data, config.backbone, config.seed) == ("photos", backbone, 7)
    assert apply_preset(base, "Auto").replace(backbone="efficientnet_lite1") == apply_preset(base, "Quick")
    assert apply_preset(base, "Quick").strategy.value == "frozen"
    assert apply_preset(base, "Best accuracy").augment.preset_name == "standard"
    with pytest.raises(WarmstartError, match="Unknown preset"):
        apply_preset(base, "Turbo")
