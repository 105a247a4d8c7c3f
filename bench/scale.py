"""Benchmark: how Warmstart copes as a dataset grows from a thousand images to fifty thousand.

    python bench/scale.py PHOTOS [--sizes 1000,10000,50000] [--work DIR] [--epochs 3] [--seed 0]

PHOTOS is a folder of photos in class folders (any depth, e.g. ``/work/shared/datasets/flowers-mini``;
an image's class is the name of the folder it is in). For each size N a dataset of N distinct
96-px JPEGs is made from them (random crops: position, scale and mirror drawn per image from the
seed, so the same N gives the same files), then one child process per N measures, cold:

- indexing the folder (every header checked) and indexing it again (verdicts reused);
- a frozen ``efficientnet_lite0`` run: images read per second, features computed per second, the
  epochs' time and the whole run's;
- the health check (features reused from the run, as in the app);
- opening the Data and the Evaluate page with the run, through Streamlit's AppTest;
- the child's peak memory (resident set size).

Prints a Markdown table for the README and one JSON line per size. Timings belong here, never in
unit tests; 50,000 images take about a quarter of an hour on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDE = 96
PHOTO_TYPES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def _photos_by_class(folder: Path) -> dict[str, list[Path]]:
    """Every photo under ``folder``, by the name of the folder that holds it."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in PHOTO_TYPES and not any(part.startswith(".") for part in path.parts):
            found.setdefault(path.parent.name, []).append(path)
    if len(found) < 2:
        raise SystemExit(f"'{folder}' needs photos in at least two class folders, e.g. {folder}/daisy/1.jpg.")
    return found


def _crop(photo: Image.Image, rng: random.Random) -> Image.Image:
    """A random square crop (35-100 % of the short side), maybe mirrored, at SIDE pixels."""
    width, height = photo.size
    side = max(8, int(min(width, height) * rng.uniform(0.35, 1.0)))
    left, top = rng.randint(0, width - side), rng.randint(0, height - side)
    crop = photo.crop((left, top, left + side, top + side)).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    return ImageOps.mirror(crop) if rng.random() < 0.5 else crop


def build_dataset(photos: Path, target: Path, n: int, seed: int) -> float:
    """N distinct crops in class folders under ``target`` (kept when already complete); seconds taken."""
    done_marker = target / ".complete"
    if done_marker.is_file() and done_marker.read_text() == f"{n} {seed} {photos.resolve()}":
        return 0.0
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    by_class = _photos_by_class(photos)
    decoded = {path: ImageOps.exif_transpose(Image.open(path)).convert("RGB") for paths in by_class.values() for path in paths}
    classes = sorted(by_class)
    for c, label in enumerate(classes):
        (target / label).mkdir(parents=True)
        count = n // len(classes) + (c < n % len(classes))
        for i in range(count):
            rng = random.Random(f"{seed}-{label}-{i}")
            source = by_class[label][i % len(by_class[label])]
            _crop(decoded[source], rng).save(target / label / f"{label}_{i:06d}.jpg", quality=90)
    done_marker.write_text(f"{n} {seed} {photos.resolve()}")
    return time.perf_counter() - started


