"""LogME: how well a backbone's frozen features suit a labelled dataset, from the features alone.

You et al., 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning".
For each class, a Bayesian linear model regresses the one-vs-rest target ``y`` (1 for the class,
0 otherwise) on the features ``F`` (n images x d):

    w ~ N(0, I / alpha),    y | F, w ~ N(F w, I / beta)

Integrating ``w`` out gives the evidence p(y | F, alpha, beta), the probability of the labels
under the model; LogME is its logarithm at the alpha and beta that maximise it, divided by n and
averaged over the classes. Features on which the labels are simple (near-)linear functions give
high evidence; features unrelated to the labels only fit them with a large, improbable ``w`` or
a large noise, and give low evidence. No classifier is trained and nothing is held out, so it
costs one SVD of the features: an *estimate* of transferability that ranks backbones, never an
accuracy. The maximisation is MacKay's fixed point, with every quantity written in the SVD's
basis so that each iteration costs O(d) instead of a d x d solve.
"""

from __future__ import annotations

import numpy as np

from ..errors import WarmstartError

__all__ = ["evidence", "logme", "maximum_evidence"]

_MAX_ITERATIONS = 100
_TOLERANCE = 1e-6  # relative change of alpha and beta at which the fixed point has converged


def _basis(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``U`` and the squared singular values of the features (n x d), as float64."""
    f = np.asarray(features, dtype=np.float64)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    return u, s**2


def evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    """log p(target | features, alpha, beta) of the Bayesian linear model above (not divided by n).

    Args:
        features: n x d matrix, one row per image.
        target: n values to regress on.
        alpha: precision of the weights' prior.
        beta: precision of the noise.
    """
    u, sigma2 = _basis(features)
    y = np.asarray(target, dtype=np.float64)
    return _evidence(sigma2, u.T @ y, float(y @ y), len(y), np.asarray(features).shape[1], alpha, beta)


def _evidence(sigma2: np.ndarray, z: np.ndarray, yy: float, n: int, d: int, alpha: float, beta: float) -> float:
    """The evidence from the SVD: ``sigma2`` squared singular values, ``z`` = U^T y, ``yy`` = y^T y.

    With A = alpha I + beta F^T F and m = beta A^-1 F^T y (the posterior mean of w), the evidence is
    n/2 log beta + d/2 log alpha - n/2 log 2 pi - beta/2 |F m - y|^2 - alpha/2 |m|^2 - 1/2 log|A|.
    A's eigenvalues are alpha + beta sigma_i^2 (alpha alone for the d - r directions with sigma = 0);
    in U's basis |m|^2 and the residual |F m - y|^2 are sums over the r singular directions, plus the
    part of y outside F's column space, which the model cannot fit at all.
    """
    denominators = alpha + beta * sigma2
    m2 = float(np.sum(beta**2 * sigma2 * z**2 / denominators**2))
    residual = float(np.sum((alpha * z / denominators) ** 2)) + max(yy - float(z @ z), 0.0)
    log_det = float(np.sum(np.log(denominators))) + (d - len(sigma2)) * np.log(alpha)
    return (
        n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual - alpha / 2 * m2 - log_det / 2
    )


def _fixed_point(sigma2: np.ndarray, z: np.ndarray, yy: float, n: int) -> tuple[float, float]:
    """alpha and beta at the evidence's maximum (MacKay's updates, from alpha = beta = 1).

    gamma = sum beta sigma^2 / (alpha + beta sigma^2) counts the well-determined directions of w;
    the maximum satisfies alpha = gamma / |m|^2 and beta = (n - gamma) / |F m - y|^2.
    """
    alpha, beta = 1.0, 1.0
    tiny = np.finfo(np.float64).tiny
    for _ in range(_MAX_ITERATIONS):
        denominators = alpha + beta * sigma2
        gamma = float(np.sum(beta * sigma2 / denominators))
        m2 = float(np.sum(beta**2 * sigma2 * z**2 / denominators**2))
        residual = float(np.sum((alpha * z / denominators) ** 2)) + max(yy - float(z @ z), 0.0)
        new_alpha = gamma / max(m2, tiny)
        new_beta = max(n - gamma, tiny) / max(residual, tiny)
        converged = abs(new_alpha - alpha) <= _TOLERANCE * alpha and abs(new_beta - beta) <= _TOLERANCE * beta
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    return alpha, beta


def maximum_evidence(features: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """The maximised evidence of ``target`` given ``features`` and the (alpha, beta) that reach it."""
    u, sigma2 = _basis(features)
    y = np.asarray(target, dtype=np.float64)
    z, yy, n, d = u.T @ y, float(y @ y), len(y), np.asarray(features).shape[1]
    alpha, beta = _fixed_point(sigma2, z, yy, n)
    return _evidence(sigma2, z, yy, n, d, alpha, beta), alpha, beta


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``features`` for ``labels``: the maximised evidence per image, averaged over the classes.

    Higher is better; values are comparable between backbones on the same images and labels, not
    between datasets. Computed in float64 on the raw features, as in the paper (a rescaling of
    the features is absorbed by alpha, so no standardisation is needed).

    Args:
        features: n x d matrix (a torch tensor or anything numpy reads), one row per image.
        labels: n class indices.

    Raises:
        WarmstartError: fewer than two classes, or features and labels of different lengths.
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or len(f) != len(y):
        raise WarmstartError(f"LogME needs one feature row per label; got {f.shape} features for {len(y)} labels.")
    classes = np.unique(y)
    if len(classes) < 2:
        raise WarmstartError("LogME needs images of at least two classes.")
    u, sigma2 = _basis(f)
    n, d = f.shape
    scores = []
    for label in classes:
        target = (y == label).astype(np.float64)
        z, yy = u.T @ target, float(target @ target)
        alpha, beta = _fixed_point(sigma2, z, yy, n)
        scores.append(_evidence(sigma2, z, yy, n, d, alpha, beta) / n)
    return float(np.mean(scores))
