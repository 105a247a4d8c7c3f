"""Counts per class and plain-language warnings about what will hurt training."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .records import DatasetIndex, ImageRecord

__all__ = ["DatasetSummary", "duplicate_groups", "summarize"]


@dataclass(frozen=True)
class DatasetSummary:
    counts: dict[str, int]
    total: int
    skipped: int
    warnings: list[str]


def duplicate_groups(records: list[ImageRecord]) -> list[list[ImageRecord]]:
    """Groups of byte-identical files (compared by size first, then by content hash)."""
    by_size: dict[int, list[ImageRecord]] = {}
    for record in records:
        try:
            by_size.setdefault(os.path.getsize(record.path), []).append(record)
        except OSError:
            continue
    groups: list[list[ImageRecord]] = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_hash: dict[str, list[ImageRecord]] = {}
        for record in same_size:
            with open(record.path, "rb") as handle:
                by_hash.setdefault(hashlib.file_digest(handle, "sha1").hexdigest(), []).append(record)
        groups.extend(group for group in by_hash.values() if len(group) > 1)
    return groups


def _duplicate_warnings(index: DatasetIndex) -> list[str]:
    groups = duplicate_groups(index.records)
    conflicting = [g for g in groups if len({r.label for r in g}) > 1]
    out = []
    if conflicting:
        first = conflicting[0]
        shown = " and ".join(f"'{Path(r.path).name}' ({r.label})" for r in first[:2])
        out.append(
            f"{len(conflicting)} image(s) appear as identical files in more than one class, e.g. {shown}; "
            "remove the wrong copy, or the model is taught two answers for one picture."
        )
    same_class = sum(len(g) - 1 for g in groups if len({r.label for r in g}) == 1)
    if same_class:
        out.append(f"{same_class} file(s) are exact copies of another image in the same class; they count twice in training.")
    return out


def summarize(index: DatasetIndex, min_per_class: int = 5, max_imbalance: float = 5.0) -> DatasetSummary:
    """Counts per class plus plain-language warnings about what will hurt training."""
    counts = index.counts()
    warnings: list[str] = list(index.notes)
    if len(counts) == 1:
        warnings.append(
            f"Only one class ('{next(iter(counts))}') was found; a classifier needs at least two."
        )
    small = [f"{label} ({n})" for label, n in counts.items() if n < min_per_class]
    if small:
        warnings.append(
            f"Classes with fewer than {min_per_class} images will be learned poorly: {', '.join(small)}."
        )
    if len(counts) >= 2:
        largest, smallest = max(counts.values()), min(counts.values())
        if smallest and largest / smallest > max_imbalance:
            warnings.append(
                f"Classes are imbalanced {largest / smallest:.0f}:1; consider class weights or a balanced sampler."
            )
    warnings += _duplicate_warnings(index)
    return DatasetSummary(counts, len(index), len(index.skipped), warnings)
