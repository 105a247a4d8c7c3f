"""Ranked label errors by confident learning (Northcutt, Jiang and Chuang, JAIR 2021) on pretrained features.

A label can be judged only by a model that has not learned it. So every image is scored by a
logistic-regression probe trained on the *other* folds of a stratified k-fold split of the frozen
backbone's features (the same cached features the health check reads, so this costs seconds):
each image gets out-of-fold class probabilities. Confident learning then compares those with the
given labels class by class: it counts, per pair (given label, likely true label), the images the
probe places in another class with more confidence than that class's own images typically get
(per-class thresholds, so a class the probe is unsure of everywhere is not blamed), and flags that
many images of each pair, those with the largest lead of the other class first (``prune_by_noise_rate``).
The flags are then ranked by the probability their given label gets. cleanlab implements that step.

Scale. With a few thousand images the probe sees every standardised feature (seconds at most). Beyond
that, each fold first projects the features onto their main directions (whitened PCA fitted on a sample
of that fold's training images: no labels, and never the images it scores), which keeps the probe's cost
per iteration small and its problem well conditioned: 50,000 images of 1,280 features take about
6 s on two cores (``bench/label_noise.py --scale``). Small sets keep every feature because whitening directions estimated from a few
hundred images amplifies noise (on 210 flower photos it lowered the share of planted errors found).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..errors import WarmstartError

__all__ = [
    "LabelErrors", "MAX_FOLDS", "label_error_evidence", "labels_to_check", "out_of_fold_probabilities", "rank_label_errors",
]

MAX_FOLDS = 5  # each probe learns from 80 % of the images; more folds cost time and change little
COMPONENTS = 256  # directions kept per fold with many images (Lite0 has 1,280 features)
PCA_SAMPLE = 4096  # images a fold's projection is fitted on (16 per direction kept); fewer training images: no projection
C = 0.5  # the probe's inverse regularisation strength, as in the backbone shoot-out's probe
MAX_ITER = 200  # a cap: whitened inputs converge in a few dozen iterations; an unconverged probe still ranks


@dataclass(frozen=True)
class LabelErrors:
    """What :func:`rank_label_errors` found, by position in the feature matrix.

    ``issues`` are the images confident learning flags, most likely wrong first: ``index``, ``label``
    (given), ``suggested`` (the other class the probe favours most), ``label_probability`` and
    ``suggested_probability`` (out-of-fold), and ``quality`` (cleanlab's label quality score; the
    same as ``label_probability`` for the self-confidence ranking used here: lower is more suspect).
    """

    issues: list[dict]
    quality: np.ndarray  # (n,) every image's label quality, lower = more likely wrong
    probabilities: np.ndarray  # (n, classes) out-of-fold probabilities
    classes: list[str]
    folds: int

    def ranking(self) -> np.ndarray:
        """Every image's position, most suspect first (ties by position): a list to cut at any length."""
        return np.argsort(self.quality, kind="stable")


def _probe(seed: int, n_features: int, n_train: int) -> Pipeline:
    """The per-fold model: standardise, whitened PCA (for many images of many features), logistic regression."""
    steps: list = [("scale", StandardScaler())]
    if n_train > PCA_SAMPLE and n_features > COMPONENTS:
        # The covariance of the sample (d x d) is cheap when the sample has more rows than features.
        steps.append(("project", PCA(COMPONENTS, whiten=True, svd_solver="covariance_eigh", random_state=seed)))
    steps.append(("classify", LogisticRegression(C=C, max_iter=MAX_ITER)))
    return Pipeline(steps)


