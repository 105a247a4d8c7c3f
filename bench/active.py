"""Benchmark: how many labels each "label these next" strategy needs, by simulating the labelling loop.

    python bench/active.py [DATA] [--seeds 0,1,2] [--start 2] [--batch 10] [--budget 100] [--out /tmp/active.html]

DATA (default ``/work/shared/datasets/flowers-mini``) must have ``train/`` and ``val/``. Its training images are
the unlabelled pool, their labels hidden until a strategy "asks" for them; its validation images measure accuracy.
Each seed starts every strategy from the same ``--start`` random labelled images per class, then adds rounds of
``--batch`` labels chosen by:

- **random**: uniformly among the unlabelled images;
- **cold start** (:func:`transfer_core.insight.selection.typical_diverse`, TypiClust): needs no model;
- **uncertainty + diversity** (:func:`transfer_core.insight.selection.uncertain_diverse`): margins of the current
  round's model.

The model of each round is a frozen-feature probe: a logistic regression on the backbone's cached pretrained
features (L2-normalised), which is what a frozen run's head learns, in milliseconds instead of minutes. With
``--pseudo`` each strategy also gets a self-training arm (:func:`transfer_core.insight.selection.pseudo_labels`):
the probe's confident predictions on the rest of the pool (``--threshold``, default 0.9, at most ``--cap`` per class) join
its training set for a second fit; selection still uses the first fit, and accuracy is only ever measured on
real labels. Prints accuracy (mean ± std over seeds) against the number of labels, and how many labels each
strategy needs to reach random selection's final mean accuracy; writes a plotly chart to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer_core.data.sources import load_source  # noqa: E402
from transfer_core.insight.selection import pseudo_labels, typical_diverse, uncertain_diverse  # noqa: E402
from transfer_core.insight.shootout import lazy_pretrained_backbone, pretrained_features  # noqa: E402

DEFAULT_DATA = "/work/shared/datasets/flowers-mini"
STRATEGIES = ("random", "cold start", "uncertainty + diversity")


def features_of(data: str, backbone: str):
    """L2-normalised pretrained features and class numbers of ``data``'s train/ (the pool) and val/."""
    import torch

    train, val = load_source(data)
    if val is None:
        raise SystemExit(f"'{data}' needs train/ and val/ folders.")
    classes = sorted(set(train.classes) | set(val.classes))
    device = torch.device("cpu")
    parts = pretrained_features(backbone, [train, val], classes, device, lazy_pretrained_backbone(backbone, device))
    out = []
    for x, y, _ in parts:
        x = x.float().numpy()
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True), np.asarray(y)))
    return out, classes


