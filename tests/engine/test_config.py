import json

import pytest

from transfer_core import AugmentConfig, Strategy, TrainConfig, WarmstartError


def test_round_trips_through_json():
    config = TrainConfig(data="x", strategy="partial", augment="standard", epochs=4, image_size=160)
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.strategy is Strategy.PARTIAL
    assert again.augment == AugmentConfig.from_preset("standard")


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"strategy": "melt"}, "Unknown strategy 'melt'"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"val_split": 1.5}, "val_split"),
        ({"lr": -1}, "lr must be a positive"),
        ({"dropout": 1.0}, "dropout"),
        ({"device": "tpu"}, "Unknown device 'tpu'"),
        ({"augment": "wild"}, "Unknown augmentation preset 'wild'"),
    ],
)
def test_bad_values_name_the_setting(changes, words):
    with pytest.raises(WarmstartError, match=words):
        TrainConfig(**changes)


def test_unknown_keys_are_refused():
    with pytest.raises(WarmstartError, match="Unknown config setting"):
        TrainConfig.from_dict({"data": "x", "learning_rate": 1})


def test_presets_are_distinct_and_named():
    presets = [AugmentConfig.from_preset(p) for p in ("none", "light", "standard", "strong")]
    assert len(set(presets)) == 4
    assert presets[0].is_none and not presets[1].is_none
    assert presets[3].mixes_batches
    assert presets[2].preset_name == "standard"
    assert AugmentConfig(hflip=0.3).preset_name is None
