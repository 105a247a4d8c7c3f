"""Benchmark: the engine against a plain tutorial-style training loop, side by side in one process.

    python bench/run.py [--device cpu|cuda] [--data DIR] [--epochs 5] [--scenarios frozen,...] [--repeats 3]

For each scenario the same data, backbone, epochs and seed go through (a) a reference loop
written here the way tutorials do it (decode and transform every image every epoch, run the
frozen backbone every epoch, SGD), (b) the engine as plain eager PyTorch
(``WARMSTART_CPU_RUNTIME=torch``: the engine before its CPU fast paths) and (c) the engine as
users get it. Prints a table and one JSON line per scenario. Not part of the test suite:
timings belong here, never in unit tests.

Floors: one forward pass over every image with the model, measured in the same run with eager
PyTorch, eager channels-last, and ONNX Runtime both as one many-thread run per batch of 64 and as
one single-thread run per core on 1, 2 or 4 images at a time (the engine's way); the *true floor*
is the fastest of them, with the ways within 15 % of it timed again before each engine run so
that floor and engine see the same minutes of the machine; the *eager floor* is what the engine used to be compared with. The ONNX file is exported once before
the scenarios (its one-off cost is reported as ``onnx_export_s``), as it is once per backbone on a
user's machine.

Timings on a shared or virtual machine vary by tens of percent from one run to the next, and
interference only ever slows a run down, so with ``--repeats N`` every floor and every engine run
(each from a cold start) is timed N times and the fastest is reported, as ``timeit`` does.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer_core import TrainConfig, Trainer, TransferModel, get_backbone, load_train_val, set_trainable_groups  # noqa: E402
from transfer_core.training.events import Event  # noqa: E402
from transfer_core.features.cache import shared_feature_cache  # noqa: E402
from transfer_core.data.image_cache import clear_image_caches  # noqa: E402
from transfer_core.features.cpu_runtime import OnnxForward, onnx_forward  # noqa: E402

SCENARIOS = {
    "frozen": dict(strategy="frozen", augment="none"),
    "frozen+aug": dict(strategy="frozen", augment="light"),
    "frozen+aug-2views": dict(strategy="frozen", augment="light", augment_views=2),
    "partial": dict(strategy="partial", trainable_blocks=2, augment="none"),
    "full": dict(strategy="full", augment="none"),
    "full+aug": dict(strategy="full", augment="light"),  # batched on-device augmentation on a GPU (auto)
    "full+aug-batched": dict(strategy="full", augment="light", batch_augment="on"),  # batched even on a CPU
}


class _Folder(Dataset):
    """Tutorial-style dataset: open, decode and transform the file on every access."""

    def __init__(self, records, classes, transform):
        self.records, self.transform = records, transform
        self.index = {c: i for i, c in enumerate(classes)}

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        record = self.records[i]
        return self.transform(Image.open(record.path).convert("RGB")), self.index[record.label]


def _reference_transforms(pre, augment: bool):
    normalize = [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)]
    size = pre.input_size
    evaluation = v2.Compose([v2.Resize(round(size / pre.crop_pct)), v2.CenterCrop(size), *normalize])
    if not augment:
        return evaluation, evaluation
    training = v2.Compose([v2.RandomResizedCrop(size, scale=(0.7, 1.0)), v2.RandomHorizontalFlip(), *normalize])
    return training, evaluation


def _model(backbone: str, classes: int, trainable: int | None, device) -> TransferModel:
    torch.manual_seed(0)
    model = TransferModel(get_backbone(backbone).build(pretrained=True), classes).to(device)
    groups = len(model.backbone.groups)
    set_trainable_groups(model, groups if trainable is None else trainable)
    return model


def reference_run(train, val, backbone, epochs, trainable, augment, device, batch_size=32) -> dict:
    """The loop of the PyTorch transfer-learning tutorial, unchanged in spirit."""
    torch.manual_seed(0)
    started = time.perf_counter()
    classes = train.classes
    model = _model(backbone, len(classes), trainable, device)
    pre = get_backbone(backbone).preprocessing
    train_tf, eval_tf = _reference_transforms(pre, augment)
    train_loader = DataLoader(_Folder(train.records, classes, train_tf), batch_size=batch_size, shuffle=True)
    val_loader = DataLoader(_Folder(val.records, classes, eval_tf), batch_size=batch_size)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    epoch_seconds, accuracy = [], 0.0
    for _ in range(epochs):
        epoch_started = time.perf_counter()
        model.train()
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            criterion(model(images), labels).backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val_loader:
                correct += int((model(images.to(device)).argmax(1).cpu() == labels).sum())
        accuracy = correct / len(val)
        epoch_seconds.append(time.perf_counter() - epoch_started)
    return {"seconds": time.perf_counter() - started, "accuracy": accuracy, "epoch_seconds": epoch_seconds}


def engine_run(data, val_data, backbone, epochs, scenario, device, out_dir, plain: bool = False) -> dict:
    """The engine on ``scenario``; ``plain`` runs it as eager PyTorch (no ONNX Runtime, no channels-last)."""
    clear_image_caches()  # cold start: no decoded images or features from an earlier scenario
    shared_feature_cache().clear()
    os.environ["WARMSTART_CPU_RUNTIME"] = "torch" if plain else "onnx"
    out_dir = out_dir / ("plain" if plain else "engine")
    config = TrainConfig(data=data, val_data=val_data, backbone=backbone, epochs=epochs, device=device, seed=0, **SCENARIOS[scenario])
    events = []
    started = time.perf_counter()
    result = Trainer(config, out_dir / scenario, [events.append]).fit()
    seconds = time.perf_counter() - started
    epochs_done = [e for e in events if e.kind is Event.EPOCH]
    steps = sum(1 for e in events if e.kind is Event.STEP)
    return {
        "seconds": seconds,
        "accuracy": epochs_done[-1].val_accuracy,
        "best_accuracy": result.report["val_accuracy"],
        "epoch_seconds": [e.seconds for e in epochs_done],
        "train_images": result.report["train_size"] * epochs,
        "steps": steps,
    }


@torch.no_grad()
def forward_floors(train, val, backbone, device, batch_size=64, repeats=1) -> tuple[dict[str, float], dict[str, Callable[[], float]]]:
    """One timed forward pass over every image (inputs already in memory), several ways, the fastest of ``repeats``.

    Returns seconds for ``eager``, ``channels_last`` and (on a CPU) ``onnx_batch{batch_size}`` and
    ``onnx_micro1/2/4``, plus ``true`` (the fastest) and ``onnx_export_s`` (the one-off export and
    check); and, by name, functions that time one more pass each way within 15 % of the fastest, to
    take turns with engine runs (ways that close can swap places from one minute to the next).
    """
    pre = get_backbone(backbone).preprocessing
    _, eval_tf = _reference_transforms(pre, False)
    batch = torch.stack([eval_tf(Image.open(r.path).convert("RGB")) for r in train.records + val.records])
    model = _model(backbone, len(train.classes), 0, device).eval()

    def one_pass(forward, images) -> Callable[[], float]:
        @torch.no_grad()
        def timed() -> float:
            started = time.perf_counter()
            for chunk in images.split(batch_size):
                forward(chunk.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - started

        return timed

    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    passes = {"eager": one_pass(model, batch),
              "channels_last": one_pass(channels_last, batch.contiguous(memory_format=torch.channels_last))}
    floors = {}
    if device.type == "cpu":
        started = time.perf_counter()
        fast = onnx_forward(model, model, f"bench|{backbone}|whole-model", tuple(batch.shape[1:]))
        floors["onnx_export_s"] = time.perf_counter() - started
        if isinstance(fast, str):
            print(f"ONNX Runtime not used: {fast}", flush=True)
        else:
            passes[f"onnx_batch{batch_size}"] = one_pass(_multithreaded_session(fast.path), batch)  # one many-thread run per batch
            for micro in (1, 2, 4):  # one single-thread run per core, on `micro` images each (the engine's way)
                passes[f"onnx_micro{micro}"] = one_pass(OnnxForward(fast.path, micro_batch=micro), batch)
    for name, timed in passes.items():
        timed()  # warm-up: allocations, kernels, thread pools
        floors[name] = min(timed() for _ in range(repeats))
    floors["true"] = min(floors[name] for name in passes)
    return floors, {name: timed for name, timed in passes.items() if floors[name] <= 1.15 * floors["true"]}


def _multithreaded_session(path):
    """ONNX Runtime as the engine ran it before: one session using every thread on each whole batch
    (the engine then also turned the threads' spinning off, which measured 4 % slower still)."""
    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: np.ascontiguousarray(x.numpy())})[0])


