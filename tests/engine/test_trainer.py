import json

import pytest
import torch

from transfer_core.randomness import seeded_scope

from transfer_core import Event, RunDir, Trainer, WarmstartError
from transfer_core.training.events import StepEnded

from ..conftest import write_dataset

METRIC_KEYS = ("val_accuracy", "macro_f1", "per_class", "confusion_matrix", "history")


def _fit(config, path, subscribers=()):
    return Trainer(config, path, subscribers).fit()


def test_frozen_run_writes_a_complete_run_folder(tiny_config, tmp_path):
    seen = []
    result = _fit(tiny_config.replace(epochs=8), tmp_path / "run", [seen.append])
    run = RunDir(tmp_path / "run")
    assert result.status == "finished" and run.status() == "finished"
    report = json.loads(run.report_file.read_text())
    for key in ("classes", "val_accuracy", "macro_f1", "per_class", "confusion_matrix", "train_seconds", "config"):
        assert key in report
    assert report["classes"] == ["blue", "green", "red"]
    assert report["val_accuracy"] == 1.0  # colours are trivially separable
    assert sum(map(sum, report["confusion_matrix"])) == report["val_size"] == 9
    kinds = [e.kind for e in seen]
    assert kinds[0] is Event.CACHING and seen[0].what == "index"  # checking the files, then reading them
    assert [k for k in kinds if k is not Event.CACHING][0] is Event.CACHED and Event.STARTED in kinds and kinds[-1] is Event.FINISHED
    assert kinds.count(Event.EPOCH) == 8 and Event.CHECKPOINT in kinds and Event.STEP in kinds
    assert any(e.kind is Event.CACHED and e.what == "features" for e in seen)
    assert [e["event"] for e in run.read_events()] == [k.value for k in kinds]
    assert run.checkpoint_file.exists() and run.config_file.exists()
    predictions = run.read_predictions()
    assert len(predictions) == 9 and {"path", "true", "predicted", "confidence", "loss", "probabilities"} <= set(predictions[0])


def test_same_seed_gives_identical_metrics(tiny_config, tmp_path):
    config = tiny_config.replace(strategy="full", augment="standard", epochs=2)
    first = _fit(config, tmp_path / "a").report
    second = _fit(config, tmp_path / "b").report
    for key in METRIC_KEYS:
        assert first[key] == second[key], key
    other = _fit(config.replace(seed=1), tmp_path / "c").report
    assert other["history"] != first["history"]


@pytest.mark.parametrize(
    "changes",
    [
        {"strategy": "partial", "trainable_blocks": 1},
        {"strategy": "partial", "trainable_blocks": 1, "augment": "light"},
        {"strategy": "full", "optimizer": "sgd", "schedule": "cosine", "grad_clip": 1.0, "l2sp": 0.01},
        {"strategy": "gradual", "unfreeze_every": 1, "optimizer": "adam", "schedule": "step", "step_epochs": 1},
        {"strategy": "frozen", "augment": "strong", "balance": "sampler"},
        {"strategy": "full", "balance": "class_weights", "head_warmup_epochs": 2, "label_smoothing": 0.0},
    ],
    ids=["partial-cached-prefix", "partial-augmented", "full-sgd-l2sp", "gradual", "frozen-strong-sampler", "full-weights"],
)
def test_every_strategy_and_option_learns(tiny_config, tmp_path, changes):
    seen = []
    result = _fit(tiny_config.replace(epochs=3, **changes), tmp_path / "run", [seen.append])
    assert result.status == "finished"
    assert result.report["val_accuracy"] >= 2 / 3
    if changes["strategy"] == "gradual":
        assert [e.trainable_groups for e in seen if e.kind is Event.EPOCH] == [0, 1, 2]


def test_frozen_backbone_weights_do_not_change(tiny_config, tmp_path):
    from transfer_core import load_trained_model, get_backbone

    _fit(tiny_config.replace(strategy="partial", trainable_blocks=1), tmp_path / "run")
    model, _ = load_trained_model(tmp_path / "run")
    with seeded_scope(tiny_config.seed):  # how the trainer builds its starting weights
        initial = get_backbone("tiny_cnn").build(pretrained=False)
    assert torch.equal(model.backbone.stages[0][0].weight, initial.stages[0][0].weight)
    assert not torch.equal(model.backbone.stages[2][0].weight, initial.stages[2][0].weight)


class _StopAt:
    def __init__(self, trainer_ref, global_step):
        self.trainer_ref, self.global_step = trainer_ref, global_step

    def __call__(self, event):
        if isinstance(event, StepEnded) and event.global_step == self.global_step:
            self.trainer_ref[0].request_stop()


