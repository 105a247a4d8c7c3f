"""Labelled pool images and pseudo-labels join a run's training images (never its validation)."""

import json
from pathlib import Path

import pytest

from transfer_core import RunDir, Trainer
from transfer_core.cli import main
from transfer_core.data.pool import SKIP, PoolLabels, pool_labels_path_for
from transfer_core.data.splits import load_run_split
from transfer_core.errors import WarmstartError
from transfer_core.training.pool_data import pool_training_images, read_pool_labels, read_pseudo_labels

from ..conftest import COLORS, make_image


@pytest.fixture
def colour_pool(tmp_path):
    """Nine unlabelled images of the colour dataset's three colours, three each."""
    root = tmp_path / "pool"
    root.mkdir()
    for i, color in enumerate(list(COLORS.values()) * 3):
        make_image(color, seed=500 + i).save(root / f"p{i}.png")
    return root


def _label(pool, **by_file):
    labels = PoolLabels()
    for name, label in by_file.items():
        labels.set(str(pool / f"{name}.png"), label)
    labels.save(pool_labels_path_for(pool))


def _join(config, run_path, resume=False):
    train, _ = load_run_split(config)
    written = {}

    def write(name, data):
        written[name] = data
        (Path(run_path) / name).write_bytes(data)

    Path(run_path).mkdir(exist_ok=True)
    return train, pool_training_images(train, config, run_path, resume, "cpu", write), written


def test_labelled_pool_images_join_training_and_the_run_keeps_the_list(tiny_config, colour_pool, tmp_path):
    red, green = sorted(COLORS)[:2]
    _label(colour_pool, p0=red, p1=green, p2=SKIP)
    train, joined, written = _join(tiny_config.replace(unlabeled=str(colour_pool)), tmp_path / "run")
    added = {(r.path, r.label) for r in joined.records} - {(r.path, r.label) for r in train.records}
    assert added == {(str(colour_pool / "p0.png"), red), (str(colour_pool / "p1.png"), green)}
    assert any("2 image(s) labelled in the unlabelled pool joined training" in n for n in joined.notes)
    assert {(r.path, r.label) for r in read_pool_labels(tmp_path / "run")} == added
    assert set(written) == {"pool-labels.json"}


def test_an_unlabelled_or_empty_pool_changes_nothing_and_blocks_no_run(tiny_config, tmp_path):
    empty = tmp_path / "empty-pool"
    empty.mkdir()
    train, joined, _ = _join(tiny_config.replace(unlabeled=str(empty)), tmp_path / "run")
    assert joined.records == train.records


def test_a_pool_label_naming_an_unknown_class_is_left_out_with_a_note(tiny_config, colour_pool, tmp_path):
    _label(colour_pool, p0="purple")
    _, joined, _ = _join(tiny_config.replace(unlabeled=str(colour_pool)), tmp_path / "run")
    assert str(colour_pool / "p0.png") not in {r.path for r in joined.records}
    assert any("purple" in n for n in joined.notes)


def test_a_resumed_run_trains_on_the_pool_images_it_started_with(tiny_config, colour_pool, tmp_path, monkeypatch):
    monkeypatch.setenv("WARMSTART_CHECKPOINT_SECONDS", "0")
    _label(colour_pool, p0=sorted(COLORS)[0])
    config = tiny_config.replace(epochs=3, unlabeled=str(colour_pool))
    run = tmp_path / "run"

    holder = []

    def stop_after_the_first_epoch(event):
        if event.kind.value == "epoch":
            holder[0].request_stop()

    holder.append(Trainer(config, run, [stop_after_the_first_epoch]))
    first = holder[0].fit()
    assert first.status == "stopped"
    _label(colour_pool, p0=sorted(COLORS)[0], p1=sorted(COLORS)[1], p2=sorted(COLORS)[2])  # labelling went on meanwhile
    resumed = Trainer(config, run).fit(resume=True)
    assert resumed.status == "finished"
    sizes = [e["train_size"] for e in RunDir(run).read_events({"started"})]
    assert sizes[0] == sizes[1] == len(load_run_split(tiny_config)[0]) + 1
    fresh = tmp_path / "fresh"
    Trainer(config, fresh).fit()  # a new run takes the labels as they are now
    assert RunDir(fresh).read_events({"started"})[0]["train_size"] == sizes[0] + 2


def test_pseudo_labels_need_a_pool():
    from transfer_core import TrainConfig

    with pytest.raises(WarmstartError, match="need an unlabelled pool"):
        TrainConfig(data="x", pseudo_labels_from="some/run")
    with pytest.raises(WarmstartError, match="pseudo_threshold"):
        TrainConfig(data="x", pseudo_threshold=0)