def _timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def _render_seconds(project, page: str) -> float:
    """Seconds to open ``page`` with ``project`` in a fresh AppTest session, after the app's first run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    at.query_params["project"] = project.slug
    at.run()
    started = time.perf_counter()
    at.switch_page(f"app_pages/{page}.py").run()
    seconds = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"the {page} page failed: {at.exception[0].value}")
    if "Validation images" not in {metric.label for metric in at.metric}:  # the page drew the project, not a notice
        raise RuntimeError(f"the {page} page did not show the project's images: {[e.value for e in at.error + at.info]}")
    return seconds


def measure(n: int, args: argparse.Namespace) -> dict:
    """Everything for one size, in this (fresh) process."""
    work = Path(args.work)
    data = work / f"data-{n}"
    built = build_dataset(Path(args.photos), data, n, args.seed)
    home = work / f"home-{n}"
    shutil.rmtree(home, ignore_errors=True)  # a cold start: no index verdicts, no runs
    os.environ["WARMSTART_HOME"] = str(home)

    from transfer_core import ProjectStore, TrainConfig, Trainer, health_check, load_train_val
    from transfer_core.project_runs import project_run
    from transfer_core.training.events import Event

    _, index_cold = _timed(lambda: load_train_val(data, val_fraction=0.2, seed=args.seed))
    (train, val), index_cached = _timed(lambda: load_train_val(data, val_fraction=0.2, seed=args.seed))
    config = TrainConfig(data=str(data), backbone="efficientnet_lite0", strategy="frozen", epochs=args.epochs,
                         head_warmup_epochs=0, seed=args.seed, val_split=0.2)
    project, run, config, split = project_run(ProjectStore(home), f"scale {n}", config)
    events = []
    result, train_seconds = _timed(lambda: Trainer(config, run, [events.append], data=split).fit())
    built_events = {e.what: e for e in events if e.kind is Event.CACHED}
    epochs = sum(e.seconds for e in events if e.kind is Event.EPOCH)
    features = built_events.get("features")
    report, health_seconds = _timed(lambda: health_check(train, val, backbone="efficientnet_lite0"))
    data_page = _render_seconds(project, "data")
    evaluate_page = _render_seconds(project, "evaluate")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    return {
        "images": len(train) + len(val), "build_s": round(built, 1),
        "index_cold_s": round(index_cold, 2), "index_cached_s": round(index_cached, 2),
        "read_images_per_s": round(built_events["images"].items / max(built_events["images"].seconds, 1e-9)),
        "features_per_s": round(features.items / max(features.seconds, 1e-9)) if features else None,
        "epochs_s": round(epochs, 1), "train_s": round(train_seconds, 1),
        "val_accuracy": round(result.report["val_accuracy"], 3),
        "health_s": round(health_seconds, 1), "health": report.summary,
        "data_page_s": round(data_page, 2), "evaluate_page_s": round(evaluate_page, 2),
        "peak_rss_gb": round(peak / 1e9, 2),
    }


COLUMNS = [
    ("images", "images", "{:,}"), ("index cold", "index_cold_s", "{} s"), ("index again", "index_cached_s", "{} s"),
    ("reading", "read_images_per_s", "{:,} img/s"), ("features", "features_per_s", "{:,} img/s"),
    ("epochs", "epochs_s", "{} s"), ("whole run", "train_s", "{} s"), ("health check", "health_s", "{} s"),
    ("Data page", "data_page_s", "{} s"), ("Evaluate page", "evaluate_page_s", "{} s"), ("peak RSS", "peak_rss_gb", "{} GB"),
]


def markdown(rows: list[dict]) -> str:
    """The results as a Markdown table, one row per size."""
    lines = ["| " + " | ".join(name for name, _, _ in COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    for row in rows:
        cells = ["–" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", help="folder of photos in class folders, e.g. /work/shared/datasets/flowers-mini")
    parser.add_argument("--sizes", default="1000,10000,50000", help="dataset sizes, comma-separated (default %(default)s)")
    parser.add_argument("--work", default="/tmp/warmstart-scale", help="where datasets and workspaces go (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one size, in a process of its own
    args = parser.parse_args()
    if not Path(args.photos).is_dir():
        parser.error(f"'{args.photos}' is not a folder of photos.")
    if args.child is not None:
        print(json.dumps(measure(args.child, args)))
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes takes whole numbers separated by commas, e.g. 1000,10000; got '{args.sizes}'.")
    rows = []
    for n in sizes:
        child = [sys.executable, __file__, args.photos, "--work", args.work, "--epochs", str(args.epochs),
                 "--seed", str(args.seed), "--child", str(n)]
        done = subprocess.run(child, stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if done.returncode != 0:
            print(f"size {n} failed (exit {done.returncode}); see its output above", file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
