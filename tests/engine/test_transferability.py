"""LogME against the evidence computed the slow, direct way, on data small enough to do so."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from transfer_core import WarmstartError
from transfer_core.insight.transferability import evidence, logme, maximum_evidence


def direct_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | F, alpha, beta) with w integrated out by hand: y ~ N(0, I / beta + F F^T / alpha)."""
    n = len(target)
    covariance = np.eye(n) / beta + features @ features.T / alpha
    return float(multivariate_normal(np.zeros(n), covariance).logpdf(target))


def direct_maximum(features: np.ndarray, target: np.ndarray) -> float:
    """The evidence maximised over (log alpha, log beta) by a general-purpose optimiser, not a fixed point."""
    found = minimize(lambda p: -direct_evidence(features, target, np.exp(p[0]), np.exp(p[1])), [0.0, 0.0],
                     method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 10_000})
    return -found.fun


def _classes(n_per_class: int, d: int, signal: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose mean differs along the first three of ``d`` feature directions by ``signal``."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    features = rng.normal(size=(len(labels), d))
    features[np.arange(len(labels)), labels] += signal
    return features, labels


@pytest.mark.parametrize("n, d", [(15, 4), (6, 9)], ids=["more-images", "more-features"])
def test_evidence_from_the_svd_equals_the_marginal_likelihood(n, d):
    rng = np.random.default_rng(1)
    features, target = rng.normal(size=(n, d)), (rng.random(n) > 0.5).astype(float)
    for alpha, beta in [(0.3, 2.0), (5.0, 0.7), (1.0, 1.0)]:
        assert evidence(features, target, alpha, beta) == pytest.approx(direct_evidence(features, target, alpha, beta), rel=1e-9)


def test_the_fixed_point_reaches_the_maximum_a_general_optimiser_finds():
    features, labels = _classes(8, 5, signal=1.5, seed=2)
    target = (labels == 0).astype(float)
    best, alpha, beta = maximum_evidence(features, target)
    assert 0 < alpha < 1e6 and 0 < beta < 1e6  # an interior maximum, not a runaway
    assert best == pytest.approx(direct_maximum(features, target), abs=1e-6)
    for factor in (0.5, 2.0):  # and it is a maximum: moving either precision lowers the evidence
        assert direct_evidence(features, target, alpha * factor, beta) < best
        assert direct_evidence(features, target, alpha, beta * factor) < best


def test_logme_is_the_per_image_maximum_averaged_over_one_vs_rest_classes():
    features, labels = _classes(6, 4, signal=2.0, seed=3)
    slow = np.mean([direct_maximum(features, (labels == k).astype(float)) / len(labels) for k in range(3)])
    assert logme(features, labels) == pytest.approx(slow, abs=1e-6)


def test_features_that_separate_the_classes_score_higher_than_random_ones():
    separating, labels = _classes(20, 16, signal=4.0, seed=4)
    random_features = np.random.default_rng(5).normal(size=separating.shape)
    weakly, _ = _classes(20, 16, signal=1.0, seed=4)
    assert logme(separating, labels) > logme(weakly, labels) > logme(random_features, labels)
    # Rescaling the features is absorbed by alpha: LogME compares backbones whose features differ in scale.
    assert logme(separating * 50.0, labels) == pytest.approx(logme(separating, labels), abs=1e-6)


def test_bad_input_is_one_clear_sentence():
    with pytest.raises(WarmstartError, match="at least two classes"):
        logme(np.ones((4, 3)), np.zeros(4, dtype=int))
    with pytest.raises(WarmstartError, match="one feature row per label"):
        logme(np.ones((4, 3)), np.array([0, 1, 0]))
