"""Benchmark: the classroom path (Home → "Try a sample dataset" → Quick → trained), plain PyTorch vs the engine.

    python bench/classroom.py [--repeats 2]

Runs exactly what the Home page's button starts (the offline digits sample, the Quick preset,
the default backbone) twice per mode in one process, cold each time (no decoded images or
features kept between runs; the ONNX export is made once per machine and is reported on its
own line). Prints the training time each run reports and the ratio. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer_core import PRESETS, TrainConfig, Trainer, prepare_sample  # noqa: E402
from transfer_core.data.image_cache import clear_image_caches  # noqa: E402
from transfer_core.features.cache import shared_feature_cache  # noqa: E402


def quick_run(data: Path, out: Path) -> float:
    clear_image_caches()
    shared_feature_cache().clear()
    config = TrainConfig(data=str(data), device="cpu").replace(**PRESETS["Quick"])
    report = Trainer(config, out).fit().report
    return report["train_seconds"], report["val_accuracy"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="warmstart-classroom-"))
    os.environ.setdefault("WARMSTART_HOME", str(root / "home"))
    data = prepare_sample("digits", root / "samples")
    os.environ["WARMSTART_CPU_RUNTIME"] = "onnx"
    started = time.perf_counter()
    quick_run(data, root / "first-ever")  # exports the backbone to ONNX once, as a user's first run does
    print(f"first run on this machine (includes the one-off ONNX export): {time.perf_counter() - started:.1f} s")
    results = {"torch": [], "onnx": []}
    for repeat in range(args.repeats):
        for mode in ("torch", "onnx"):
            os.environ["WARMSTART_CPU_RUNTIME"] = mode
            results[mode].append(quick_run(data, root / f"{mode}-{repeat}"))
    for mode, runs in results.items():
        label = "plain PyTorch" if mode == "torch" else "engine (ONNX Runtime)"
        print(f"{label:<24} training time " + ", ".join(f"{s:.1f} s (acc {a:.3f})" for s, a in runs))
    plain = min(s for s, _ in results["torch"])
    fast = min(s for s, _ in results["onnx"])
    print(f"best of {args.repeats}: plain {plain:.1f} s, engine {fast:.1f} s, {plain / fast:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
