"""Benchmark: a frozen run while another program keeps one core busy, the head's steps on one thread or on all.

    python bench/busy_core.py [--data DIR] [--repeats 10]

On a person's own computer the browser and the app's server run beside the training worker. A
new head trained on cached features is a few tiny operations per step; on PyTorch's usual threads
each operation waits for every thread, and a thread whose core another program holds makes it
wait long. This runs the same frozen run (Lite0, 5 epochs; the flowers if given, else the digits
sample) alternately with the head's loop on one thread (the engine) and on PyTorch's default
threads (the baseline), in this one process, while a second process spins on one core. Prints the
median seconds of the epochs and of the whole run for each, and their ratios. Not part of the tests.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from frozen_setup import frozen_benchmark  # noqa: E402
from transfer_core import TrainConfig, Trainer  # noqa: E402
from transfer_core.data.image_cache import clear_image_caches  # noqa: E402
from transfer_core.features.cache import shared_feature_cache  # noqa: E402
from transfer_core.training import loop as loop_module  # noqa: E402
from transfer_core.training.events import Event  # noqa: E402

SPIN = "while True: pass"


def frozen_run(config: TrainConfig, out: Path, threads: int | None) -> tuple[float, float]:
    """(seconds of the epochs, seconds of the whole run) from a cold start, the head's loop on ``threads``."""
    clear_image_caches()
    shared_feature_cache().clear()
    loop_module.SMALL_STEP_THREADS = threads  # None: PyTorch's own thread count, as before
    events = []
    started = time.perf_counter()
    Trainer(config, out, [events.append]).fit()
    seconds = time.perf_counter() - started
    return sum(e.seconds for e in events if e.kind is Event.EPOCH), seconds


def main(argv=None) -> int:
    args, root, config = frozen_benchmark(__doc__, 10, "warmstart-busy-core-", argv)
    modes = {"one thread (engine)": 1, "default threads": None}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        for i in range(args.repeats):
            for name, threads in modes.items():
                results[name].append(frozen_run(config, root / f"{name.split()[0]}-{i}", threads))
    finally:
        spinner.kill()
    medians = {name: (statistics.median(e for e, _ in runs), statistics.median(s for _, s in runs)) for name, runs in results.items()}
    (engine_epochs, engine_run), (base_epochs, base_run) = medians.values()
    for name, (epochs, whole) in medians.items():
        print(f"{name:20s} epochs {epochs:.3f} s   whole run {whole:.3f} s   (median of {args.repeats}, one core busy)")
    print(f"one thread is {base_epochs / engine_epochs:.1f}x faster over the epochs, {base_run / engine_run:.2f}x over the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
