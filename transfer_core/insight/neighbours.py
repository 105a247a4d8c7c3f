"""Exact nearest neighbours by cosine similarity, a block of rows at a time.

The health check asks, for every image, which images are most like it. The obvious way, an
n x n similarity matrix sorted per row, needs 10 GB for the matrix alone at 50,000 images and
twice that for the sort. Here the matrix is only ever computed a block of rows at a time, and
each block is reduced at once to what the checks use: the k most similar images, and the mean
similarity to the few nearest images of each class. Memory grows with n·k and n·classes, and
the answers are the ones the full matrix gives (exact search, not approximate).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BLOCK_BYTES", "NeighbourTable", "neighbour_table", "pairs_at_least", "unit_rows"]

BLOCK_BYTES = 32 * 1024**2  # similarities computed at once; the sort of a block needs about twice this again


@dataclass(frozen=True)
class NeighbourTable:
    """What the checks need of each image's neighbourhood; ``k`` columns, most similar first."""

    nearest: np.ndarray  # (n, k) indices of the k most similar other images
    similarity: np.ndarray  # (n, k) their cosine similarities, descending
    class_index: np.ndarray  # (n,) each image's position in ``classes``
    classes: np.ndarray  # the distinct labels, sorted
    by_class: np.ndarray  # (n, classes) mean similarity to the k nearest of each class (itself left out); NaN if too few

    @property
    def k(self) -> int:
        return self.nearest.shape[1]


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32), so a dot product is their cosine similarity."""
    rows = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, np.finfo(np.float32).tiny)


def _blocks(unit: np.ndarray, rows: np.ndarray, block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(row indices, similarities of those rows to every image)`` with each image's similarity to itself at -inf."""
    step = max(1, block_bytes // (4 * max(len(unit), 1)))
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        block = unit[chunk] @ unit.T
        block[np.arange(len(chunk)), chunk] = -np.inf
        yield chunk, block


def neighbour_table(features: np.ndarray, labels: Sequence[str], neighbours: int = 5,
                    block_bytes: int = BLOCK_BYTES) -> NeighbourTable:
    """Each image's ``neighbours`` most similar others, and its mean similarity to the nearest of each class.

    Args:
        features: ``(n, d)`` features, n >= 2; they are compared by cosine similarity.
        labels: each image's label.
        neighbours: k; fewer when there are fewer other images.
        block_bytes: the most similarities held at once.
    """
    unit = unit_rows(features)
    n = len(unit)
    classes, class_index = np.unique(np.asarray(labels), return_inverse=True)
    k = max(1, min(neighbours, n - 1))
    members = [np.flatnonzero(class_index == c) for c in range(len(classes))]
    depths = [min(k, len(m) - 1) for m in members]  # the same count for members (themselves left out) and others
    nearest = np.empty((n, k), dtype=np.int64)
    similarity = np.empty((n, k), dtype=np.float32)
    by_class = np.full((n, len(classes)), np.nan)
    for rows, block in _blocks(unit, np.arange(n), block_bytes):
        top = np.argpartition(block, n - k, axis=1)[:, n - k:]
        top_sims = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        nearest[rows] = np.take_along_axis(top, order, axis=1)
        similarity[rows] = np.take_along_axis(top_sims, order, axis=1)
        for c, (group, depth) in enumerate(zip(members, depths)):
            if depth >= 1:
                part = block[:, group]
                by_class[rows, c] = np.partition(part, len(group) - depth, axis=1)[:, len(group) - depth:].mean(axis=1, dtype=np.float64)
    return NeighbourTable(nearest, similarity, class_index, classes, by_class)


def pairs_at_least(features: np.ndarray, table: NeighbourTable, threshold: float,
                   block_bytes: int = BLOCK_BYTES) -> list[tuple[int, int, float]]:
    """Every pair ``(i, j)``, i < j, at least ``threshold`` alike, in index order.

    Most images' pairs are in the table already; an image whose k-th neighbour still reaches
    the threshold (a picture present more than k times) may have more, so only its row is
    compared with every image again.
    """
    found: dict[tuple[int, int], float] = {}
    crowded = np.flatnonzero(table.similarity[:, -1] >= threshold)
    for i, j in zip(*np.nonzero(table.similarity >= threshold)):
        a, b = sorted((int(i), int(table.nearest[i, j])))
        found[(a, b)] = float(table.similarity[i, j])
    if len(crowded):
        unit = unit_rows(features)
        for rows, block in _blocks(unit, crowded, block_bytes):
            for r, row in enumerate(rows):
                for other in np.flatnonzero(block[r] >= threshold):
                    a, b = sorted((int(row), int(other)))
                    found[(a, b)] = float(block[r, other])
    return [(a, b, found[(a, b)]) for a, b in sorted(found)]
