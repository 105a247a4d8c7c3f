"""Benchmark: from pressing Train to the finished run, with and without a worker waiting with its imports done.

    python bench/worker_start.py [--data DIR] [--repeats 3]

What the app does when Train is pressed: a job manager starts the run in a worker process and the
page follows it until it ends. Two managers in this one process, identical but for the waiting
worker (:mod:`ui.standby`), take turns on the same frozen run (Lite0, 5 epochs; the flowers if
given, otherwise the digits sample); between runs the benchmark waits as a person reading the
result would, which is when the next waiting worker does its imports. The ONNX export is made once
beforehand, as it is once per machine, and the runs after the first find their features in the
feature cache (as a retrain after relabelling does), so what is timed is everything around the
training itself. Prints each mode's median seconds and their ratio.
Not part of the test suite.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from frozen_setup import frozen_benchmark  # noqa: E402
from transfer_core import RunStore, TrainConfig  # noqa: E402
from ui.jobs import JobManager  # noqa: E402

READING_S = 8.0  # a person looking at the result before the next run: longer than a worker's imports


def click_to_result(manager: JobManager, config: TrainConfig) -> float:
    started = time.perf_counter()
    job = manager.start(config)
    job.wait(600)
    if job.status != "finished":
        raise SystemExit(f"run {job.run.name} ended {job.status}: {job.error}")
    return time.perf_counter() - started


def main(argv=None) -> int:
    args, root, config = frozen_benchmark(__doc__, 3, "warmstart-worker-start-", argv)
    managers = {
        "fresh worker": JobManager(RunStore(root / "fresh"), queue_file=root / "fresh-queue.json", standby=False),
        "waiting worker": JobManager(RunStore(root / "waiting"), queue_file=root / "waiting-queue.json", standby=True),
    }
    seconds: dict[str, list[float]] = {name: [] for name in managers}
    time.sleep(READING_S)  # the waiting worker's first imports, while the page is read
    try:
        for seed in range(args.repeats):
            for name, manager in managers.items():
                seconds[name].append(click_to_result(manager, config.replace(seed=seed)))
                print(f"{name:15s} seed {seed}: {seconds[name][-1]:.2f} s", flush=True)
                time.sleep(READING_S)
    finally:
        for manager in managers.values():
            manager.close()
    fresh, waiting = (statistics.median(seconds[name]) for name in managers)
    print(f"\nfrom Train to the finished run (median of {args.repeats}): fresh worker {fresh:.2f} s, "
          f"waiting worker {waiting:.2f} s, {fresh / waiting:.1f}x sooner")
    return 0


if __name__ == "__main__":
    sys.exit(main())
