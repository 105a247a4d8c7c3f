"""The CPU fast path: frozen networks through ONNX Runtime, checked against eager PyTorch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from transfer_core import RunDir, Trainer, get_backbone
from transfer_core.features import cpu_runtime
from transfer_core.features.inference import run_inference
from transfer_core.randomness import seeded_scope

from ..conftest import TINY


@pytest.fixture(autouse=True)
def fresh_sessions(monkeypatch, tmp_path):
    monkeypatch.setenv("WARMSTART_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cpu_runtime, "_SESSIONS", cpu_runtime.OrderedDict())


@pytest.mark.parametrize("name, pretrained", [(TINY, False), ("efficientnet_lite0", True)])
def test_onnx_features_equal_pytorch(name, pretrained):
    spec = get_backbone(name)
    with seeded_scope(0):
        backbone = spec.build(pretrained=pretrained)
        size = spec.preprocessing.input_size
        images = torch.randn(5, 3, size, size)
    eager = run_inference(backbone, images, module=backbone, batch_size=4)
    runtimes = []
    fast = run_inference(backbone, images, module=backbone, batch_size=4, frozen_key=f"{name}|test", on_runtime=runtimes.append)
    assert runtimes == ["ONNX Runtime"]
    assert fast.shape == eager.shape
    assert (fast - eager).abs().max().item() <= 1e-4
    # A prefix of the network (a partial run's frozen stages) goes the same way.
    prefix = lambda x: backbone.forward_prefix(x, 2)
    eager_prefix = run_inference(prefix, images, module=backbone)
    fast_prefix = run_inference(prefix, images, module=backbone, frozen_key=f"{name}|test|depth=2")
    assert (fast_prefix - eager_prefix).abs().max().item() <= 1e-4


def test_parallel_small_runs_give_the_rows_of_one_run_in_order():
    backbone = get_backbone(TINY).build(pretrained=False)
    fast = run_inference(backbone, torch.randn(1, 3, 32, 32), module=backbone, frozen_key="tiny|order")
    assert fast is not None
    images = torch.randn(7, 3, 32, 32)  # three workers, four runs, the last of one image
    whole = cpu_runtime.OnnxForward(next(iter(cpu_runtime._SESSIONS.values())).path, workers=1, micro_batch=len(images))
    split = cpu_runtime.OnnxForward(whole.path, workers=3, micro_batch=2)
    assert (split(images) - whole(images)).abs().max().item() <= 1e-5  # same rows; kernels may round differently by batch size


def test_streamed_reads_come_back_in_order_each_read_once_and_a_failed_read_stops_the_stream():
    backbone = get_backbone(TINY).build(pretrained=False)
    run_inference(backbone, torch.randn(1, 3, 32, 32), module=backbone, frozen_key="tiny|stream")
    fast = cpu_runtime.OnnxForward(next(iter(cpu_runtime._SESSIONS.values())).path, workers=3, micro_batch=2)
    images = torch.randn(11, 3, 32, 32)
    reads = []
    streamed = torch.cat(list(fast.stream(lambda i: reads.append(i) or images[i], len(images))))
    assert sorted(reads) == list(range(11))
    assert (streamed - fast(images)).abs().max().item() <= 1e-6

    def unreadable_at_4(i: int) -> torch.Tensor:
        if i == 4:
            raise OSError("image 4 is gone")
        return images[i]

    with pytest.raises(OSError, match="image 4 is gone"):
        list(fast.stream(unreadable_at_4, len(images)))


def test_a_streamed_chunk_reports_progress_while_its_runs_go_not_only_at_its_end(onnx_runs_as_slow_as_a_real_network):
    """Regression: with one wake-up per chunk of 256 inputs, a run's "Computing features once (x of n)"
    came only when a chunk was done, so the Train page could miss the whole phase, and the shoot-out
    timed batches that had all ended at once."""
    backbone = get_backbone(TINY).build(pretrained=False)
    run_inference(backbone, torch.randn(1, 3, 32, 32), module=backbone, frozen_key="tiny|progress")
    fast = cpu_runtime.OnnxForward(next(iter(cpu_runtime._SESSIONS.values())).path, workers=2, micro_batch=1)
    images = torch.randn(300, 3, 32, 32)
    progress: list[int] = []
    outputs = list(fast.stream(lambda i: images[i], len(images), on_progress=progress.append, every=64))
    assert sum(len(o) for o in outputs) == 300
    assert progress == sorted(progress) and progress[-1] == 300
    # Inside the first chunk, as it ran (a wake-up every 64 inputs, about 160 ms apart; a loaded machine may merge two).
    assert len([done for done in progress if 0 < done < cpu_runtime.STREAM_CHUNK]) >= 2


def test_the_workers_single_thread_does_not_become_every_later_threads_default():
    """Regression: torch.set_num_threads(1) in the workers also lowered PyTorch's default for every
    thread started afterwards (the app's script runs and jobs then ran eager PyTorch on one thread)."""
    import threading

    backbone = get_backbone(TINY).build(pretrained=False)
    before = torch.get_num_threads()
    run_inference(backbone, torch.randn(9, 3, 32, 32), module=backbone, frozen_key="tiny|threads")
    seen = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert seen == [before] and torch.get_num_threads() == before


def test_inputs_drawn_at_random_are_read_in_the_callers_thread_so_a_seed_repeats_them():
    """Regression: augmented views (random crops from torch's global generator) were read by the
    ONNX Runtime workers, so which image got which crop depended on thread timing."""

    class RandomViews(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return torch.rand(3, 32, 32) + i, i

    backbone = get_backbone(TINY).build(pretrained=False)
    runs = []
    for _ in range(3):
        with seeded_scope(5):
            runs.append(run_inference(backbone, RandomViews(), module=backbone, frozen_key="tiny|random", batch_size=8))
    assert all(torch.equal(runs[0], other) for other in runs[1:])


def test_export_failure_falls_back_to_pytorch_with_a_reason(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("operator not supported\nlong trace")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    backbone = get_backbone(TINY).build(pretrained=False)
    runtimes = []
    out = run_inference(backbone, torch.randn(3, 3, 32, 32), module=backbone, frozen_key="tiny|x", on_runtime=runtimes.append)
    assert out.shape == (3, 32)
    assert runtimes == ["PyTorch (ONNX export not possible (RuntimeError: operator not supported))"]


def test_a_stale_export_on_disk_is_checked_and_replaced(tmp_path):
    with seeded_scope(1):
        first = get_backbone(TINY).build(pretrained=False)
    with seeded_scope(2):
        second = get_backbone(TINY).build(pretrained=False)  # same key, other weights: a stale file
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    run_inference(first, images, module=first, frozen_key="same")
    cpu_runtime._SESSIONS.clear()  # a new process finds the first network's file on disk
    fast = run_inference(second, images, module=second, frozen_key="same")
    assert torch.allclose(fast, run_inference(second, images, module=second), atol=1e-5)


def test_a_frozen_run_says_which_runtime_computed_its_features(tiny_config, tmp_path):
    run = Trainer(tiny_config.replace(strategy="frozen"), tmp_path / "run").fit().run
    messages = [e["message"] for e in RunDir(run.path).read_events() if e["event"] == "cached"]
    assert any("with ONNX Runtime" in m for m in messages), messages


@pytest.mark.parametrize("strategy, supported, expected", [("full", True, True), ("frozen", True, False), ("full", False, False)])
def test_cpu_fine_tuning_steps_use_bf16_only_where_the_cpu_computes_it(tiny_config, tmp_path, monkeypatch,
                                                                         strategy, supported, expected):
    from transfer_core.training import trainer as trainer_module
    from transfer_core.training.loop import Loop

    monkeypatch.setattr(trainer_module, "cpu_bf16_training", lambda: supported)
    seen = []
    real_fit = Loop.fit
    monkeypatch.setattr(Loop, "fit", lambda self, *a, **k: (seen.append(self.mixed_precision), real_fit(self, *a, **k))[1])
    result = Trainer(tiny_config.replace(strategy=strategy, epochs=1, device="cpu"), tmp_path / "run").fit()
    assert seen[-1] is expected and result.report["val_accuracy"] >= 0


def test_bf16_training_is_off_in_plain_pytorch_mode(monkeypatch):
    from transfer_core.features.inference import cpu_bf16_training

    monkeypatch.setenv("WARMSTART_CPU_RUNTIME", "torch")
    assert cpu_bf16_training() is False


@pytest.mark.parametrize("name, pretrained", [(TINY, False), ("efficientnet_lite0", True)])
def test_images_normalised_inside_the_onnx_graph_equal_pytorch(name, pretrained, color_dataset):
    """A dataset under the evaluation transform reaches ONNX Runtime as uint8 crops, normalised in its graph."""
    from transfer_core import load_train_val
    from transfer_core.data.augment import eval_transform
    from transfer_core.data.decode import cache_side_for
    from transfer_core.data.image_cache import LabeledImages, shared_image_cache

    spec = get_backbone(name)
    pre = spec.preprocessing
    with seeded_scope(0):
        backbone = spec.build(pretrained=pretrained)
    train, _ = load_train_val(color_dataset)
    classes = {c: i for i, c in enumerate(train.classes)}
    images = LabeledImages(train.records[:6], classes, shared_image_cache(cache_side_for(pre.input_size, pre.crop_pct)), eval_transform(pre))
    eager = run_inference(backbone, images, module=backbone, batch_size=4)
    runtimes = []
    fast = run_inference(backbone, images, module=backbone, batch_size=4, frozen_key=f"{name}|images", on_runtime=runtimes.append)
    assert runtimes == ["ONNX Runtime"]
    session = next(s for s in cpu_runtime._SESSIONS.values() if not isinstance(s, str))
    assert session.input_dtype is torch.uint8
    assert (fast - eager).abs().max().item() <= 1e-4
    # The graph is keyed by the normalisation too: the same network fed other statistics is another export.
    other = eval_transform(dataclasses.replace(pre, mean=(0.2, 0.3, 0.4), std=(0.3, 0.2, 0.1)))
    shifted = run_inference(backbone, images.with_transform(other), module=backbone, batch_size=4, frozen_key=f"{name}|images")
    assert (shifted - run_inference(backbone, images.with_transform(other), module=backbone)).abs().max().item() <= 1e-4
    assert (shifted - fast).abs().max().item() > 1e-3

