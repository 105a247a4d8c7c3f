"""Benchmark: does LogME rank backbones the way measured accuracy does, before any training?

    python bench/transferability.py [--data DIR] [--backbones a,b,c] [--epochs 5] [--seeds 0,1,2] [--repeats 3]

For each backbone, on the dataset's ``train/`` and ``val/`` folders (default
``/work/shared/datasets/flowers-mini``): the shoot-out as the Backbone page runs it (LogME of the
training features, probe accuracy on the validation images, measured seconds per image), the
probe as ``--backbone auto`` scores it (cross-validated on the training images alone), then
frozen runs with the Quick recipe for ``--epochs`` epochs per seed, scored on the validation images.
Prints a table, whether LogME's ranking agrees with the probe's and the frozen runs' (pairs of
backbones ordered the same way), what the recommendation rule and ``auto`` choose, and one JSON line.

Runs in a fresh workspace so every backbone's features are computed (and its speed measured) here.
Seconds per image on a shared machine vary by tens of percent between runs: the page's shoot-out is
run ``--repeats`` times from an empty feature cache and, as the app does, the fastest pass counts;
they are reported as ratios to the fastest backbone as well. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ["WARMSTART_HOME"] = tempfile.mkdtemp(prefix="warmstart-transferability-")  # before the engine reads it
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer_core import PRESETS, TrainConfig, Trainer, backbone_shootout, load_train_val, recommend  # noqa: E402
from transfer_core.features.cache import shared_feature_cache  # noqa: E402

DEFAULT_DATA = "/work/shared/datasets/flowers-mini"
LITES = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"


def _pairs_agreeing(a: dict[str, float], b: dict[str, float]) -> tuple[int, int]:
    """Pairs of backbones that ``a`` and ``b`` order the same way (a tie in either counts as agreeing), and all pairs."""
    pairs = list(itertools.combinations(a, 2))
    same = sum((a[x] - a[y]) * (b[x] - b[y]) >= 0 for x, y in pairs)
    return same, len(pairs)


def _order(scores: dict[str, float]) -> str:
    return " > ".join(sorted(scores, key=lambda name: -scores[name]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder with train/ and val/ class folders")
    parser.add_argument("--backbones", default=LITES)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--repeats", type=int, default=3, help="shoot-outs from an empty feature cache; the fastest pass counts")
    args = parser.parse_args()
    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    data = Path(args.data)

    train, val = load_train_val(str(data / "train"), str(data / "val"))
    for _ in range(args.repeats):
        shared_feature_cache().clear()
        page = {r.backbone: r for r in backbone_shootout(train, val, names)}
    auto = {r.backbone: r for r in backbone_shootout(train, None, names)}
    failed = {name: r.error for name, r in page.items() if r.error}
    if failed:
        sys.exit(f"Could not try: {failed}")

    frozen: dict[str, list[float]] = {}
    base = TrainConfig(data=str(data / "train"), val_data=str(data / "val"), device="cpu").replace(**PRESETS["Quick"])
    for name in names:
        for seed in seeds:
            config = base.replace(backbone=name, epochs=args.epochs, seed=seed)
            report = Trainer(config, Path(os.environ["WARMSTART_HOME"]) / f"{name}-{seed}").fit().report
            frozen.setdefault(name, []).append(report["val_accuracy"])

    fastest = min(page[n].seconds_per_image for n in names)
    print(f"{len(train)} training / {len(val)} validation images; frozen runs: Quick recipe, {args.epochs} epochs, seeds {args.seeds}\n")
    print(f"{'backbone':<20} {'LogME':>7} {'probe (val)':>12} {'probe (cv)':>11} {'frozen val acc':>16} {'ms/image':>9} {'time ×':>7}")
    for name in names:
        accs = frozen[name]
        spread = f"±{statistics.stdev(accs) * 100:.1f}" if len(accs) > 1 else ""
        spi = page[name].seconds_per_image
        print(f"{name:<20} {page[name].logme:>7.3f} {page[name].val_accuracy * 100:>11.1f}% {auto[name].val_accuracy * 100:>10.1f}% "
              f"{statistics.mean(accs) * 100:>10.1f}{spread:>5} % {spi * 1000:>9.1f} {spi / fastest:>6.2f}×")

    logme = {n: page[n].logme for n in names}
    probe = {n: page[n].val_accuracy for n in names}
    cv = {n: auto[n].val_accuracy for n in names}
    trained = {n: statistics.mean(frozen[n]) for n in names}
    print()
    for label, other in (("probe (val)", probe), ("probe (cv)", cv), ("frozen runs", trained)):
        same, total = _pairs_agreeing(logme, other)
        print(f"LogME vs {label:<12}: {same}/{total} pairs ordered alike  (LogME: {_order(logme)}; {label}: {_order(other)})")
    page_choice, auto_choice = recommend(list(page.values())), recommend(list(auto.values()))
    print(f"\nBackbone page recommends: {page_choice.reason}")
    print(f"auto chooses:             {auto_choice.reason}")
    print(json.dumps({
        "train": len(train), "val": len(val), "epochs": args.epochs, "seeds": seeds,
        "backbones": {n: {"logme": logme[n], "probe_val": probe[n], "probe_cv": cv[n], "frozen_val": frozen[n],
                          "seconds_per_image": page[n].seconds_per_image} for n in names},
        "page_choice": page_choice.backbone, "auto_choice": auto_choice.backbone,
    }))


if __name__ == "__main__":
    main()
