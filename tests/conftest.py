"""Shared test fixtures: no network, a tiny registered backbone, synthetic image folders."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.tiny_backbone import TINY  # noqa: E402,F401  (registers the tiny test backbone)

WORKER_HOOKS = "tests.worker_hooks"
COLORS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or isinstance(address, (str, bytes))  # unix sockets


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never touch the net: any non-loopback connection fails at once."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if not _is_loopback(address):
            raise OSError(f"network access is disabled in tests ({address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: guarded(self, address) or 0)


@pytest.fixture(autouse=True)
def workers_know_the_test_backbone(monkeypatch):
    """Training workers (other processes) import the tiny backbone and the full-disk switch too."""
    monkeypatch.setenv("WARMSTART_WORKER_IMPORTS", WORKER_HOOKS)


@pytest.fixture(autouse=True)
def no_standby_workers(monkeypatch):
    """Job managers keep no worker waiting (each would spend seconds of CPU importing, in every test
    that makes a manager); the tests of that worker turn it back on."""
    monkeypatch.setenv("WARMSTART_STANDBY_WORKER", "0")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Tests never write into the repository's ``.warmstart``: each gets its own workspace home."""
    monkeypatch.setenv("WARMSTART_HOME", str(tmp_path_factory.mktemp("warmstart-home")))


@pytest.fixture
def onnx_runs_as_slow_as_a_real_network(monkeypatch) -> list[int]:
    """Every ONNX Runtime run takes 5 ms more, as a real network's takes: the tiny model alone can end a
    whole pass before the caller wakes for the progress a test checks. Returns the inputs of each run."""
    from transfer_core.features import cpu_runtime

    run_one, runs = cpu_runtime.OnnxForward._run, []

    def run(self, x):
        runs.append(len(x))
        time.sleep(0.005)
        return run_one(self, x)

    monkeypatch.setattr(cpu_runtime.OnnxForward, "_run", run)
    return runs


def make_image(color, size=(40, 40), seed=0, noise=25) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.zeros((size[1], size[0], 3), dtype=np.int16) + np.array(color, dtype=np.int16)
    pixels = base + rng.integers(-noise, noise + 1, size=base.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def write_dataset(root: Path, per_class: int = 10, colors=COLORS, ext: str = ".png") -> Path:
    for c_index, (label, color) in enumerate(colors.items()):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(color, seed=c_index * 1000 + i).save(folder / f"{label}_{i}{ext}")
    return root


def zip_folder(folder: Path, archive: Path) -> Path:
    """``archive`` holding ``folder`` as its single top-level folder, the way people zip a dataset."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def train_tiny_run(root: Path, per_class: int = 10):
    """A finished tiny-backbone run on a fresh colour dataset under ``root`` (for module-scoped fixtures)."""
    from transfer_core import TrainConfig, Trainer

    data = write_dataset(root / "colors", per_class=per_class)
    config = TrainConfig(data=str(data), backbone=TINY, epochs=4, batch_size=8, lr=0.3, val_split=0.3, head_warmup_epochs=0)
    return Trainer(config, root / "run").fit().run


@pytest.fixture
def color_dataset(tmp_path) -> Path:
    """Three easily separable colour classes, ten 40x40 PNGs each."""
    return write_dataset(tmp_path / "colors")


@pytest.fixture
def tiny_config(color_dataset):
    from transfer_core import TrainConfig

    return TrainConfig(
        data=str(color_dataset), backbone=TINY, epochs=3, batch_size=8, lr=0.3, val_split=0.3, head_warmup_epochs=0
    )


class DiskSwitch(dict):
    """``switch["on"] = True`` fills the disk, here and in training workers (through a switch file)."""

    def __init__(self, path: Path) -> None:
        super().__init__(on=False)
        self.path = path

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if key == "on":
            self.path.touch() if value else self.path.unlink(missing_ok=True)


@pytest.fixture
def full_disk(monkeypatch, tmp_path_factory):
    """Make every run-folder write fail with ENOSPC while ``full_disk["on"]`` is true (in workers too)."""
    from tests.worker_hooks import FULL_DISK_SWITCH, refuse_writes_while

    state = DiskSwitch(tmp_path_factory.mktemp("disk-switch") / "full")
    monkeypatch.setenv(FULL_DISK_SWITCH, str(state.path))
    refuse_writes_while(lambda: state["on"], monkeypatch.setattr)
    return state
