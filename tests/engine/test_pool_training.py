"""Labelled pool images and pseudo-labels join a run's training images (never its validation)."""

import json

import pytest

from transfer_core import RunDir, Trainer
from transfer_core.cli import main
from transfer_core.data.pool import SKIP, PoolLabels, pool_labels_path_for
from transfer_core.data.splits import load_run_split
from transfer_core.errors import WarmstartError
from transfer_core.training.pseudo_labels import read_pseudo_labels

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


def test_labelled_pool_images_join_training_only(tiny_config, colour_pool):
    red, green = list(COLORS)[:2]
    before_train, before_val = load_run_split(tiny_config)
    _label(colour_pool, p0=red, p1=green, p2=SKIP)
    train, val = load_run_split(tiny_config.replace(unlabeled=str(colour_pool)))
    added = {r.path: r.label for r in train.records} .items() - {r.path: r.label for r in before_train.records}.items()
    assert added == {(str(colour_pool / "p0.png"), red), (str(colour_pool / "p1.png"), green)}
    assert val.records == before_val.records
    assert any("2 image(s) labelled in the unlabelled pool joined training" in n for n in train.notes)


def test_a_pool_label_naming_an_unknown_class_is_left_out_with_a_note(tiny_config, colour_pool):
    _label(colour_pool, p0="purple")
    train, _ = load_run_split(tiny_config.replace(unlabeled=str(colour_pool)))
    assert str(colour_pool / "p0.png") not in {r.path for r in train.records}
    assert any("purple" in n for n in train.notes)


def test_pseudo_labels_need_a_pool():
    from transfer_core import TrainConfig

    with pytest.raises(WarmstartError, match="need an unlabelled pool"):
        TrainConfig(data="x", pseudo_labels_from="some/run")
    with pytest.raises(WarmstartError, match="pseudo_threshold"):
        TrainConfig(data="x", pseudo_threshold=0)


def test_a_run_trains_on_pseudo_labels_records_them_and_a_resume_reuses_them(tiny_config, colour_pool, tmp_path):
    teacher = tmp_path / "teacher"
    Trainer(tiny_config.replace(epochs=4), teacher).fit()
    red = list(COLORS)[0]
    _label(colour_pool, p0=red)
    config = tiny_config.replace(epochs=2, unlabeled=str(colour_pool), pseudo_labels_from=str(teacher), pseudo_threshold=0.34, pseudo_cap=2)
    student = tmp_path / "student"
    result = Trainer(config, student).fit()
    pseudo = read_pseudo_labels(student)
    assert pseudo and len(pseudo) <= 2 * len(COLORS)
    assert str(colour_pool / "p0.png") not in {r.path for r in pseudo}  # a person's label wins
    started = RunDir(student).read_events({"started"})[0]
    plain_train, _ = load_run_split(tiny_config)
    assert started["train_size"] == len(plain_train) + 1 + len(pseudo)
    assert result.status == "finished"
    saved = json.loads((student / "pseudo-labels.json").read_text())
    assert saved["from"] == str(teacher) and saved["threshold"] == 0.34

    (student / "pseudo-labels.json").write_text(json.dumps({**saved, "images": saved["images"][:1]}))
    again = tmp_path / "again"
    (again).mkdir()
    (again / "pseudo-labels.json").write_text(json.dumps({**saved, "images": saved["images"][:1]}))
    Trainer(config, again).fit()  # a run folder that already holds its list (a resume) trains on that list
    assert RunDir(again).read_events({"started"})[0]["train_size"] == len(plain_train) + 1 + 1


def test_pseudo_labels_from_an_unfinished_run_is_one_sentence(tiny_config, colour_pool, tmp_path):
    (tmp_path / "nothing").mkdir()
    config = tiny_config.replace(unlabeled=str(colour_pool), pseudo_labels_from=str(tmp_path / "nothing"))
    with pytest.raises(WarmstartError):
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


def test_learning_curve_counts_real_labels_apart_from_pseudo_labels(tiny_config, colour_pool, tmp_path):
    from transfer_core import RunStore, learning_curve

    store = RunStore(tmp_path / "runs")
    first = store.new_run(tiny_config.replace(epochs=2))
    Trainer(tiny_config.replace(epochs=2), first).fit()
    _label(colour_pool, p0=sorted(COLORS)[0], p1=sorted(COLORS)[1])
    second_config = tiny_config.replace(epochs=2, unlabeled=str(colour_pool), pseudo_labels_from=str(first.path), pseudo_threshold=0.34)
    second = store.new_run(second_config)
    Trainer(second_config, second).fit()
    store.new_run(tiny_config)  # never trained: no point
    points = learning_curve(store.runs())
    plain = len(load_run_split(tiny_config)[0])
    assert [(p["run"], p["labels"]) for p in points] == [(first.name, plain), (second.name, plain + 2)]
    assert points[0]["pseudo_labels"] == 0 and points[1]["pseudo_labels"] == len(read_pseudo_labels(second.path)) > 0
