"""What the benchmarks that time a frozen Lite0 run share: their arguments, a scratch folder, the
run's config, and the one-off ONNX export made before anything is timed (as once per machine)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer_core import TrainConfig, Trainer, prepare_sample  # noqa: E402

__all__ = ["frozen_benchmark"]


def frozen_benchmark(description: str, repeats: int, prefix: str, argv=None) -> tuple[argparse.Namespace, Path, TrainConfig]:
    """Parse ``--data`` and ``--repeats``; return them, a new scratch folder (``WARMSTART_HOME`` inside it
    unless set) and the frozen Lite0 config of 5 epochs on the data (default: the built-in digits sample)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="an image folder (default: the built-in digits sample)")
    parser.add_argument("--repeats", type=int, default=repeats)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("WARMSTART_HOME", str(root / "home"))
    data = args.data or str(prepare_sample("digits", root / "samples"))
    config = TrainConfig(data=data, backbone="efficientnet_lite0", strategy="frozen", augment="none", epochs=5, device="cpu", seed=0)
    Trainer(config.replace(epochs=1), root / "export-once").fit()
    return args, root, config
