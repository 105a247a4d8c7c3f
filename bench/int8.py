"""Benchmark: what an int8 ONNX export saves and what it costs, against the float ONNX file of the same run.

    python bench/int8.py [--data DIR] [--backbone efficientnet_lite0] [--strategies frozen,partial]
                         [--seeds 0,1,2] [--epochs 8] [--repeats 7]

Trains one run per (strategy, seed) with the default recipe on ``DATA`` (a folder with ``train/``
and ``val/``; default: the shared flowers-mini set), exports the float and the int8 ONNX files
(:mod:`transfer_core.deploy.quantize`: QDQ, per-channel weights, calibrated on training images),
and reports, per run: the file sizes, ms per image at batch 1 and batch 32 for each file (ONNX
Runtime on this CPU, median of ``--repeats`` after a warm-up, both files timed in the same process
one after the other), top-1 agreement between the two files on the validation images, and
validation accuracy of each. Then mean ± standard deviation over seeds per strategy, as ratios
float / int8. One JSON line per run follows the table.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.summary import mean_sd  # noqa: E402
from transfer_core import TrainConfig, Trainer  # noqa: E402
from transfer_core.deploy.export import export_run  # noqa: E402
from transfer_core.deploy.latency import measure_latency  # noqa: E402
from transfer_core.deploy.verify import verify_export  # noqa: E402

DEFAULT_DATA = "/work/shared/datasets/flowers-mini"


def _one_run(data: Path, backbone: str, strategy: str, seed: int, epochs: int, repeats: int, root: Path) -> dict:
    config = TrainConfig(data=str(data / "train"), val_data=str(data / "val"), backbone=backbone, strategy=strategy,
                         seed=seed, epochs=epochs, device="cpu")
    run = Trainer(config, root / f"{strategy}-{seed}").fit().run
    folder = export_run(run, ("onnx", "onnx-int8"))
    checks = {c.format: c for c in verify_export(run, folder)}
    size = json.loads((folder / "model.json").read_text())["input"]["size"][0]
    costs = {c.format: c for c in measure_latency(folder, size, repeats)}
    float_, int8 = costs["onnx"], costs["onnx-int8"]
    return {
        "strategy": strategy, "seed": seed, "val_images": checks["onnx"].images,
        "float_accuracy": checks["onnx"].accuracy, "int8_accuracy": checks["onnx-int8"].accuracy,
        "agreement": checks["onnx-int8"].agreement, "float_mb": float_.megabytes, "int8_mb": int8.megabytes,
        "float_ms_b1": float_.ms_per_image_batch1, "int8_ms_b1": int8.ms_per_image_batch1,
        "float_ms_b32": float_.ms_per_image_batch32, "int8_ms_b32": int8.ms_per_image_batch32,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--strategies", default="frozen,partial")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for strategy in args.strategies.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                rows.append(_one_run(Path(args.data), args.backbone, strategy, seed, args.epochs, args.repeats, Path(scratch)))
                print(json.dumps(rows[-1]), flush=True)
    print("\n| strategy | size float / int8 | batch 1: ms float / int8 | batch 32: ms float / int8 | top-1 agreement | accuracy float → int8 (points) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for strategy in args.strategies.split(","):
        mine = [r for r in rows if r["strategy"] == strategy]
        size = [r["float_mb"] / r["int8_mb"] for r in mine]
        b1 = [r["float_ms_b1"] / r["int8_ms_b1"] for r in mine]
        b32 = [r["float_ms_b32"] / r["int8_ms_b32"] for r in mine]
        change = [100 * (r["int8_accuracy"] - r["float_accuracy"]) for r in mine]
        print(f"| {strategy} | {mean_sd(size)}× ({statistics.mean(r['float_mb'] for r in mine):.1f} → "
              f"{statistics.mean(r['int8_mb'] for r in mine):.1f} MB) | {mean_sd(b1)}× | {mean_sd(b32)}× | "
              f"{statistics.mean(r['agreement'] for r in mine):.1%} | "
              f"{statistics.mean(r['float_accuracy'] for r in mine):.1%} → {statistics.mean(r['int8_accuracy'] for r in mine):.1%} "
              f"({mean_sd(change)}) |")


if __name__ == "__main__":
    main()