def fit(x: np.ndarray, y: np.ndarray, classes: int):
    """The round's probe; its probabilities cover every class even before a class has many labels."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=10.0, max_iter=2000).fit(x, y)
    def probabilities(z: np.ndarray) -> np.ndarray:
        full = np.zeros((len(z), classes))
        full[:, model.classes_] = model.predict_proba(z)
        return full
    return probabilities


def simulate(pool, val, classes: int, strategy: str, seed: int, start: int, batch: int, budget: int, pseudo: bool, cap: int, threshold: float = 0.9) -> list[tuple[int, float, int, float]]:
    """(labels, validation accuracy, pseudo-labels used, their accuracy) after each round of one strategy and seed."""
    (x, y), (vx, vy) = pool, val
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(x), dtype=bool)
    for c in range(classes):  # the same start for every strategy of this seed
        labelled[rng.choice(np.flatnonzero(y == c), size=start, replace=False)] = True
    pick_rng = np.random.default_rng(seed + 1000)
    curve = []
    while True:
        probabilities = fit(x[labelled], y[labelled], classes)
        train_x, train_y = x[labelled], y[labelled]
        if pseudo:
            chosen = pseudo_labels(probabilities(x), ~labelled, threshold=threshold, cap_per_class=cap)
            used, right = len(chosen), float(np.mean([y[i] == c for i, c in chosen])) if chosen else float("nan")
            if chosen:
                rows = np.array([i for i, _ in chosen])
                train_x = np.concatenate([train_x, x[rows]])
                train_y = np.concatenate([train_y, np.array([c for _, c in chosen])])
            accuracy = float((fit(train_x, train_y, classes)(vx).argmax(1) == vy).mean())
        else:
            accuracy, used, right = float((probabilities(vx).argmax(1) == vy).mean()), 0, float("nan")
        curve.append((int(labelled.sum()), accuracy, used, right))
        n = min(batch, budget - int(labelled.sum()), int((~labelled).sum()))
        if n <= 0:
            return curve
        if strategy == "random":
            rows = pick_rng.choice(np.flatnonzero(~labelled), size=n, replace=False)
        elif strategy == "cold start":
            rows = [i for i, _ in typical_diverse(x, labelled, n, seed)]
        else:
            rows = [i for i, _ in uncertain_diverse(probabilities(x), x, labelled, n, seed)]
        assert not labelled[rows].any() and len(set(map(int, rows))) == n
        labelled[rows] = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=DEFAULT_DATA)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--start", type=int, default=2, help="labelled images per class at the start (default %(default)s)")
    parser.add_argument("--batch", type=int, default=10, help="labels added per round (default %(default)s)")
    parser.add_argument("--budget", type=int, default=100, help="stop at this many labels (default %(default)s)")
    parser.add_argument("--pseudo", action="store_true", help="add a self-training arm per strategy")
    parser.add_argument("--cap", type=int, default=10, help="pseudo-labels per class at most (default %(default)s)")
    parser.add_argument("--threshold", type=float, default=0.9, help="pseudo-label confidence threshold (default %(default)s)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--out", default="/tmp/warmstart-active.html", help="plotly HTML chart (default %(default)s)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    (pool, val), classes = features_of(args.data, args.backbone)
    print(f"pool {len(pool[0])} images, validation {len(val[0])}, {len(classes)} classes, {pool[0].shape[1]} features "
          f"({args.backbone}, logistic-regression probe on frozen features)")
    arms = [(s, False) for s in STRATEGIES] + ([(s, True) for s in STRATEGIES] if args.pseudo else [])
    rows = []
    for strategy, pseudo in arms:
        name = strategy + (" + pseudo-labels" if pseudo else "")
        for seed in seeds:
            for labels, accuracy, used, right in simulate(
                pool, val, len(classes), strategy, seed, args.start, args.batch, args.budget, pseudo, args.cap, args.threshold
            ):
                rows.append({"arm": name, "seed": seed, "labels": labels, "accuracy": accuracy, "pseudo": used, "pseudo_right": right})
    names = list(dict.fromkeys(r["arm"] for r in rows))
    counts = sorted({r["labels"] for r in rows})
    mean = {(a, n): np.mean([r["accuracy"] for r in rows if r["arm"] == a and r["labels"] == n]) for a in names for n in counts}
    std = {(a, n): np.std([r["accuracy"] for r in rows if r["arm"] == a and r["labels"] == n]) for a in names for n in counts}
    print("\n| labels | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for n in counts:
        print(f"| {n} | " + " | ".join(f"{mean[a, n]:.3f} ± {std[a, n]:.3f}" for a in names) + " |")
    target = mean["random", counts[-1]]
    print(f"\nLabels needed to reach random selection's final mean accuracy ({target:.3f} at {counts[-1]} labels):")
    for a in names:
        reached = [n for n in counts if mean[a, n] >= target - 1e-9]
        print(f"- {a}: {reached[0] if reached else f'not reached by {counts[-1]}'}")
    for a in names:
        if "pseudo" in a:
            used = [r for r in rows if r["arm"] == a and r["pseudo"]]
            print(f"- {a}: {np.mean([r['pseudo'] for r in rows if r['arm'] == a]):.1f} pseudo-labels per round on average, "
                  f"{np.mean([r['pseudo_right'] for r in used]) if used else float('nan'):.1%} of them right")
    import pandas as pd
    import plotly.express as px

    frame = pd.DataFrame([{"arm": a, "labels": n, "accuracy": mean[a, n], "std": std[a, n]} for a in names for n in counts])
    figure = px.line(frame, x="labels", y="accuracy", color="arm", error_y="std", markers=True,
                     title=f"Accuracy against labels on {Path(args.data).name} (mean ± std over seeds {args.seeds})")
    figure.write_html(args.out, include_plotlyjs=True)
    print(f"\nchart: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
