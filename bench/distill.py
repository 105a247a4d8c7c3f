"""Benchmark: does a small student learn more from a fine-tuned teacher than from the labels alone?

    python bench/distill.py [--data DIR] [--teacher efficientnet_lite2] [--student efficientnet_lite0]
                            [--strategy partial] [--epochs 10] [--seeds 0,1,2] [--alpha 0.5] [--temperature 4]

Per seed, on ``DATA`` (``train/`` and ``val/``; default: the shared flowers-mini set), with the
default recipe and ``--strategy``: trains the teacher backbone, the student backbone alone, and the
student distilled from that seed's teacher (:mod:`transfer_core.training.distillation`). Reports
validation accuracy (mean ± standard deviation over seeds), parameters, and CPU milliseconds per
image at batch 1 and 32 (PyTorch, median of 5 after a warm-up, all models timed in this process).
One JSON line per run follows the table.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.summary import mean_sd  # noqa: E402
from transfer_core import TrainConfig, Trainer, distillation_config, measure_run  # noqa: E402

DEFAULT_DATA = "/work/shared/datasets/flowers-mini"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--teacher", default="efficientnet_lite2")
    parser.add_argument("--student", default="efficientnet_lite0")
    parser.add_argument("--strategy", default="partial")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=4.0)
    args = parser.parse_args()
    data = Path(args.data)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for seed in (int(s) for s in args.seeds.split(",")):
            base = TrainConfig(data=str(data / "train"), val_data=str(data / "val"), strategy=args.strategy, epochs=args.epochs,
                               seed=seed, device="cpu")
            teacher = Trainer(base.replace(backbone=args.teacher), root / f"teacher-{seed}").fit()
            alone = Trainer(base.replace(backbone=args.student), root / f"alone-{seed}").fit()
            config = distillation_config(teacher.run.path, args.student, distill_alpha=args.alpha, distill_temperature=args.temperature)
            distilled = Trainer(config, root / f"distilled-{seed}").fit()
            for role, result in (("teacher", teacher), ("alone", alone), ("distilled", distilled)):
                cost = measure_run(result.run)
                rows.append({"role": role, "seed": seed, "backbone": result.run.read_config().backbone,
                             "accuracy": result.report["val_accuracy"], "seconds": result.report["train_seconds"],
                             "parameters": cost.parameters, "ms_b1": cost.ms_per_image_batch1, "ms_b32": cost.ms_per_image_batch32})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n| model ({args.strategy}, {args.epochs} epochs) | val accuracy % | parameters (M) | CPU ms/image batch 1 | batch 32 | training s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = {"teacher": f"teacher {args.teacher}", "alone": f"{args.student} alone",
             "distilled": f"{args.student} distilled (α {args.alpha:g}, T {args.temperature:g})"}
    for role in ("teacher", "alone", "distilled"):
        mine = [r for r in rows if r["role"] == role]
        print(f"| {names[role]} | {mean_sd([r['accuracy'] for r in mine], '.1f', 100.0)} | {mine[0]['parameters'] / 1e6:.2f} | "
              f"{mean_sd([r['ms_b1'] for r in mine], '.1f')} | {mean_sd([r['ms_b32'] for r in mine], '.1f')} | "
              f"{mean_sd([r['seconds'] for r in mine], '.0f')} |")


if __name__ == "__main__":
    main()