def test_stop_keeps_best_checkpoint_and_resume_matches_uninterrupted(tiny_config, tmp_path):
    config = tiny_config.replace(strategy="full", augment="light", epochs=4)
    reference = _fit(config, tmp_path / "straight").report

    holder = []
    trainer = Trainer(config, tmp_path / "stopped", [_StopAt(holder, global_step=7)])  # 3 steps/epoch → in epoch 3
    holder.append(trainer)
    stopped = trainer.fit()
    run = RunDir(tmp_path / "stopped")
    assert stopped.status == "stopped" and run.status() == "stopped"
    assert run.checkpoint_file.exists() and stopped.report["epochs_run"] == 2
    assert run.read_report()["val_accuracy"] == stopped.report["val_accuracy"]

    resumed = Trainer(run.read_config(), run).fit(resume=True)
    assert resumed.status == "finished" and run.status() == "finished"
    for key in METRIC_KEYS:
        assert resumed.report[key] == reference[key], key


def test_stop_before_first_epoch_saves_nothing_but_reports(tiny_config, tmp_path):
    holder = []
    trainer = Trainer(tiny_config, tmp_path / "run", [_StopAt(holder, global_step=1)])
    holder.append(trainer)
    result = trainer.fit()
    assert result.status == "stopped" and result.report is None
    with pytest.raises(WarmstartError, match="no completed epoch"):
        Trainer(tiny_config, tmp_path / "run").fit(resume=True)


def test_early_stopping(tiny_config, tmp_path):
    seen = []
    config = tiny_config.replace(epochs=30, early_stopping_patience=1, lr=0.5, schedule="constant")
    result = _fit(config, tmp_path / "run", [seen.append])
    finished = [e for e in seen if e.kind is Event.FINISHED][0]
    assert finished.early_stopped and result.report["epochs_run"] < 30


def test_one_class_is_refused_with_advice(tmp_path):
    from transfer_core import TrainConfig

    data = write_dataset(tmp_path / "one", per_class=6, colors={"only": (1, 2, 3)})
    config = TrainConfig(data=str(data), backbone="tiny_cnn", epochs=1)
    with pytest.raises(WarmstartError, match="at least two classes"):
        _fit(config, tmp_path / "run")
    assert RunDir(tmp_path / "run").status() == "failed"


def test_unreadable_image_found_late_is_skipped_not_fatal(tiny_config, tmp_path, color_dataset):
    # Passes the header check but fails to decode: a truncated PNG.
    good = (color_dataset / "red" / "red_0.png").read_bytes()
    (color_dataset / "red" / "red_cut.png").write_bytes(good[: len(good) // 2])
    result = _fit(tiny_config, tmp_path / "run")
    assert result.status == "finished"
    assert any("red_cut.png" in s["path"] for s in result.report["skipped"])


def test_second_run_reuses_cached_features_and_a_changed_setting_does_not(tiny_config, tmp_path):
    from transfer_core.features.cache import shared_feature_cache

    shared_feature_cache().clear()
    first, second, resized = [], [], []
    a = _fit(tiny_config, tmp_path / "a", [first.append]).report
    b = _fit(tiny_config.replace(lr=0.2), tmp_path / "b", [second.append]).report
    _fit(tiny_config.replace(image_size=40), tmp_path / "c", [resized.append])
    message = lambda events: next(e.message for e in events if e.kind is Event.CACHED and e.what == "features")
    assert "reused" not in message(first)
    assert "30 reused from an earlier run" in message(second)
    assert "reused" not in message(resized)
    assert a["classes"] == b["classes"]


def test_cache_messages_say_what_happened_without_jargon(tiny_config, tmp_path):
    seen = []
    _fit(tiny_config.replace(strategy="partial", trainable_blocks=1, epochs=1), tmp_path / "run", [seen.append])
    message = next(e.message for e in seen if e.kind is Event.CACHED and e.what == "prefix")
    assert "frozen stages" not in message and "Cached the output" not in message
    assert message.startswith("Ran the frozen part of the network (its first 2 blocks) once over 30 images")


def test_frozen_augmentation_can_cycle_cached_views(tiny_config, tmp_path):
    seen = []
    config = tiny_config.replace(augment="light", augment_views=2, epochs=6)
    first = _fit(config, tmp_path / "a", [seen.append]).report
    views = [e for e in seen if e.kind is Event.CACHED and e.what == "views"]
    assert len(views) == 1 and views[0].items == 2 * 21
    assert first["val_accuracy"] >= 2 / 3
    again = _fit(config, tmp_path / "b").report
    assert again["history"] == first["history"]
