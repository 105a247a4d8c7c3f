"""Benchmark: does temperature scaling make the confidence honest on real photos?

    python bench/calibration.py [--data DIR] [--backbone efficientnet_lite0] [--strategies frozen,partial]
                                [--seeds 0,1,2] [--epochs 10]

Trains one run per (strategy, seed) with the default recipe on ``DATA`` (a folder with ``train/``
and ``val/``; default: the shared flowers-mini set, 150 training and 60 validation photos of five
classes) and prints, from each run's report, the fitted temperature and the expected calibration
error (ECE, 15 bins) and NLL of the validation images before and after temperature scaling. The
"after" numbers are the report's cross-fitted ones (each fold measured at a temperature fitted on
the other folds, see :mod:`transfer_core.insight.calibration`), never the flattering in-sample ones.
Then mean ± standard deviation over seeds per strategy, and whether ECE after is at most half of
ECE before (the target of issue 14). One JSON line per run follows the table.

ECE on a few dozen images is biased upwards: even a perfectly calibrated model shows a few points of
it, from the luck of which images in a bin happen to be right. The ``ECE floor`` column estimates
that: the mean ECE of a model whose confidences are those of the "after" bins and whose accuracy in
each bin is exactly its confidence, over 2,000 simulated draws of which images are right.

Not part of the test suite. Time values on a shared machine are noisy; only the ECE matters here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.summary import mean_sd  # noqa: E402
from transfer_core import TrainConfig, Trainer  # noqa: E402

DEFAULT_DATA = "/work/shared/datasets/flowers-mini"


def _one_run(data: str, backbone: str, strategy: str, seed: int, epochs: int, root: Path) -> dict:
    config = TrainConfig(data=data, backbone=backbone, strategy=strategy, seed=seed, epochs=epochs, device="cpu")
    started = time.perf_counter()
    report = Trainer(config, root / f"{strategy}-{seed}").fit().report
    calibration = report["calibration"]
    if calibration.get("reason"):
        raise SystemExit(f"{strategy} seed {seed}: not calibrated ({calibration['reason']})")
    return {
        "strategy": strategy, "seed": seed, "val_accuracy": report["val_accuracy"], "val_size": report["val_size"],
        "temperature": calibration["temperature"], "folds": calibration["folds"],
        "ece_before": calibration["before"]["ece"], "ece_after": calibration["after"]["ece"],
        "ece_floor": _ece_floor(calibration["after"]["bins"]),
        "nll_before": calibration["before"]["nll"], "nll_after": calibration["after"]["nll"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _ece_floor(bins: list[dict], draws: int = 2000, seed: int = 0) -> float:
    """Expected ECE of a perfectly calibrated model with these bins' counts and mean confidences (see module docstring)."""
    counts = np.array([b["count"] for b in bins])
    confidence = np.array([b["confidence"] for b in bins])
    hits = np.random.default_rng(seed).binomial(counts, confidence, size=(draws, len(bins)))
    return float((np.abs(hits / counts - confidence) * counts).sum(1).mean() / counts.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--strategies", default="frozen,partial")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    args = parser.parse_args()
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-calibration-") as tmp:
        for strategy in strategies:
            for seed in seeds:
                rows.append(_one_run(args.data, args.backbone, strategy, seed, args.epochs, Path(tmp)))
                r = rows[-1]
                print(f"{strategy:<8} seed {seed}: accuracy {r['val_accuracy']:.1%}, T {r['temperature']:.2f}, "
                      f"ECE {r['ece_before']:.1%} -> {r['ece_after']:.1%} (floor {r['ece_floor']:.1%}), NLL {r['nll_before']:.3f} -> {r['nll_after']:.3f} "
                      f"({r['seconds']:.0f} s)", flush=True)

    print(f"\n{args.backbone}, {rows[0]['val_size']} validation images, {rows[0]['folds']}-fold cross-fitted 'after', "
          f"mean ± sd over seeds {args.seeds}")
    print(f"{'strategy':<9} {'accuracy':>15} {'temperature':>13} {'ECE before':>15} {'ECE after':>15} {'ECE floor':>15} "
          f"{'NLL before':>15} {'NLL after':>15}  ECE after <= half before")
    for strategy in strategies:
        mine = [r for r in rows if r["strategy"] == strategy]
        col = lambda key, fmt: mean_sd([r[key] for r in mine], fmt)  # noqa: E731
        ratio = statistics.mean(r["ece_after"] for r in mine) / max(statistics.mean(r["ece_before"] for r in mine), 1e-12)
        print(f"{strategy:<9} {col('val_accuracy', '.1%'):>15} {col('temperature', '.2f'):>13} {col('ece_before', '.1%'):>15} "
              f"{col('ece_after', '.1%'):>15} {col('ece_floor', '.1%'):>15} {col('nll_before', '.3f'):>15} {col('nll_after', '.3f'):>15}  "
              f"{'yes' if ratio <= 0.5 else 'no'} (after/before = {ratio:.2f})")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
