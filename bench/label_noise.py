"""Benchmark: planted label errors found by confident learning and by the health check's neighbour vote.

    python bench/label_noise.py [DATA] [--rates 0.05,0.10] [--seeds 0,1,2] [--backbone efficientnet_lite0]
    python bench/label_noise.py --scale /tmp/scale-work/data-50000      # time the ranking at 50,000 images

DATA (default ``/work/shared/datasets/flowers-mini``) is pooled, training and validation together, and
encoded once with the backbone's pretrained features. For each noise rate and seed, that share of the
labels is flipped at random to another class (drawn uniformly), and both methods look at the noisy labels:

- **confident learning** (:func:`transfer_core.insight.label_errors.rank_label_errors`): out-of-fold
  logistic-regression probabilities, cleanlab's ``prune_by_noise_rate``; its flags are its natural operating point;
- **neighbour vote** (the health check's ``likely_mislabels``, default settings): its flags are its own;
- **review list** (:func:`transfer_core.insight.label_errors.labels_to_check`, what the Data page shows): both
  flag sets, images both flag first, then the neighbour vote's others, then confident learning's others.

Both are also cut at the same length, k = the number flipped (precision@k, which equals recall@k there):
confident learning by its label quality score over all images, the neighbour vote by its flags (strongest
first), then the other images by the share of their 5 nearest neighbours carrying one other label, then by
how much closer that class is than their own; the review list by its order, then confident learning's. The clean set (rate 0) shows how many each flags with nothing
planted. Prints mean ± standard deviation over seeds as a Markdown table.

``--scale DATA`` times the ranking on a large folder instead (train/val split 0.2, seed 0, as ``bench/scale.py``
makes it; its features come from the workspace's feature cache or are computed once, minutes at 50,000 images).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer_core import load_train_val  # noqa: E402
from transfer_core.insight.health import likely_mislabels  # noqa: E402
from transfer_core.insight.label_errors import labels_to_check, rank_label_errors  # noqa: E402
from transfer_core.insight.neighbours import neighbour_table  # noqa: E402
from transfer_core.insight.shootout import lazy_pretrained_backbone, pretrained_features  # noqa: E402

DEFAULT_DATA = "/work/shared/datasets/flowers-mini"


def pooled_features(data: str, backbone: str, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Pretrained features and labels of every readable image of ``data``, training then validation."""
    import torch

    train, val = load_train_val(data, val_fraction=val_fraction, seed=0)
    classes = sorted(set(train.classes) | set(val.classes))
    device = torch.device("cpu")
    parts = pretrained_features(backbone, [train, val], classes, device, lazy_pretrained_backbone(backbone, device))
    features = torch.cat([x for x, _, _ in parts]).float().numpy()
    labels = np.array([r.label for _, _, records in parts for r in records])
    return features, labels


