"""Ranked label errors: planted flips come first, every probability is out of fold, bad input is refused plainly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from transfer_core import WarmstartError, label_error_evidence, labels_to_check, load_train_val, rank_label_errors
from transfer_core.insight import label_errors
from transfer_core.insight.health import health_check
from transfer_core.insight.label_errors import _probe, out_of_fold_probabilities

from ..conftest import TINY, make_image


def _blobs(per_class: int = 30, classes: int = 3, dims: int = 16, seed: int = 0, spread: float = 1.0):
    """Well separated Gaussian classes 'a', 'b', 'c'... and their true labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (classes, dims))
    features = np.vstack([centres[c] + rng.normal(0, spread, (per_class, dims)) for c in range(classes)])
    labels = np.repeat([chr(ord("a") + c) for c in range(classes)], per_class)
    return features, labels


def _flip(labels: np.ndarray, where: list[int]) -> np.ndarray:
    noisy = labels.copy()
    for i in where:
        noisy[i] = "a" if labels[i] != "a" else "b"
    return noisy


def test_planted_flips_are_ranked_first_with_their_true_class_suggested():
    features, truth = _blobs()
    planted = [3, 41, 77]
    found = rank_label_errors(features, _flip(truth, planted))
    assert set(found.ranking()[:3]) == set(planted)
    assert [item["index"] for item in found.issues][:3] and {item["index"] for item in found.issues[:3]} == set(planted)
    for item in found.issues[:3]:
        assert item["suggested"] == truth[item["index"]] != item["label"]
        assert item["label_probability"] < 0.2 < 0.8 < item["suggested_probability"]
        assert item["quality"] == pytest.approx(item["label_probability"])
    assert [i["quality"] for i in found.issues] == sorted(i["quality"] for i in found.issues)
    assert found.folds == 5 and found.classes == ["a", "b", "c"]
    first = found.issues[0]
    assert label_error_evidence(first) == (f"A model that never saw this image gives {first['label']} (its label) "
                                           f"{first['label_probability']:.0%} and {first['suggested']} {first['suggested_probability']:.0%}.")


def test_a_clean_well_separated_set_flags_nothing():
    features, truth = _blobs(seed=3)
    assert rank_label_errors(features, truth).issues == []


class _Recorder(ClassifierMixin, BaseEstimator):
    """Remembers the rows it was trained on and refuses to score any of them."""

    log: list = []

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.trained_ = {row.tobytes() for row in X}
        self.log.append(("fit", len(X)))
        return self

    def predict_proba(self, X):
        seen = [row.tobytes() in self.trained_ for row in X]
        self.log.append(("scored", len(X), any(seen)))
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))


def test_no_image_is_scored_by_a_model_trained_on_it():
    features, truth = _blobs(per_class=12)
    targets = np.unique(truth, return_inverse=True)[1]
    _Recorder.log = []
    recording = lambda seed, d, n: Pipeline([("same", FunctionTransformer()), ("classify", _Recorder())])
    out_of_fold_probabilities(features, targets, folds=4, make_model=recording)
    scored = [entry for entry in _Recorder.log if entry[0] == "scored"]
    assert len(scored) == 4 and sum(n for _, n, _ in scored) == len(features)  # every image scored exactly once
    assert not any(seen for _, _, seen in scored)
    assert [n for kind, n in (e[:2] for e in _Recorder.log) if kind == "fit"] == [len(features) - n for _, n, _ in scored]


def test_out_of_fold_probabilities_do_not_remember_the_given_labels():
    # Random labels on random points in more dimensions than images: a model scoring its own training images
    # recalls their labels; one that never saw them can only guess.
    rng = np.random.default_rng(0)
    features, targets = rng.normal(size=(80, 200)), np.tile([0, 1], 40)
    rows = np.arange(len(targets))
    in_sample = _probe(0, 200, 80).fit(features, targets).predict_proba(features)[rows, targets].mean()
    held_out = out_of_fold_probabilities(features, targets, folds=5)[rows, targets].mean()
    assert in_sample > 0.9 and held_out < 0.65


def test_many_images_go_through_the_projection_and_still_rank_the_flips_first(monkeypatch):
    monkeypatch.setattr(label_errors, "PCA_SAMPLE", 60)
    monkeypatch.setattr(label_errors, "COMPONENTS", 8)
    assert "project" in label_errors._probe(0, 16, 61).named_steps
    features, truth = _blobs(per_class=40)
    planted = [5, 50, 100]
    found = rank_label_errors(features, _flip(truth, planted))
    assert set(found.ranking()[:3]) == set(planted)


