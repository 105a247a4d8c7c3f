"""The unlabelled pool, its labels file, the "label these next" strategies, pseudo-labels and ``suggest``."""

import csv
import json

import numpy as np
import pytest

from transfer_core.cli import main
from transfer_core.data.pool import SKIP, PoolLabels, labelled_pool_index, load_pool, pool_labels_path_for
from transfer_core.errors import WarmstartError
from transfer_core.insight.selection import pseudo_labels, suggest, typical_diverse, uncertain_diverse

from ..conftest import TINY, make_image, zip_folder


@pytest.fixture
def pool(tmp_path):
    """Twelve loose images in two sub-folders (places, not classes), one corrupt file and one text file."""
    root = tmp_path / "pool"
    for i, color in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)] * 4):
        folder = root / ("a" if i < 6 else "b/deeper")
        folder.mkdir(parents=True, exist_ok=True)
        make_image(color, seed=i).save(folder / f"img_{i}.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "notes.txt").write_text("hello")
    return root


def _files(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_pool_folder_reads_images_anywhere_and_skips_bad_files_with_reasons_without_touching_it(pool):
    before = _files(pool)
    index = load_pool(pool)
    assert len(index) == 12 and {r.label for r in index.records} == {""}
    reasons = {s.path: s.reason for s in index.skipped}
    assert set(reasons) == {"broken.jpg", "notes.txt"}
    assert "not an image type" in reasons["notes.txt"] and reasons["broken.jpg"]
    assert _files(pool) == before


def test_pool_zip_is_read_like_the_folder(pool, tmp_path):
    archive = zip_folder(pool, tmp_path / "pool.zip")
    index = load_pool(archive, tmp_path / "extract")
    assert len(index) == 12
    assert {s.path.rsplit("/", 1)[-1] for s in index.skipped} == {"broken.jpg", "notes.txt"}


def test_pool_bad_input_is_one_sentence(tmp_path):
    with pytest.raises(WarmstartError, match="does not exist"):
        load_pool(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WarmstartError, match="No usable images"):
        load_pool(tmp_path / "empty")
    (tmp_path / "x.csv").write_text("path,label\n")
    with pytest.raises(WarmstartError, match="neither a folder nor a .zip"):
        load_pool(tmp_path / "x.csv")


def test_labels_file_is_beside_the_pool_atomic_and_survives_a_restart(pool, monkeypatch):
    index = load_pool(pool)
    path = pool_labels_path_for(pool)
    assert path.parent == pool.parent and path.name == "pool.labels.json"
    labels = PoolLabels()
    a, b, c = (r.path for r in index.records[:3])
    labels.set(a, "red")
    labels.set(b, SKIP)
    labels.set(c, "blue")
    assert labels.undo() == c
    labels.save(path)
    reloaded = PoolLabels.load(path)  # a new process would read exactly this
    assert reloaded.labels == {a: "red", b: SKIP} and reloaded.order == [a, b]
    joined = labelled_pool_index(index, reloaded)
    assert [(r.path, r.label) for r in joined.records] == [(a, "red")]
    # A write that fails half-way (disk full after a few bytes) leaves the previous file whole.
    from pathlib import Path

    real_write = Path.write_bytes

    def half_write(self, data):
        real_write(self, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_write)
    reloaded.set(c, "green")
    with pytest.raises(WarmstartError, match="Cannot save pool labels"):
        reloaded.save(path)
    monkeypatch.undo()
    assert json.loads(path.read_text())["labels"] == {a: "red", b: SKIP}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_undo_puts_back_what_was_there_a_relabel_or_a_removed_label(tmp_path):
    path = tmp_path / "pool.labels.json"
    labels = PoolLabels()
    labels.set("a.png", "cat")
    labels.set("a.png", "dog")  # changed its mind in the grid
    labels.set("b.png", "cat")
    labels.remove("b.png")  # clicked the chosen class again: no label
    labels.save(path)
    labels = PoolLabels.load(path)
    assert labels.labels == {"a.png": "dog"}
    assert labels.undo() == "b.png" and labels.labels == {"a.png": "dog", "b.png": "cat"}
    assert labels.undo() == "b.png" and labels.labels == {"a.png": "dog"}
    assert labels.undo() == "a.png" and labels.labels == {"a.png": "cat"}
    assert labels.undo() == "a.png" and labels.labels == {}
    assert labels.undo() is None


def test_a_labels_file_of_the_first_format_still_reads(tmp_path):
    path = tmp_path / "pool.labels.json"
    path.write_text(json.dumps({"labels": {"a.png": "cat", "b.png": "skip"}, "order": ["b.png", "a.png"]}))
    labels = PoolLabels.load(path)
    assert labels.order == ["b.png", "a.png"] and labels.undo() == "a.png" and labels.labels == {"b.png": "skip"}


def test_unreadable_labels_file_is_one_sentence(tmp_path):
    path = tmp_path / "p.labels.json"
    path.write_text("{not json")
    with pytest.raises(WarmstartError, match="unreadable"):
        PoolLabels.load(path)


def _planted_clusters(seed=0, per=10, centres=4, d=16):
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(centres, d)) * 10
    x = np.concatenate([centre[c] + rng.normal(size=(per, d)) for c in range(centres)])
    return x, np.repeat(np.arange(centres), per), centre


def test_cold_start_picks_one_typical_image_per_planted_cluster():
    x, truth, centre = _planted_clusters()
    labelled = np.zeros(len(x), dtype=bool)
    picked = [i for i, _ in typical_diverse(x, labelled, 4)]
    assert sorted(truth[picked].tolist()) == [0, 1, 2, 3]
    for i in picked:  # typical: closer to its centre than most of its cluster
        members = np.flatnonzero(truth == truth[i])
        distances = np.linalg.norm(x[members] - centre[truth[i]], axis=1)
        assert np.linalg.norm(x[i] - centre[truth[i]]) <= np.median(distances)


def test_cold_start_skips_covered_clusters_and_never_returns_labelled_images():
    x, truth, _ = _planted_clusters()
    labelled = np.zeros(len(x), dtype=bool)
    labelled[[0, 10]] = True  # clusters 0 and 1 are covered
    picked = [i for i, _ in typical_diverse(x, labelled, 2)]
    assert sorted(truth[picked].tolist()) == [2, 3]
    many = [i for i, _ in typical_diverse(x, labelled, 25)]
    assert len(many) == len(set(many)) == 25 and not labelled[many].any()


def test_strategies_return_fewer_when_the_pool_has_fewer():
    x, _, _ = _planted_clusters(per=2)
    labelled = np.zeros(len(x), dtype=bool)
    labelled[:5] = True
    probabilities = np.full((len(x), 2), 0.5)
    for picked in (typical_diverse(x, labelled, 20), uncertain_diverse(probabilities, x, labelled, 20)):
        rows = [i for i, _ in picked]
        assert sorted(rows) == list(range(5, 8))
    with pytest.raises(WarmstartError, match="no images left"):
        typical_diverse(x, np.ones(len(x), dtype=bool), 3)
    with pytest.raises(WarmstartError, match="at least 1"):
        typical_diverse(x, labelled, 0)


def test_uncertainty_picks_the_planted_ambiguous_images_one_per_region():
    x, truth, _ = _planted_clusters(per=10, centres=4)
    probabilities = np.tile([0.97, 0.03], (len(x), 1))
    ambiguous = [3, 4, 13, 24, 35]  # near-ties spread over the four regions, two in region 0
    probabilities[ambiguous] = [[0.51, 0.49], [0.52, 0.48], [0.55, 0.45], [0.53, 0.47], [0.56, 0.44]]
    labelled = np.zeros(len(x), dtype=bool)
    labelled[3] = True  # the most ambiguous is already labelled: never proposed
    picked = [i for i, _ in uncertain_diverse(probabilities, x, labelled, 4, factor=1)]
    assert picked == [4, 24, 13, 35]
    # Diversity: among the 8 least sure, region 0 holds two near-ties, but one image per region is proposed.
    probabilities[[5, 6]] = [[0.50, 0.50], [0.505, 0.495]]
    picked = [i for i, _ in uncertain_diverse(probabilities, x, labelled, 4, factor=2)]
    assert sorted(truth[picked].tolist()) == [0, 1, 2, 3] and 5 in picked


def test_pseudo_labels_keep_confident_rows_capped_per_class():
    probabilities = np.array([[0.99, 0.01], [0.95, 0.05], [0.92, 0.08], [0.6, 0.4], [0.1, 0.9], [0.02, 0.98]])
    eligible = np.array([True, True, True, True, True, False])
    assert pseudo_labels(probabilities, eligible, threshold=0.9, cap_per_class=2) == [(0, 0), (1, 0), (4, 1)]
    with pytest.raises(WarmstartError, match="threshold"):
        pseudo_labels(probabilities, eligible, threshold=0)


@pytest.fixture
def trained_run(tiny_config, tmp_path):
    from transfer_core import Trainer

    Trainer(tiny_config.replace(epochs=4), tmp_path / "run").fit()
    return tmp_path / "run"


def test_suggest_cold_and_with_a_run_on_real_images(pool, trained_run):
    index = load_pool(pool)
    labels = PoolLabels()
    labels.set(index.records[0].path, "red")
    cold = suggest(index, labels, 3, backbone=TINY)
    assert len(set(cold.paths)) == 3 and index.records[0].path not in cold.paths and "Cold start" in cold.strategy
    warm = suggest(index, labels, 20, run=trained_run)
    assert sorted(warm.paths) == sorted(r.path for r in index.records[1:]) and "least sure" in warm.strategy
    assert warm.scores == sorted(warm.scores)


def test_cli_suggest_happy_path_and_bad_input(pool, trained_run, tmp_path, capsys):
    out = tmp_path / "next.csv"
    assert main(["suggest", str(trained_run), str(pool), "--n", "4", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 6 and "least sure" in printed[4] and "2 pool file(s) skipped" in printed[5]
    rows = list(csv.DictReader(out.open()))
    assert [r["path"] for r in rows] == printed[:4] and [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert main(["suggest", str(pool), "--n", "2", "--backbone", TINY]) == 0
    assert "Cold start" in capsys.readouterr().out
    for argv, message in [
        (["suggest", str(tmp_path / "nope")], "does not exist"),
        (["suggest", str(pool), "--n", "0", "--backbone", TINY], "at least 1"),
        (["suggest", str(tmp_path / "no-run"), str(pool)], "does not exist"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exited:  # a third path: argparse's usage error, exit 2 too
        main(["suggest", "a", "b", "c"])
    assert exited.value.code == 2


def test_pseudo_label_index_labels_the_pool_from_the_run_and_never_overrides_a_person(pool, trained_run):
    from transfer_core.insight.selection import pseudo_label_index

    index = load_pool(pool)
    labels = PoolLabels()
    labels.set(index.records[0].path, SKIP)
    found = pseudo_label_index(trained_run, index, labels, threshold=0.5, cap_per_class=2)
    colour = {(200, 40, 40): "red", (40, 200, 40): "green", (40, 40, 200): "blue"}
    truth = {f"img_{i}.png": colour[c] for i, c in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)] * 4)}
    assert found.records and index.records[0].path not in {r.path for r in found.records}
    assert all(r.label == truth[r.path.rsplit("/", 1)[-1]] for r in found.records)
    assert max(found.counts().values()) <= 2 and "pseudo-labelled" in found.notes[0]


def test_a_frozen_run_scores_the_pool_from_the_features_already_computed(pool, trained_run, monkeypatch):
    """A frozen run's network is the pretrained backbone plus its head: its margins come from the cached
    features through the head, without reading and encoding the pool a second time, and equal the full model's."""
    from transfer_core.deploy.predict import Predictor
    from transfer_core.insight import selection

    index = load_pool(pool)
    expected = selection.run_probabilities(Predictor.from_run(trained_run), [r.path for r in index.records])
    monkeypatch.setattr(Predictor, "file_probabilities", lambda *a, **k: pytest.fail("the pool was read a second time"))
    got = selection.pool_probabilities(index, trained_run, "cpu")
    assert np.allclose(got, expected, atol=1e-4)