def test_a_run_trains_on_pseudo_labels_and_records_only_those_that_joined(tiny_config, colour_pool, tmp_path):
    teacher = tmp_path / "teacher"
    Trainer(tiny_config.replace(epochs=4), teacher).fit()
    red = sorted(COLORS)[0]
    _label(colour_pool, p0=red)
    config = tiny_config.replace(epochs=2, unlabeled=str(colour_pool), pseudo_labels_from=str(teacher), pseudo_threshold=0.34, pseudo_cap=2)
    student = tmp_path / "student"
    assert Trainer(config, student).fit().status == "finished"
    pseudo = read_pseudo_labels(student)
    assert pseudo and len(pseudo) <= 2 * len(COLORS)
    assert str(colour_pool / "p0.png") not in {r.path for r in pseudo}  # a person's label wins
    started = RunDir(student).read_events({"started"})[0]
    assert started["train_size"] == len(load_run_split(tiny_config)[0]) + 1 + len(pseudo)
    saved = json.loads((student / "pseudo-labels.json").read_text())
    assert saved["from"] == str(teacher) and saved["threshold"] == 0.34


def test_a_fresh_run_never_reuses_a_stale_pseudo_label_list(tiny_config, colour_pool, tmp_path):
    teacher = tmp_path / "teacher"
    Trainer(tiny_config.replace(epochs=4), teacher).fit()
    config = tiny_config.replace(epochs=1, unlabeled=str(colour_pool), pseudo_labels_from=str(teacher), pseudo_threshold=0.34)
    run = tmp_path / "run"
    run.mkdir()
    (run / "pseudo-labels.json").write_text(json.dumps({"images": [{"path": str(colour_pool / "p0.png"), "label": "nonsense"}]}))
    Trainer(config, run).fit()
    assert "nonsense" not in {r.label for r in read_pseudo_labels(run)}


def test_pseudo_labels_from_an_unfinished_run_is_one_sentence(tiny_config, colour_pool, tmp_path):
    (tmp_path / "nothing").mkdir()
    config = tiny_config.replace(unlabeled=str(colour_pool), pseudo_labels_from=str(tmp_path / "nothing"))
    with pytest.raises(WarmstartError, match="is .* a Warmstart run folder"):
        Trainer(config, tmp_path / "run").fit()


def test_cli_train_with_a_pool_and_pseudo_labels(tiny_config, colour_pool, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    Trainer(tiny_config.replace(epochs=4), teacher).fit()
    _label(colour_pool, p0=list(COLORS)[0])
    out = tmp_path / "cli-run"
    code = main(["train", tiny_config.data, "--backbone", tiny_config.backbone, "--epochs", "1", "--val-split", "0.3",
                 "--out", str(out), "--unlabeled", str(colour_pool), "--pseudo-labels-from", str(teacher), "--pseudo-threshold", "0.34"])
    assert code == 0
    saved = RunDir(out).read_config()
    assert saved.unlabeled == str(colour_pool) and saved.pseudo_labels_from == str(teacher)
    assert read_pseudo_labels(out) is not None
    capsys.readouterr()
    assert main(["train", tiny_config.data, "--backbone", tiny_config.backbone, "--out", str(tmp_path / "bad"),
                 "--pseudo-labels-from", str(teacher)]) != 0
    assert "need an unlabelled pool" in capsys.readouterr().err


def test_learning_curve_counts_real_labels_apart_from_pseudo_labels_within_one_recipe(tiny_config, colour_pool, tmp_path):
    from transfer_core import RunStore, learning_curve

    store = RunStore(tmp_path / "runs")
    first_config = tiny_config.replace(epochs=2, unlabeled=str(colour_pool))
    first = store.new_run(first_config)
    Trainer(first_config, first).fit()
    _label(colour_pool, p0=sorted(COLORS)[0], p1=sorted(COLORS)[1])
    second_config = first_config.replace(pseudo_labels_from=str(first.path), pseudo_threshold=0.34)
    second = store.new_run(second_config)
    Trainer(second_config, second).fit()
    other = store.new_run(tiny_config.replace(epochs=3))  # another recipe: not a round of this sequence
    Trainer(tiny_config.replace(epochs=3), other).fit()
    store.new_run(tiny_config)  # never trained: no point
    curve = learning_curve([run for run in store.runs() if run.path != other.path])
    plain = len(load_run_split(tiny_config)[0])
    assert [(p["run"], p["labels"]) for p in curve.points] == [(first.name, plain), (second.name, plain + 2)]
    assert curve.points[0]["pseudo_labels"] == 0 and curve.points[1]["pseudo_labels"] == len(read_pseudo_labels(second.path)) > 0
    assert curve.drawable and curve.left_out == 0
    with_other = learning_curve(store.runs())  # a later run without a pool (another recipe) does not hide the rounds
    assert [p["run"] for p in with_other.points] == [first.name, second.name] and with_other.left_out == 1
    without_pool = learning_curve([other])
    assert [p["run"] for p in without_pool.points] == [other.name] and not without_pool.drawable