def flip(labels: np.ndarray, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` with ``round(rate * n)`` of them, drawn at random, changed to another class; and which."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    flipped = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    noisy = labels.copy()
    for i in flipped:
        noisy[i] = rng.choice(classes[classes != labels[i]])
    return noisy, np.sort(flipped)


def neighbour_order(features: np.ndarray, labels: np.ndarray) -> tuple[list[int], list[int]]:
    """The neighbour vote's flags (its order), and every image in the order described in the module docstring."""
    table = neighbour_table(features, labels)
    flags = [item["index"] for item in likely_mislabels(table)]
    votes = table.class_index[table.nearest]
    rows = np.arange(len(labels))
    counts = np.stack([(votes == c).sum(axis=1) for c in range(len(table.classes))], axis=1)
    counts[rows, table.class_index] = -1
    other = counts.argmax(axis=1)
    margin = np.nan_to_num(table.by_class[rows, other] - table.by_class[rows, table.class_index], nan=-np.inf)
    chosen = set(flags)
    rest = [int(i) for i in np.lexsort((-margin, -counts[rows, other])) if int(i) not in chosen]
    return flags, flags + rest


def scores(flags: list[int] | np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall of ``flags`` against the truly flipped images (precision 1 when nothing is flagged)."""
    hits = len(set(map(int, flags)) & set(map(int, truth)))
    return (hits / len(flags) if len(flags) else 1.0), hits / len(truth)


def measure(features: np.ndarray, labels: np.ndarray, rate: float, seed: int) -> dict:
    """Both methods on one noisy copy of the labels."""
    noisy, truth = flip(labels, rate, seed)
    k = len(truth)
    started = time.perf_counter()
    found = rank_label_errors(features, noisy, seed=seed)
    cl_seconds = time.perf_counter() - started
    cl_flags = [item["index"] for item in found.issues]
    nn_flags, nn_all = neighbour_order(features, noisy)
    votes = likely_mislabels(neighbour_table(features, noisy))
    listed = [item["index"] for item in labels_to_check(features, noisy, votes, seed=seed)[0]]
    row = {"rate": rate, "seed": seed, "flipped": k, "cl_seconds": cl_seconds,
           "cl_flags": len(cl_flags), "nn_flags": len(nn_flags), "list_flags": len(listed)}
    if k:  # with nothing planted, precision and recall are undefined: the flag counts say it all
        row["cl_precision"], row["cl_recall"] = scores(cl_flags, truth)
        row["nn_precision"], row["nn_recall"] = scores(nn_flags, truth)
        row["list_precision"], row["list_recall"] = scores(listed, truth)
        row["cl_at_k"] = scores(found.ranking()[:k], truth)[0]
        row["nn_at_k"] = scores(nn_all[:k], truth)[0]
        in_list = set(listed)
        row["list_at_k"] = scores((listed + [int(i) for i in found.ranking() if int(i) not in in_list])[:k], truth)[0]
    return row


def _cell(rows: list[dict], key: str, fmt: str = "{:.2f}") -> str:
    values = [r[key] for r in rows if key in r]
    if not values:
        return "–"
    return (fmt + " ± " + fmt).format(np.mean(values), np.std(values)) if len(values) > 1 else fmt.format(values[0])


def table(rows: list[dict]) -> str:
    """Mean ± standard deviation over seeds, one line per noise rate."""
    methods = [("confident learning", "cl"), ("neighbour vote", "nn"), ("review list", "list")]
    lines = ["| labels flipped | method | flags | precision | recall | precision@k |", "|---:|---|---:|---:|---:|---:|"]
    for rate in sorted({r["rate"] for r in rows}):
        group = [r for r in rows if r["rate"] == rate]
        flipped = f"{rate:.0%} ({_cell(group, 'flipped', '{:.0f}').split(' ')[0]} images)"
        for name, key in methods:
            lines.append("| " + " | ".join([
                flipped, name, _cell(group, f"{key}_flags", "{:.1f}"), _cell(group, f"{key}_precision"),
                _cell(group, f"{key}_recall"), _cell(group, f"{key}_at_k"),
            ]) + " |")
    return "\n".join(lines)


def time_at_scale(data: str, backbone: str) -> None:
    """Seconds the ranking takes on ``data``'s features (read once, outside the timing)."""
    features, labels = pooled_features(data, backbone)
    started = time.perf_counter()
    found = rank_label_errors(features, labels)
    seconds = time.perf_counter() - started
    print(f"{len(labels):,} images x {features.shape[1]:,} features, {found.folds} folds: ranking took {seconds:.1f} s, "
          f"{len(found.issues):,} flagged; out-of-fold accuracy {(found.probabilities.argmax(1) == np.searchsorted(found.classes, labels)).mean():.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=DEFAULT_DATA, help="a dataset folder (default %(default)s)")
    parser.add_argument("--rates", default="0.05,0.10", help="shares of labels to flip, comma-separated (default %(default)s)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the flips, comma-separated (default %(default)s)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--scale", metavar="DATA", help="time the ranking on this (large) folder instead")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.scale:
        time_at_scale(args.scale, args.backbone)
        return 0
    try:
        rates = [0.0] + [float(r) for r in args.rates.split(",") if r.strip()]
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error("--rates takes fractions like 0.05,0.10 and --seeds whole numbers like 0,1,2.")
    features, labels = pooled_features(args.data, args.backbone)
    print(f"{len(labels)} images, {len(np.unique(labels))} classes, {features.shape[1]} features ({args.backbone})")
    rows = []
    for rate in rates:
        for seed in seeds if rate else seeds[:1]:
            row = measure(features, labels, rate, seed)
            rows.append(row)
            print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