def warm_onnx_cache(data, val_data, backbone, device) -> None:
    """Export the backbone for the engine once (what a user's first shoot-out or frozen run does)."""
    shared_feature_cache().clear()
    config = TrainConfig(data=data, val_data=val_data, backbone=backbone, epochs=1, device=device, seed=0, strategy="frozen", augment="none")
    Trainer(config, Path(os.environ["WARMSTART_HOME"]) / "warm-up").fit()


def compute_only_epoch(train, val, backbone, device, batch_size=32) -> float:
    """A full fine-tuning epoch (train steps + validation forward) on tensors already in memory."""
    pre = get_backbone(backbone).preprocessing
    _, eval_tf = _reference_transforms(pre, False)
    x_train = torch.stack([eval_tf(Image.open(r.path).convert("RGB")) for r in train.records])
    y_train = torch.randint(0, len(train.classes), (len(x_train),))
    x_val = torch.stack([eval_tf(Image.open(r.path).convert("RGB")) for r in val.records])
    model = _model(backbone, len(train.classes), None, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = nn.CrossEntropyLoss()
    use_amp = device.type == "cuda"
    started = time.perf_counter()
    model.train()
    for images, labels in zip(x_train.split(batch_size), y_train.split(batch_size)):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = criterion(model(images.to(device)).float(), labels.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for images in x_val.split(64):
            model(images.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def raw_images_per_second(backbone, device, batch_size=256, steps=20) -> tuple[float, float]:
    """Forward and forward+backward throughput of the bare model on random inputs (GPU only)."""
    pre = get_backbone(backbone).preprocessing
    model = _model(backbone, 10, None, device).to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, 3, pre.input_size, pre.input_size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rates = []
    for backward in (False, True):
        for i in range(steps + 3):
            if i == 3:
                torch.cuda.synchronize()
                started = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16), torch.set_grad_enabled(backward):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            if backward:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        torch.cuda.synchronize()
        rates.append(batch_size * steps / (time.perf_counter() - started))
    return rates[0], rates[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="dataset folder (default: the built-in digits sample)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--out", default="/tmp/warmstart-bench")
    parser.add_argument("--repeats", type=int, default=1, help="time every floor and engine run N times, report the fastest")
    parser.add_argument("--no-plain", dest="plain", action="store_false", help="skip the plain-PyTorch engine runs")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.data is None:
        from transfer_core.data.samples import prepare_sample

        args.data = str(prepare_sample("digits", Path(args.out) / "samples"))
    train, val = load_train_val(args.data)
    val_data = None if train.source == val.source else val.source
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    print(f"{len(train)} training / {len(val)} validation images, {len(train.classes)} classes, {args.backbone}, "
          f"{args.epochs} epochs, {device}", flush=True)
    os.environ.setdefault("WARMSTART_HOME", str(Path(args.out) / "home"))  # the engine's ONNX files live here
    floors, floor_passes = forward_floors(train, val, args.backbone, device, repeats=args.repeats)
    floor = floors["eager"]
    print("forward only over the dataset (first measurement): " + ", ".join(f"{k} {v:.2f} s" for k, v in floors.items()), flush=True)
    data_source = train.source if val_data else args.data
    if device.type == "cpu":
        warm_onnx_cache(data_source, val_data, args.backbone, str(device))
    rows = []
    for scenario in args.scenarios.split(","):
        spec = SCENARIOS[scenario]
        trainable = {"frozen": 0, "partial": 2, "full": None}[spec["strategy"]]
        reference = reference_run(train, val, args.backbone, args.epochs, trainable, spec["augment"] != "none", device)
        # Plain and engine runs take turns, so neither always follows the other (a run after several
        # seconds of eager PyTorch finds the process's allocator and thread pools in another state).
        # A pass each of the floor's fastest ways goes before each: a machine that drifts by 10 %
        # within minutes then drifts for floor and engine alike. The floor stays the fastest of
        # every way's tries, so if anything it errs against the engine.
        tries: dict[bool, list[dict]] = {True: [], False: []}
        floor_tries: dict[str, list[float]] = {name: [] for name in floor_passes}
        for i in range(args.repeats):
            for name, timed in floor_passes.items():
                floor_tries[name].append(timed())
            for plain in ((True, False) if args.plain else (False,)):
                tries[plain].append(engine_run(data_source, val_data, args.backbone, args.epochs, scenario, str(device), out / f"try-{i}", plain=plain))
        plain = min(tries[True], key=lambda r: r["seconds"]) if args.plain else None
        engine = min(tries[False], key=lambda r: r["seconds"])
        floor_way = min(floor_tries, key=lambda name: min(floor_tries[name]))
        true_floor = min(floor_tries[floor_way])
        row = {
            "scenario": scenario,
            "device": str(device),
            "reference_s": round(reference["seconds"], 2),
            "engine_s": round(engine["seconds"], 2),
            "speedup": round(reference["seconds"] / engine["seconds"], 2),
            "reference_acc": round(reference["accuracy"], 4),
            "engine_acc": round(engine["accuracy"], 4),
            "engine_best_acc": round(engine["best_accuracy"], 4),
            "forward_only_s": round(floor, 2),
            "engine_vs_forward": round(engine["seconds"] / floor, 2),
            "true_floor_s": round(true_floor, 2),
            "true_floor_way": floor_way,
            "engine_vs_true_floor": round(engine["seconds"] / true_floor, 2),
            "onnx_export_s": round(floors.get("onnx_export_s", 0.0), 2),
            "reference_epoch_s": round(sum(reference["epoch_seconds"]) / len(reference["epoch_seconds"]), 2),
            "engine_later_epoch_s": round(sum(engine["epoch_seconds"][1:]) / max(len(engine["epoch_seconds"]) - 1, 1), 3),
        }
        if plain is not None:
            row["plain_engine_s"] = round(plain["seconds"], 2)
            row["plain_engine_acc"] = round(plain["accuracy"], 4)
            row["speedup_vs_plain_engine"] = round(plain["seconds"] / engine["seconds"], 2)
            row["plain_later_epoch_s"] = round(sum(plain["epoch_seconds"][1:]) / max(len(plain["epoch_seconds"]) - 1, 1), 3)
            row["later_epoch_speedup_vs_plain"] = round(row["plain_later_epoch_s"] / max(row["engine_later_epoch_s"], 1e-9), 2)
        if spec["strategy"] == "full":
            compute = compute_only_epoch(train, val, args.backbone, device)
            row["compute_only_epoch_s"] = round(compute, 2)
            row["pipeline_overhead"] = round(row["engine_later_epoch_s"] / compute - 1, 3)
            if device.type == "cuda":
                row["engine_train_images_per_s"] = round(engine["train_images"] / sum(engine["epoch_seconds"]), 1)
                fwd, fwd_bwd = raw_images_per_second(args.backbone, device)
                row["raw_forward_images_per_s"], row["raw_fwd_bwd_images_per_s"] = round(fwd, 1), round(fwd_bwd, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(f"{'scenario':<18}{'reference s':>12}{'plain s':>9}{'engine s':>10}{'vs plain':>9}{'ref acc':>9}{'eng acc':>9}"
          f"{'eng/true':>9}{'eng/eager':>10}{'plain ep s':>11}{'eng ep s':>10}")
    for r in rows:
        print(f"{r['scenario']:<18}{r['reference_s']:>12}{r.get('plain_engine_s', '-'):>9}{r['engine_s']:>10}"
              f"{r.get('speedup_vs_plain_engine', '-'):>9}{r['reference_acc']:>9}{r['engine_acc']:>9}{r['engine_vs_true_floor']:>9}"
              f"{r['engine_vs_forward']:>10}{r.get('plain_later_epoch_s', '-'):>11}{r['engine_later_epoch_s']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