def _fit(model: Pipeline, features: np.ndarray, targets: np.ndarray, seed: int) -> Pipeline:
    """Fit the projection on a sample of the training images and the classifier on all of them."""
    rows = np.arange(len(features))
    if len(rows) > PCA_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(rows, PCA_SAMPLE, replace=False))
    front, classify = model[:-1], model[-1]
    front.fit(features[rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # MAX_ITER is a deliberate time cap
        classify.fit(front.transform(features), targets)
    return model


def _check(features: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Classes, class positions and the number of folds; a clear error when the data cannot be judged."""
    if features.ndim != 2 or len(features) != len(labels):
        raise WarmstartError(f"Features ({features.shape}) and labels ({len(labels)}) do not match: one feature row per image is needed.")
    if not np.isfinite(features).all():
        raise WarmstartError("Some image features are not finite numbers; recompute the features (clear the feature cache).")
    classes, targets = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    if len(classes) < 2:
        raise WarmstartError(f"Finding label errors needs at least two classes; there is only {len(classes)}.")
    counts = np.bincount(targets, minlength=len(classes))
    smallest = int(counts.argmin())
    if counts[smallest] < 2:
        raise WarmstartError(
            f"Class '{classes[smallest]}' has only {counts[smallest]} image, and finding label errors needs at least 2 per "
            "class (each image is judged by a model trained without it, which must still see its class); add images of "
            "it or leave the class out."
        )
    return classes, targets, int(min(MAX_FOLDS, counts.min()))


def out_of_fold_probabilities(
    features: np.ndarray,
    targets: np.ndarray,
    folds: int,
    seed: int = 0,
    make_model: Callable[[int, int, int], Pipeline] = _probe,
) -> np.ndarray:
    """Class probabilities for every image from a probe trained on the other folds only.

    Args:
        features: ``(n, d)`` features.
        targets: ``(n,)`` class positions 0..K-1, every class at least ``folds`` times.
        folds: k of the stratified split (so each fold holds every class).
        seed: shuffles the split and samples each fold's projection.
        make_model: ``(seed, n_features, n_train) -> Pipeline`` whose last step is the classifier.

    Returns:
        ``(n, K)`` probabilities; row ``i`` comes from the one model whose training set left ``i`` out.
    """
    classes = int(targets.max()) + 1
    probabilities = np.zeros((len(targets), classes))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fold, (train, held_out) in enumerate(split.split(features, targets)):
        model = _fit(make_model(seed, features.shape[1], len(train)), features[train], targets[train], seed + fold)
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(features[held_out])
    return probabilities


def rank_label_errors(features: np.ndarray, labels: Sequence[str], seed: int = 0) -> LabelErrors:
    """Likely label errors among ``features``, most likely first, by confident learning on out-of-fold probabilities.

    Args:
        features: ``(n, d)`` pretrained features of the labelled images.
        labels: each image's given label; every class needs at least 2 images.
        seed: the fold split's seed (the same seed gives the same list).

    Raises:
        WarmstartError: fewer than two classes, a class with a single image, or features and labels that do not match.
    """
    features = np.asarray(features, dtype=np.float32)
    classes, targets, folds = _check(features, labels)
    # One BLAS thread: the probe's products are thin (n x d times d x classes), so extra threads gain little, and
    # while the cores are busy (a training worker, other users) their spin-waiting made 50,000 images take 7x longer.
    with threadpool_limits(limits=1):
        probabilities = out_of_fold_probabilities(features, targets, folds, seed)
    # n_jobs=1: cleanlab would otherwise fork a process pool, which has no place inside a web server; the
    # per-class pruning it parallelises is a partial sort, milliseconds even at 50,000 images.
    flagged = find_label_issues(targets, probabilities, filter_by="prune_by_noise_rate",
                                return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(targets, probabilities, method="self_confidence")
    others = probabilities.copy()
    others[np.arange(len(targets)), targets] = -np.inf
    suggested = others.argmax(axis=1)
    issues = [{
        "index": int(i), "label": str(classes[targets[i]]), "suggested": str(classes[suggested[i]]),
        "label_probability": float(probabilities[i, targets[i]]), "suggested_probability": float(probabilities[i, suggested[i]]),
        "quality": float(quality[i]),
    } for i in flagged]
    return LabelErrors(issues, quality, probabilities, [str(c) for c in classes], folds)


def label_error_evidence(item: dict) -> str:
    """The held-out probabilities of an entry of :attr:`LabelErrors.issues` (or of the review list), as a sentence."""
    return (f"A model that never saw this image gives {item['label']} (its label) {item['label_probability']:.0%} "
            f"and {item['suggested']} {item['suggested_probability']:.0%}.")


def labels_to_check(
    features: np.ndarray, labels: Sequence[str], neighbour_flags: Sequence[dict], seed: int = 0,
) -> tuple[list[dict], str | None]:
    """The Data page's review list: confident learning's flags and the neighbour vote's, most convincing first.

    The two judge differently: the neighbour vote (:func:`~transfer_core.insight.health.likely_mislabels`)
    flags few images, nearly all truly mislabelled, and confident learning finds most planted errors at
    lower precision (``bench/label_noise.py``). So images both flag come first, then the neighbour vote's
    others (strongest first), then confident learning's others (least likely label first).

    Args:
        features, labels, seed: as for :func:`rank_label_errors`.
        neighbour_flags: the neighbour vote's flags, each with its ``index``.

    Returns:
        One dict per image: ``index``, ``label``, ``suggested``, ``label_probability`` and
        ``suggested_probability`` (out-of-fold; None when confident learning could not run),
        ``confident_learning`` (whether it flagged the image) and ``neighbours`` (the neighbour
        vote's entry, or None); and a sentence saying why confident learning could not run, or None.
    """
    try:
        found = rank_label_errors(features, labels, seed)
    except WarmstartError as exc:
        found, note = None, str(exc)
    except (ValueError, np.linalg.LinAlgError) as exc:  # a degenerate set scikit-learn or cleanlab cannot judge
        found, note = None, f"Confident learning could not judge these labels ({str(exc).splitlines()[0][:160]})."
    else:
        note = None
    issues = {item["index"]: item for item in found.issues} if found is not None else {}  # least likely label first
    votes = {int(item["index"]): item for item in neighbour_flags}  # strongest first
    order = [i for i in issues if i in votes] + [i for i in votes if i not in issues] + [i for i in issues if i not in votes]
    listed = []
    for i in order:
        if i in issues:
            entry = {key: issues[i][key] for key in ("index", "label", "suggested", "label_probability", "suggested_probability")}
        else:
            vote = votes[i]
            entry = {"index": i, "label": vote["label"], "suggested": vote["suggested"], "label_probability": None,
                     "suggested_probability": None}
            if found is not None:
                column = {c: k for k, c in enumerate(found.classes)}
                entry["label_probability"] = float(found.probabilities[i, column[vote["label"]]])
                entry["suggested_probability"] = float(found.probabilities[i, column[vote["suggested"]]])
        vote = votes.get(i)
        listed.append({**entry, "confident_learning": i in issues, "neighbours": None if vote is None else dict(vote)})
    return listed, note
