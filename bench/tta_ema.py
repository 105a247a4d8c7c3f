"""Benchmark: does test-time augmentation (TTA) or weight averaging (EMA) raise validation accuracy?

    python bench/tta_ema.py [--data /work/shared/datasets/flowers-mini] [--seeds 0,1,2] [--epochs 5]

For each seed the same recipe (efficientnet_lite0, ``strategy="partial"`` with the last two
blocks training, light augmentation, the default head warm-up) trains twice, without and with EMA
(``ema_decay`` 0.999: on a run this short the decay ramp ``t / (t + 3)`` decides, see
``transfer_core/training/averaging.py``). Each trained model is then evaluated on the validation
set without and with TTA (:func:`transfer_core.compare_tta`: centre, mirror and four corner crops).
Prints one JSON line per run and a table of mean ± standard deviation over the seeds, with the
per-seed values, the images TTA fixed and broke, and the time each part took.

Not part of the test suite; the numbers depend on the data, so none of them are asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_DATA = "/work/shared/datasets/flowers-mini"


def _train_and_compare(data: Path, seed: int, epochs: int, ema: bool, root: Path) -> dict:
    from transfer_core import TrainConfig, Trainer, compare_tta

    config = TrainConfig(
        data=str(data / "train"), val_data=str(data / "val"), backbone="efficientnet_lite0", strategy="partial",
        trainable_blocks=2, augment="light", epochs=epochs, seed=seed, ema_decay=0.999 if ema else 0.0, device="cpu",
    )
    run_dir = root / f"seed{seed}-{'ema' if ema else 'plain'}"
    started = time.perf_counter()
    result = Trainer(config, run_dir).fit()
    trained = time.perf_counter() - started
    started = time.perf_counter()
    comparison = compare_tta(run_dir)
    return {
        "seed": seed, "ema": ema, "epochs": epochs, "best_epoch": result.report["best_epoch"],
        "val_images": len(comparison.paths),
        "report_accuracy": result.report["val_accuracy"],
        "accuracy": comparison.accuracy_plain, "accuracy_tta": comparison.accuracy_tta,
        "tta_fixed": comparison.count("fixed"), "tta_broken": comparison.count("broken"),
        "train_s": round(trained, 1), "tta_s": round(time.perf_counter() - started, 1),
    }


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1%} ± {sd:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="a folder with train/ and val/ class folders")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "train").is_dir() or not (data / "val").is_dir():
        sys.exit(f"error: '{data}' needs train/ and val/ sub-folders of class folders.")
    seeds = [int(s) for s in args.seeds.split(",")]

    with tempfile.TemporaryDirectory(prefix="warmstart-tta-ema-") as scratch:
        os.environ.setdefault("WARMSTART_HOME", str(Path(scratch) / "home"))  # caches stay out of the user's workspace
        rows = []
        for seed in seeds:
            for ema in (False, True):
                row = _train_and_compare(data, seed, args.epochs, ema, Path(scratch))
                print(json.dumps(row), flush=True)
                rows.append(row)

    print()
    print(f"efficientnet_lite0, partial (2 blocks), light augmentation, {args.epochs} epochs, "
          f"{rows[0]['val_images']} validation images, seeds {args.seeds} (mean ± sd; per seed in brackets)")
    print(f"{'':<12} {'without TTA':<34} {'with TTA':<34} {'TTA fixed / broke':<18} train s")
    for ema in (False, True):
        mine = [r for r in rows if r["ema"] is ema]
        plain = [r["accuracy"] for r in mine]
        tta = [r["accuracy_tta"] for r in mine]
        each = lambda values: "[" + ", ".join(f"{v:.1%}" for v in values) + "]"  # noqa: E731
        fixes = f"{sum(r['tta_fixed'] for r in mine)} / {sum(r['tta_broken'] for r in mine)}"
        seconds = statistics.mean(r["train_s"] for r in mine)
        print(f"{'EMA' if ema else 'no EMA':<12} {_mean_sd(plain) + ' ' + each(plain):<34} {_mean_sd(tta) + ' ' + each(tta):<34} "
              f"{fixes:<18} {seconds:.0f}")


if __name__ == "__main__":
    main()
