"""The health check at scale: the same findings as the exact n x n method, without ever holding n x n numbers."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from transfer_core.insight.health import find_problems


def _exact_findings(features: np.ndarray, labels: list[str], neighbours: int = 5,
                    agreement: float = 0.8, strength: float = 1.1) -> dict:
    """The health check as it was before neighbour search: the full similarity matrix, sorted per row.

    Kept verbatim (bar the plumbing) as the reference the scalable search must reproduce.
    """
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = (unit @ unit.T).astype(np.float32)
    np.fill_diagonal(similarity, -1.0)
    nearest = similarity.max(axis=1)
    median = float(np.median(nearest))
    threshold = float(np.clip(median + 3 * float(np.median(np.abs(nearest - median))), 0.9, 0.995))
    close_i, close_j = np.nonzero(np.triu(similarity >= threshold, k=1))
    pairs = sorted(((int(i), int(j), float(similarity[i, j])) for i, j in zip(close_i, close_j)), key=lambda p: -p[2])

    names = np.asarray(labels)
    n = len(names)
    scores = np.array(similarity, dtype=np.float64, copy=True)
    np.fill_diagonal(scores, -np.inf)
    k = min(neighbours, n - 1)
    agree = float((names[np.argpartition(-scores, k - 1, axis=1)[:, :k]] == names[:, None]).mean())
    classes, index = np.unique(names, return_inverse=True)
    nearest_by_class = np.full((n, len(classes)), np.nan)
    for c in range(len(classes)):
        members = np.flatnonzero(index == c)
        depth = min(k, len(members) - 1)
        if depth >= 1:
            nearest_by_class[:, c] = (-np.partition(-scores[:, members], depth - 1, axis=1)[:, :depth]).mean(axis=1)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    found = []
    for i in range(n):
        y = index[i]
        votes = np.bincount(index[top[i]], minlength=len(classes))
        votes[y] = 0
        c = int(votes.argmax())
        if votes[c] < agreement * k:
            continue
        own, other = nearest_by_class[i, y], nearest_by_class[i, c]
        typical = float(np.median(nearest_by_class[index == c, c] - nearest_by_class[index == c, y]))
        margin = float(other - own)
        if not (np.isfinite(margin) and np.isfinite(typical)) or typical <= 0 or margin < strength * typical:
            continue
        found.append({"index": i, "suggested": str(classes[c]), "votes": int(votes[c]), "strength": margin / typical})
    found.sort(key=lambda item: -item["strength"])
    return {"threshold": threshold, "pairs": pairs, "agreement": agree, "mislabels": found}


def _messy_set(per_class: int = 70, classes: int = 4, dim: int = 24, seed: int = 3) -> tuple[np.ndarray, list[str]]:
    """Overlapping clusters with planted trouble: near-copies, one picture nine times over, and mislabels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim))
    features = np.vstack([centres[c] + rng.normal(0, 0.6, (per_class, dim)) for c in range(classes)])
    labels = [f"class{c}" for c in range(classes) for _ in range(per_class)]
    copies = rng.choice(len(labels), 12, replace=False)
    features = np.vstack([features, features[copies] + rng.normal(0, 1e-3, (12, dim))])
    labels += [labels[i] for i in copies]
    for i in rng.choice(classes * per_class, 6, replace=False):  # mislabels: a point deep inside another class
        labels[i] = f"class{(int(labels[i][-1]) + 1) % classes}"
    crowd = features[0] + rng.normal(0, 1e-3, (8, dim))  # more copies of one picture than there are neighbours
    return np.vstack([features, crowd]).astype(np.float32), labels + [labels[0]] * 8


@pytest.mark.parametrize("seed", [3, 11])
def test_neighbour_search_finds_exactly_what_the_full_matrix_found(seed):
    features, labels = _messy_set(seed=seed)
    expected = _exact_findings(features, labels)
    found = find_problems(features, labels)
    assert expected["pairs"] and expected["mislabels"], "the planted trouble must be found by the reference too"
    assert found.duplicate_threshold == pytest.approx(expected["threshold"], abs=1e-6)
    # The same pairs with the same similarities; among copies alike to 1e-7 the order may differ by float rounding.
    assert sorted((p.a, p.b) for p in found.pairs) == sorted((i, j) for i, j, _ in expected["pairs"])
    exact = {(i, j): s for i, j, s in expected["pairs"]}
    assert [p.similarity for p in found.pairs] == pytest.approx([exact[p.a, p.b] for p in found.pairs], abs=1e-5)
    assert [p.similarity for p in found.pairs] == sorted((p.similarity for p in found.pairs), reverse=True)
    assert found.neighbour_agreement == pytest.approx(expected["agreement"])
    assert [(m["index"], m["suggested"], m["votes"]) for m in found.mislabels] == [
        (m["index"], m["suggested"], m["votes"]) for m in expected["mislabels"]
    ]
    assert [m["strength"] for m in found.mislabels] == pytest.approx([m["strength"] for m in expected["mislabels"]], rel=1e-4)


def test_the_search_never_holds_an_n_by_n_matrix():
    n = 6000
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (n, 16)).astype(np.float32)
    labels = [f"c{i % 7}" for i in range(n)]
    n_by_n = n * n * 4  # 144 MB as float32; the exact method held this twice over
    tracemalloc.start()
    try:
        found = find_problems(features, labels, block_bytes=4 * 1024**2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found.neighbour_agreement is not None
    assert peak < n_by_n / 4, f"peak {peak / 1e6:.0f} MB for {n} images: the search grows with n x n"


def test_the_embedding_map_draws_its_points_from_every_class():
    from transfer_core.insight.embedding_map import spread_sample

    items = [(label, i) for label in "abcdefghij" for i in range(1000)]  # 10,000 images, sorted by class
    drawn = spread_sample(items, 2000, seed=1)
    assert len(drawn) == 2000 and drawn == sorted(drawn) and drawn == spread_sample(items, 2000, seed=1)
    per_class = {label: sum(1 for l, _ in drawn if l == label) for label in "abcdefghij"}
    assert min(per_class.values()) > 150  # about 200 each, not the first two classes only
    assert spread_sample(items[:50], 2000) == items[:50]
