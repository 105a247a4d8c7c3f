"""Health check: only strong evidence flags a label, the evidence is stated, and a clean set says so plainly."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

from transfer_core import HealthReport, load_train_val
from transfer_core.insight.health import health_check, likely_mislabels, mislabel_evidence
from transfer_core.insight.neighbours import neighbour_table

from ..conftest import TINY, make_image

CLEAN = "No duplicates, no leakage, no likely mislabels among"


def _similarity(features: np.ndarray) -> np.ndarray:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    return unit @ unit.T


SUBJECTS, BACKGROUNDS = {"ants": 0, "bees": 1}, {"flower": 2, "ground": 3, "leaf": 4}
WHERE = {"ants": {"ground": 0.7, "leaf": 0.15, "flower": 0.15}, "bees": {"flower": 0.9, "leaf": 0.1}}


def _photo_features(subject: str, background: str, noise: np.ndarray | float = 0.0) -> np.ndarray:
    """'Pretrained features' of a photo: what it shows plus, weighing more, where it was taken."""
    axes = np.eye(32)
    return axes[SUBJECTS[subject]] + 1.5 * axes[BACKGROUNDS[background]] + noise


def _ants_and_bees(per_class: int = 60, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    """A clean two-class set whose classes overlap the way real photos do: most bees, and some ants, on flowers."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for subject, places in WHERE.items():
        for background in rng.choice(list(places), size=per_class, p=list(places.values())):
            features.append(_photo_features(subject, background, rng.normal(0, 0.35, 32)))
            labels.append(subject)
    return np.array(features), labels


def _neighbours_of_another_label(similarity: np.ndarray, labels: list[str], k: int = 5) -> np.ndarray:
    """How many of each image's k nearest neighbours carry another label."""
    scores = similarity.copy()
    np.fill_diagonal(scores, -np.inf)
    nearest = np.argsort(-scores, axis=1)[:, :k]
    names = np.array(labels)
    return (names[nearest] != names[:, None]).sum(axis=1)


def test_a_clean_set_whose_classes_overlap_flags_no_mislabels():
    features, labels = _ants_and_bees()
    similarity = _similarity(features)
    # The overlap is real: some correctly labelled images have 4 or 5 of 5 neighbours from the other class,
    # which is what a neighbour vote alone calls "possibly mislabelled".
    assert (_neighbours_of_another_label(similarity, labels) >= 4).sum() >= 3
    assert likely_mislabels(neighbour_table(features, labels)) == []


def test_a_planted_mislabel_is_flagged_first_with_its_evidence():
    features, labels = _ants_and_bees()
    ant = _photo_features("ants", "ground")
    features, labels = np.vstack([features, ant]), labels + ["bees"]  # an ant on the ground filed under bees
    flagged = likely_mislabels(neighbour_table(features, labels))
    assert flagged and flagged[0]["index"] == len(labels) - 1
    first = flagged[0]
    assert first["label"] == "bees" and first["suggested"] == "ants"
    assert first["votes"] == first["neighbours"] == 5 and first["agreement"] == 1.0
    assert first["neighbour_similarity"] > first["own_similarity"]
    assert first["margin"] == first["neighbour_similarity"] - first["own_similarity"]
    assert first["strength"] == first["margin"] / first["typical_margin"] >= 1.0
    assert [f["strength"] for f in flagged] == sorted((f["strength"] for f in flagged), reverse=True)
    evidence = mislabel_evidence(first)
    assert evidence.startswith("Labelled bees, but 5 of its 5 nearest images are labelled ants.")
    assert f"(evidence {first['strength']:.1f}×)" in evidence


def test_the_report_says_plainly_what_it_found():
    assert HealthReport(images=398).summary == f"{CLEAN} 398 images."
    found = HealthReport(
        near_duplicates=[{}], leakage=[{}, {}], likely_mislabeled=[{}], images=40,
    )
    assert found.summary == "1 near-duplicate pair, 2 images in both training and validation, 1 likely mislabel among 40 images."
    # No neighbour-vote suspect, but confident learning doubts some labels: the sentence must not read "all clear".
    doubted = HealthReport(images=210, labels_to_check=[{}] * 11)
    assert doubted.summary == (f"{CLEAN} 210 images by the neighbour vote; 11 labels are still worth a look "
                               "(a model that never saw them doubts them): see Labels to check.")
    assert HealthReport(images=9, labels_to_check=[{}]).summary.endswith("1 label is still worth a look (a model that "
                                                                         "never saw it doubts it): see Labels to check.")


def _varied_image(hue: float, seed: int, size: int = 40) -> Image.Image:
    """Stripes of a colour near ``hue`` over a random pale colour: distinct pictures of one class."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    angle, frequency = rng.uniform(0, np.pi), rng.uniform(0.15, 1.2)
    stripes = np.sin(frequency * (np.cos(angle) * x + np.sin(angle) * y) + rng.uniform(0, 6.3)) > rng.uniform(-0.8, 0.8)
    ink = np.array(colorsys.hsv_to_rgb((hue + rng.uniform(-0.06, 0.06)) % 1, rng.uniform(0.5, 1), rng.uniform(0.5, 1))) * 255
    paper = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.1, 1))) * 255
    pixels = np.where(stripes[..., None], ink, paper) + rng.normal(0, 10, (size, size, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def test_a_clean_image_folder_gets_the_plain_sentence_and_reports_progress(tmp_path):
    root = tmp_path / "clean"
    for c, (label, hue) in enumerate({"red": 0.0, "green": 0.33, "blue": 0.62}.items()):
        (root / label).mkdir(parents=True)
        for i in range(12):
            _varied_image(hue, seed=c * 1000 + i).save(root / label / f"{label}_{i}.png")
    train, val = load_train_val(root, val_fraction=0.3)
    calls = []
    # The random three-conv test network sees any two striped squares as 0.995 alike, which its adaptive
    # duplicate threshold (capped at 0.995) calls the same picture; pretrained backbones do not.
    report = health_check(train, val, backbone=TINY, duplicate_similarity=0.9999, on_progress=lambda *call: calls.append(call))
    assert report.clean and report.likely_mislabeled == []
    assert report.summary == f"{CLEAN} 36 images."
    assert 0 < report.neighbour_agreement <= 1
    assert [what for what in dict.fromkeys(what for _, _, what in calls)] == ["reading images", f"encoding images with {TINY}"]
    for what in ("reading images", f"encoding images with {TINY}"):
        done = [d for d, total, w in calls if w == what]
        assert done[0] == 0 and done == sorted(done) and done[-1] == 36 == {t for _, t, w in calls if w == what}.pop()


def test_a_planted_image_is_first_and_carries_its_evidence(tmp_path):
    root = tmp_path / "planted"
    for c, (label, hue) in enumerate({"red": 0.0, "green": 0.33, "blue": 0.62}.items()):
        (root / label).mkdir(parents=True)
        for i in range(12):
            _varied_image(hue, seed=c * 1000 + i).save(root / label / f"{label}_{i}.png")
    make_image((220, 30, 30), seed=5, noise=5).save(root / "blue" / "actually_red.png")
    train, val = load_train_val(root, val_fraction=0.3)
    report = health_check(train, val, backbone=TINY)
    assert [Path(m["path"]).name for m in report.likely_mislabeled][:1] == ["actually_red.png"]
    first = report.likely_mislabeled[0]
    assert first["suggested"] == "red" and first["votes"] >= 4 and first["strength"] >= 1.0
    assert not report.clean and "1 likely mislabel" in report.summary