@pytest.mark.parametrize(("labels", "message"), [
    (["a"] * 6, "needs at least two classes; there is only 1"),
    (["a", "b"], "Class 'a' has only 1 image"),
    (["a"] * 5 + ["b"], "Class 'b' has only 1 image"),
])
def test_data_that_cannot_be_judged_is_refused_in_one_sentence(labels, message):
    with pytest.raises(WarmstartError, match=message):
        rank_label_errors(np.random.default_rng(0).normal(size=(len(labels), 4)), labels)


def test_mismatched_or_broken_features_are_refused():
    with pytest.raises(WarmstartError, match="do not match"):
        rank_label_errors(np.zeros((4, 3)), ["a", "a", "b"])
    broken = np.ones((4, 3))
    broken[1, 2] = np.nan
    with pytest.raises(WarmstartError, match="not finite"):
        rank_label_errors(broken, ["a", "a", "b", "b"])


def test_two_images_per_class_are_judged_with_two_folds():
    features, truth = _blobs(per_class=2)
    assert rank_label_errors(features, truth).folds == 2


def test_the_review_list_puts_images_both_methods_flag_first():
    features, truth = _blobs()
    planted = [3, 41, 77]
    noisy = _flip(truth, planted)
    found = rank_label_errors(features, noisy)
    cl_order = [item["index"] for item in found.issues]
    vote = lambda i: {"index": i, "label": str(noisy[i]), "suggested": "c" if noisy[i] != "c" else "a", "strength": 2.0}
    listed, note = labels_to_check(features, noisy, [vote(10), vote(cl_order[1])])
    assert note is None
    assert [item["index"] for item in listed] == [cl_order[1], 10] + [i for i in cl_order if i != cl_order[1]]
    both, only_vote = listed[0], listed[1]
    assert both["confident_learning"] and both["neighbours"]["strength"] == 2.0 and both["suggested"] == truth[both["index"]]
    assert not only_vote["confident_learning"] and only_vote["suggested"] == vote(10)["suggested"]
    assert 0 <= only_vote["label_probability"] <= 1 and 0 <= only_vote["suggested_probability"] <= 1


def test_without_confident_learning_the_review_list_keeps_the_neighbour_vote_and_says_why():
    features, truth = _blobs(per_class=5)
    labels = np.append(truth, "lonely")
    features = np.vstack([features, features[:1]])
    listed, note = labels_to_check(features, labels, [{"index": 2, "label": "a", "suggested": "b"}])
    assert note.startswith("Class 'lonely' has only 1 image")
    assert listed == [{"index": 2, "label": "a", "suggested": "b", "label_probability": None, "suggested_probability": None,
                       "confident_learning": False, "neighbours": {"index": 2, "label": "a", "suggested": "b"}}]


def test_the_health_check_carries_the_review_list_with_paths(tmp_path):
    root = tmp_path / "planted"
    colours = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
    for c, (label, colour) in enumerate(colours.items()):
        (root / label).mkdir(parents=True)
        for i in range(12):
            make_image(colour, seed=c * 100 + i).save(root / label / f"{label}_{i}.png")
    make_image((200, 40, 40), seed=999).save(root / "blue" / "actually_red.png")
    train, val = load_train_val(root, val_fraction=0.3)
    report = health_check(train, val, backbone=TINY, duplicate_similarity=0.9999)
    first = report.labels_to_check[0]
    assert Path(first["path"]).name == "actually_red.png"
    assert first["label"] == "blue" and first["suggested"] == "red" and first["confident_learning"]
    assert report.labels_note is None


def test_a_set_the_libraries_cannot_judge_becomes_a_note_not_a_traceback(monkeypatch):
    """scikit-learn or cleanlab may raise ValueError on a degenerate set; the health check must still finish
    with the neighbour vote's list and one sentence on why confident learning said nothing."""
    def degenerate(*args, **kwargs):
        raise ValueError("a fold has no confident example of class 2\nlong trace")

    monkeypatch.setattr(label_errors, "rank_label_errors", degenerate)
    vote = [{"index": 1, "label": "a", "suggested": "b", "strength": 2.0}]
    review, note = labels_to_check(np.zeros((4, 3)), ["a", "a", "b", "b"], vote)
    assert [item["index"] for item in review] == [1] and review[0]["confident_learning"] is False
    assert note == "Confident learning could not judge these labels (a fold has no confident example of class 2)."
