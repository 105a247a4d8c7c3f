"""The training loop: one config in, a run folder with a checkpoint and a report out.

The loop emits typed events (see :mod:`transfer_core.events`) and never talks to a UI.
Work that does not change between epochs is done once: images are decoded once into the
image cache, and while the first backbone stages are frozen and the inputs are not augmented,
their output is computed once and the epochs run only the trainable rest of the network.

Stopping is a flag checked before every batch; the run then ends as "stopped" with the best
checkpoint and a report of it. Epochs are seeded individually, so a stopped run resumed from
its last complete epoch ends exactly where an uninterrupted run would (on a CPU).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset, WeightedRandomSampler

from ..data.augment import batch_mixer, eval_transform, train_transform
from ..models.registry import get_backbone
from ..data.batch_augment import BatchAugment, pad_collate
from ..config import Balance, Schedule, Strategy, TrainConfig
from ..data.records import DatasetIndex, SkippedFile
from ..data.splits import load_run_split
from ..errors import WarmstartError
from ..insight.evaluate import classification_report, per_image_predictions
from .events import (
    CacheBuilt,
    CacheProgress,
    CheckpointSaved,
    EpochEnded,
    RunEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepEnded,
    StorageFailed,
    Subscriber,
)
from ..features.cache import encode_cached, run_feature_key, shared_feature_cache
from ..data.image_cache import LabeledImages, cache_side_for, shared_image_cache
from ..models.transfer import (
    TransferModel,
    first_trainable_stage,
    freeze_bn_of_frozen_layers,
    make_optimizer,
    set_trainable_groups,
    trainable_groups_at,
)
from ..runs.store import HeldWrites, RunDir, checkpoint_bytes, resume_bytes

__all__ = ["TrainResult", "Trainer", "resolve_device", "train"]

# Cached activations of a frozen prefix are kept only while they fit in this many bytes.
PREFIX_CACHE_BYTES = 3 * 1024**3


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WarmstartError("--device cuda was requested but no CUDA GPU is available; use --device cpu.")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    run: RunDir
    status: str  # finished / stopped
    report: dict[str, Any] | None
    unsaved: list[str] = dataclasses.field(default_factory=list)  # files held in memory (see Trainer.held)


@dataclass
class _Inputs:
    """What the epochs iterate over (images or cached activations) and how to run each through the model."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    train_forward: Callable[[torch.Tensor], torch.Tensor]
    val_forward: Callable[[torch.Tensor], torch.Tensor]
    augment_on_the_fly: bool


def _forward_from(model: TransferModel, start: int, features_only: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's forward for inputs that already went through the first ``start`` stages."""
    if features_only:
        return model.head
    return lambda x: model(x, start_stage=start)


class _CycledViews(torch.utils.data.Dataset):
    """Cached features of several augmented views; epoch ``e`` reads view ``e % n``."""

    def __init__(self, views: list[torch.Tensor], targets: list[int]) -> None:
        self.views, self.targets, self.epoch = views, torch.tensor(targets), 0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.views[self.epoch % len(self.views)][i], self.targets[i]


class Trainer:
    """Train one :class:`TrainConfig` into one run folder.

    Args:
        config: the recipe.
        run: the run folder. Every event is appended to its ``metrics.jsonl``; if the folder stops
            accepting writes (disk full, permissions), training goes on, the results are held in
            memory (:attr:`held`) and a :class:`StorageFailed` event says so once.
        subscribers: callables receiving every :class:`RunEvent`.
        data: optional (train, val) indexes; by default they are loaded from ``config.data``.
    """

    def __init__(
        self,
        config: TrainConfig,
        run: RunDir | str | Path,
        subscribers: Iterable[Subscriber] = (),
        data: tuple[DatasetIndex, DatasetIndex] | None = None,
    ) -> None:
        self.config = config
        self.run = run if isinstance(run, RunDir) else RunDir(run)
        self._subscribers: list[Subscriber] = list(subscribers)
        self.held = HeldWrites(self.run, self._storage_failed)
        self._data = data
        self._stop = threading.Event()
        self.skipped: list[SkippedFile] = []
        self.reused_features = 0  # images whose frozen-part output came from the feature cache

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def request_stop(self) -> None:
        """Ask the loop to stop before its next batch (safe from any thread)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _storage_failed(self, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        self.emit(
            StorageFailed(
                message=(
                    f"Cannot write to the run folder '{self.run.path}' ({reason}); training continues and its results "
                    "are kept in memory until they can be saved or downloaded."
                )
            )
        )

    def emit(self, event: RunEvent) -> None:
        self.held.append_line(json.dumps(event.to_dict(), ensure_ascii=False))
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # a broken display must not kill a run
                warnings.warn(f"Event subscriber {subscriber!r} failed: {exc}", stacklevel=2)

    # ---------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train to completion (or until stopped); raises WarmstartError on bad input."""
        try:
            return self._fit(resume)
        except WarmstartError as exc:
            self.emit(RunFailed(message=str(exc)))
            raise
        except Exception as exc:
            self.emit(RunFailed(message=f"{type(exc).__name__}: {exc}"))
            raise

    def _fit(self, resume: bool) -> TrainResult:
        cfg = self.config
        started = time.perf_counter()
        device = resolve_device(cfg.device)
        try:
            self.run.path.mkdir(parents=True, exist_ok=True)
            if not self.run.config_file.exists():
                self.run.write_config(cfg)
            self.run.mark_owner()
            self.run.remove_partial_files()
        except OSError as exc:
            raise WarmstartError(
                f"Cannot write to the run folder '{self.run.path}' ({exc.strerror or exc}); "
                "choose another folder or free some disk space."
            ) from None
        state = self.run.load_resume_state() if resume else None
        if resume and state is None:
            raise WarmstartError(f"Run '{self.run.name}' has no completed epoch to resume from; start it again.")

        train_index, val_index = self._data or load_run_split(cfg)
        self.skipped = list(train_index.skipped)
        classes = train_index.classes
        if len(classes) < 2:
            raise WarmstartError(
                f"Training needs at least two classes, but only '{classes[0]}' has images; add a folder for another class."
            )
        class_to_idx = {name: i for i, name in enumerate(classes)}

        spec = get_backbone(cfg.backbone)
        size = cfg.image_size or spec.preprocessing.input_size
        pre = dataclasses.replace(spec.preprocessing, input_size=size)
        self._preprocessing = pre
        self._spec = spec
        _seed_everything(cfg.seed)
        model = TransferModel(spec.build(pretrained=cfg.pretrained), len(classes), cfg.dropout)
        use_amp = device.type == "cuda"
        model.to(device)
        if use_amp:
            model.to(memory_format=torch.channels_last)
        self.held.write_json(
            "model.json",
            {
                "backbone": cfg.backbone,
                "classes": classes,
                "preprocessing": pre.to_dict(),
                "num_features": model.backbone.num_features,
                "dropout": cfg.dropout,
            },
        )

        train_set, val_set = self._image_sets(train_index, val_index, class_to_idx, pre, size)
        n_groups = len(model.backbone.groups)
        steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
        start_epoch = state["epoch"] + 1 if state is not None else 0
        if start_epoch >= cfg.epochs:
            raise WarmstartError(f"Run '{self.run.name}' already completed all {cfg.epochs} epochs.")
        self.emit(
            RunStarted(
                epochs=cfg.epochs,
                steps_per_epoch=steps_per_epoch,
                train_size=len(train_set),
                val_size=len(val_set),
                classes=classes,
                device=str(device),
                start_epoch=start_epoch,
            )
        )
        inputs = self._prepare_inputs(model, train_set, val_set, n_groups, device)
        batch_augment = self._batch_augment(inputs, device, pre, size)
        generator = torch.Generator()
        sampler = self._sampler(train_set.targets, len(classes), generator)
        loader = DataLoader(
            inputs.train.with_transform(None) if batch_augment else inputs.train,
            batch_size=cfg.batch_size,
            sampler=sampler,
            pin_memory=device.type == "cuda",
            drop_last=False,
            collate_fn=pad_collate if batch_augment else None,
        )
        optimizer = make_optimizer(model, cfg)
        scheduler = self._scheduler(optimizer, steps_per_epoch)
        criterion = nn.CrossEntropyLoss(
            weight=self._class_weights(train_set.targets, len(classes), device), label_smoothing=cfg.label_smoothing
        )
        mixer = batch_mixer(cfg.augment, len(classes)) if inputs.augment_on_the_fly else None
        reference = (
            {n: p.detach().clone() for n, p in model.backbone.named_parameters()} if cfg.l2sp > 0 else None
        )

        best, bad_epochs, history = None, 0, []
        best_state: dict[str, torch.Tensor] | None = None
        best_loss_seen = math.inf
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            best, bad_epochs, history = state["best"], state["bad_epochs"], state["history"]
            best_loss_seen = state["best_loss_seen"]

        if state is None and cfg.head_warmup_epochs and trainable_groups_at(cfg, 0, n_groups) > 0:
            self._warm_up_head(model, train_set.with_transform(val_set.transform), criterion, device)

        early_stopped = False
        stopped_in_epoch: int | None = None
        for epoch in range(start_epoch, cfg.epochs):
            epoch_started = time.perf_counter()
            n_trainable = trainable_groups_at(cfg, epoch, n_groups)
            set_trainable_groups(model, n_trainable)
            model.train()
            freeze_bn_of_frozen_layers(model)
            epoch_seed = cfg.seed * 100_003 + epoch
            if isinstance(inputs.train, _CycledViews):
                inputs.train.epoch = epoch
            generator.manual_seed(epoch_seed)
            torch.manual_seed(epoch_seed)
            loss_sum, correct, seen = 0.0, 0, 0
            for step, batch in enumerate(loader):
                if self._stop.is_set():
                    stopped_in_epoch = epoch
                    break
                xb, yb = batch[0].to(device, non_blocking=True), batch[-1].to(device, non_blocking=True)
                if batch_augment:
                    xb = batch_augment(xb, batch[1])
                if use_amp and xb.ndim == 4:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                target = yb
                if mixer is not None:
                    xb, target = mixer(xb, yb)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = inputs.train_forward(xb)
                loss = criterion(logits.float(), target)
                total = loss + self._l2sp_penalty(model, reference) if reference is not None else loss
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                batch = yb.shape[0]
                loss_sum += loss.item() * batch
                correct += int((logits.argmax(1) == yb).sum())
                seen += batch
                self.emit(
                    StepEnded(
                        epoch=epoch + 1,
                        step=step + 1,
                        steps=steps_per_epoch,
                        global_step=epoch * steps_per_epoch + step + 1,
                        loss=loss.item(),
                        lr=self._head_lr(optimizer),
                    )
                )
            if stopped_in_epoch is not None:
                break

            probabilities, val_targets = self._predict(model, inputs.val_forward, inputs.val, device, use_amp)
            val_loss, val_accuracy = _loss_and_accuracy(probabilities, val_targets)
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "lr": self._head_lr(optimizer),
            }
            history.append(record)
            self.emit(
                EpochEnded(
                    epochs=cfg.epochs,
                    seconds=time.perf_counter() - epoch_started,
                    trainable_groups=n_trainable,
                    **record,
                )
            )
            if best is None or val_accuracy > best["val_accuracy"] or (
                val_accuracy == best["val_accuracy"] and val_loss < best["val_loss"]
            ):
                best = {"epoch": epoch + 1, "val_accuracy": val_accuracy, "val_loss": val_loss}
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                self.held.write(self.run.checkpoint_file.name, checkpoint_bytes(best_state))
                if self.run.checkpoint_file.name not in self.held.files:
                    self.emit(CheckpointSaved(path=str(self.run.checkpoint_file), **best))
            if val_loss < best_loss_seen - 1e-6:
                best_loss_seen, bad_epochs = val_loss, 0
            else:
                bad_epochs += 1
            self.held.write(
                self.run.resume_file.name,
                resume_bytes({
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "best": best,
                    "bad_epochs": bad_epochs,
                    "best_loss_seen": best_loss_seen,
                    "history": history,
                }),
            )
            if cfg.early_stopping_patience and bad_epochs >= cfg.early_stopping_patience and epoch + 1 < cfg.epochs:
                early_stopped = True
                break

        seconds = time.perf_counter() - started
        if best is None:
            self.emit(RunStopped(epoch=(stopped_in_epoch or 0) + 1, best_epoch=None, message="Stopped before the first epoch finished; nothing was saved."))
            return TrainResult(self.run, "stopped", None)
        if best_state is None:  # resumed: the best epoch was saved by the earlier process
            best_state = self.run.load_checkpoint()
        model.load_state_dict(best_state)
        report = self._write_report(model, inputs, val_set, classes, device, use_amp, best, history, seconds)
        if stopped_in_epoch is not None:
            self.emit(
                RunStopped(
                    epoch=stopped_in_epoch + 1,
                    best_epoch=best["epoch"],
                    message=f"Stopped during epoch {stopped_in_epoch + 1}; kept the best model (epoch {best['epoch']}).",
                )
            )
            return TrainResult(self.run, "stopped", report, self.held.pending)
        self.emit(
            RunFinished(
                best_epoch=best["epoch"],
                val_accuracy=report["val_accuracy"],
                macro_f1=report["macro_f1"],
                seconds=seconds,
                early_stopped=early_stopped,
            )
        )
        return TrainResult(self.run, "finished", report, self.held.pending)

    # ---------------------------------------------------------------------------------------
    def _image_sets(self, train_index, val_index, class_to_idx, pre, size) -> tuple[LabeledImages, LabeledImages]:
        """Datasets over the decoded-image cache; images that fail to decode are skipped and reported."""
        cache = shared_image_cache(cache_side_for(size, pre.crop_pct))
        train_set = LabeledImages(train_index.records, class_to_idx, cache, train_transform(pre, self.config.augment, size))
        val_set = LabeledImages(val_index.records, class_to_idx, cache, eval_transform(pre, size))
        started = time.perf_counter()
        cached_before = len(cache)

        unreadable: list[SkippedFile] = []

        def report(record, exc) -> None:
            unreadable.append(SkippedFile(record.path, str(exc)))

        train_set = train_set.without(train_set.warm(report))
        val_set = val_set.without(val_set.warm(report))
        self.skipped += unreadable
        if len(train_set) == 0 or len(val_set) == 0:
            raise WarmstartError("No readable images are left for training or validation; see the skipped files.")
        decoded = len(cache) - cached_before
        seconds = time.perf_counter() - started
        where = "kept in memory" if cache.fits_everything else "partly streamed from disk (cache full)"
        self.emit(
            CacheBuilt(
                what="images",
                items=len(train_set) + len(val_set),
                seconds=seconds,
                message=(
                    f"Decoded {decoded:,} images in {seconds:.1f} s ({where}); "
                    f"{len(train_set) + len(val_set) - decoded:,} were already cached."
                    + _unreadable_note(unreadable)
                ),
            )
        )
        return train_set, val_set

    def _prepare_inputs(self, model, train_set, val_set, n_groups, device) -> _Inputs:
        """Precompute what stays fixed for the whole run: pooled features or the frozen prefix."""
        cfg = self.config
        n_trainable = trainable_groups_at(cfg, 0, n_groups)
        fixed = cfg.strategy in (Strategy.FROZEN, Strategy.PARTIAL)
        start = first_trainable_stage(model, n_trainable) if fixed else 0
        on_images = _forward_from(model, 0, False)
        if start == 0:
            return _Inputs(train_set, val_set, on_images, on_images, True)
        features_only = n_trainable == 0
        set_trainable_groups(model, n_trainable)
        cache_train = cfg.augment.is_none
        started = time.perf_counter()
        encoded = []
        datasets = (val_set, train_set) if cache_train else (val_set,)
        total, offset = sum(len(d) for d in datasets), 0
        for dataset in datasets:
            activations = self._encode(model, dataset, start, features_only, device, (offset, total))
            offset += len(dataset)
            if activations is None:  # too large to keep: run the whole network every epoch
                return _Inputs(train_set, val_set, on_images, on_images, True)
            encoded.append(TensorDataset(activations, torch.tensor(dataset.targets)))
        seconds = time.perf_counter() - started
        items = sum(len(e) for e in encoded)
        what = "features" if features_only else f"the output of {start} frozen stages"
        reused = f" ({self.reused_features:,} reused from an earlier run)" if self.reused_features else ""
        self.emit(
            CacheBuilt(
                what="features" if features_only else "prefix",
                items=items,
                seconds=seconds,
                message=f"Cached {what} for {items:,} images in {seconds:.1f} s{reused}; epochs now run only the trainable part.",
            )
        )
        on_cache = _forward_from(model, start, features_only)
        if cache_train:
            return _Inputs(encoded[1], encoded[0], on_cache, on_cache, False)
        if features_only and cfg.augment_views and not cfg.augment.mixes_batches:
            views = self._encode_views(model, train_set, device)
            if views is not None:
                return _Inputs(views, encoded[0], on_cache, on_cache, False)
        return _Inputs(train_set, encoded[0], on_images, on_cache, True)

    def _batch_augment(self, inputs: _Inputs, device: torch.device, pre, size) -> BatchAugment | None:
        """The on-device batch augmenter when epochs read images and the config allows it."""
        mode = self.config.batch_augment
        wanted = mode == "on" or (mode == "auto" and device.type == "cuda")
        if not (wanted and isinstance(inputs.train, LabeledImages) and BatchAugment.supports(self.config.augment)):
            return None
        return BatchAugment(pre, self.config.augment, size)

    def _encode_views(self, model, train_set, device) -> _CycledViews | None:
        """Features of ``augment_views`` seeded augmented views per training image, computed once."""
        cfg = self.config
        started = time.perf_counter()
        views = []
        n = cfg.augment_views
        for view in range(n):
            torch.manual_seed(cfg.seed * 7_919 + view)  # the view's random crops and flips
            key = self._feature_key(f"features-view-{view}-seed-{cfg.seed}-{cfg.augment}", train_set)
            features = encode_cached(
                model.backbone, train_set, key, device, batch_size=max(cfg.batch_size, 64), max_bytes=PREFIX_CACHE_BYTES,
                on_batch=lambda done, v=view: self.emit(
                    CacheProgress(what="views", done=v * len(train_set) + done, total=n * len(train_set))
                ),
            )
            if features is None:
                return None
            views.append(features)
        seconds = time.perf_counter() - started
        self.emit(
            CacheBuilt(
                what="views",
                items=n * len(train_set),
                seconds=seconds,
                message=(
                    f"Cached features of {n} augmented views of {len(train_set):,} training images in {seconds:.1f} s; "
                    "epochs cycle through them instead of running the backbone again."
                ),
            )
        )
        return _CycledViews(views, train_set.targets)

    def _warm_up_head(self, model, train_images, criterion, device) -> None:
        """Linear probe before fine-tuning: fit the head alone on features computed once."""
        started = time.perf_counter()
        n_stages = len(model.backbone.stages)
        features = self._encode(model, train_images, n_stages, True, device)
        if features is None:
            return
        self.emit(
            CacheBuilt(
                what="features",
                items=len(features),
                seconds=time.perf_counter() - started,
                message=(
                    f"Warmed up the new head on features of {len(features):,} images "
                    f"for {self.config.head_warmup_epochs} epochs before fine-tuning."
                ),
            )
        )
        generator = torch.Generator().manual_seed(self.config.seed)
        loader = DataLoader(
            TensorDataset(features, torch.tensor(train_images.targets)),
            batch_size=self.config.batch_size,
            shuffle=True,
            generator=generator,
        )
        optimizer = torch.optim.AdamW(model.head.parameters(), lr=self.config.head_lr, weight_decay=self.config.weight_decay)
        model.head.train()
        for _ in range(self.config.head_warmup_epochs):
            for xb, yb in loader:
                loss = criterion(model.head(xb.to(device)), yb.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def _feature_key(self, depth: str, dataset: LabeledImages) -> str:
        """Feature-cache key for this run's backbone, weights and preprocessing at ``depth``."""
        return run_feature_key(self.config, self._spec, self._preprocessing, depth, [r.path for r in dataset.records])

    def _encode(self, model, dataset, start, features_only, device, progress=None) -> torch.Tensor | None:
        """Run the frozen part once over ``dataset`` through the shared feature cache.

        Returns None when the activations would not fit in memory. ``progress`` is (images
        done before this set, total images) for progress events.
        """
        offset, total = progress or (0, len(dataset))
        what = "features" if features_only else "prefix"
        key = self._feature_key("features" if features_only else f"stage-{start}", dataset)
        hit = shared_feature_cache().get(key) is not None
        result = encode_cached(
            model.backbone,
            dataset,
            key,
            device,
            depth=None if features_only else start,
            batch_size=max(self.config.batch_size, 64),
            max_bytes=PREFIX_CACHE_BYTES,
            on_batch=lambda done: self.emit(CacheProgress(what=what, done=offset + done, total=total)),
        )
        if hit and result is not None:
            self.reused_features += len(result)
        return result

    @torch.no_grad()
    def _predict(self, model, forward, dataset, device, use_amp) -> tuple[np.ndarray, list[int]]:
        """Softmax probabilities over ``dataset`` in its order, with the model in eval mode."""
        was_training = model.training
        model.eval()
        probs, targets = [], []
        for xb, yb in DataLoader(dataset, batch_size=max(self.config.batch_size, 64)):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = forward(xb.to(device))
            probs.append(logits.float().softmax(1).cpu())
            targets.extend(int(y) for y in yb)
        model.train(was_training)
        if was_training:
            freeze_bn_of_frozen_layers(model)
        return torch.cat(probs).numpy(), targets

    def _write_report(self, model, inputs, val_set, classes, device, use_amp, best, history, seconds) -> dict:
        probabilities, targets = self._predict(model, inputs.val_forward, inputs.val, device, use_amp)
        paths = [r.path for r in val_set.records]
        report = {
            "classes": classes,
            **classification_report(targets, probabilities, classes),
            "best_epoch": best["epoch"],
            "epochs_run": len(history),
            "history": history,
            "train_seconds": round(seconds, 3),
            "train_size": len(inputs.train),
            "val_size": len(targets),
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "config": self.config.to_dict(),
        }
        self.held.write_json("report.json", report)
        self.held.write_json("predictions.json", per_image_predictions(paths, targets, probabilities, classes))
        return report

    # ---------------------------------------------------------------------------------------
    def _sampler(self, targets: list[int], n_classes: int, generator: torch.Generator):
        if self.config.balance is Balance.SAMPLER:
            counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
            weights = torch.tensor([1.0 / counts[t] for t in targets], dtype=torch.double)
            return WeightedRandomSampler(weights, num_samples=len(targets), replacement=True, generator=generator)
        return RandomSampler(range(len(targets)), generator=generator)

    def _class_weights(self, targets: list[int], n_classes: int, device) -> torch.Tensor | None:
        if self.config.balance is not Balance.CLASS_WEIGHTS:
            return None
        counts = np.bincount(targets, minlength=n_classes).astype(np.float32)
        weights = counts.sum() / (n_classes * np.maximum(counts, 1))
        return torch.tensor(weights, device=device)

    def _scheduler(self, optimizer, steps_per_epoch: int):
        cfg = self.config
        total = cfg.epochs * steps_per_epoch
        if cfg.schedule is Schedule.ONE_CYCLE:
            return torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total, pct_start=0.25
            )
        if cfg.schedule is Schedule.COSINE:
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        if cfg.schedule is Schedule.STEP:
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_epochs * steps_per_epoch, gamma=cfg.step_gamma)
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)

    def _l2sp_penalty(self, model: TransferModel, reference: dict[str, torch.Tensor]) -> torch.Tensor:
        """λ/2 · ‖w − w_pretrained‖² over the backbone weights that train now."""
        terms = [
            (param - reference[name]).pow(2).sum()
            for name, param in model.backbone.named_parameters()
            if param.requires_grad
        ]
        if not terms:
            return torch.zeros((), device=next(model.parameters()).device)
        return 0.5 * self.config.l2sp * torch.stack(terms).sum()

    @staticmethod
    def _head_lr(optimizer) -> float:
        return float(next(g["lr"] for g in optimizer.param_groups if g["name"].startswith("head")))


def _unreadable_note(unreadable: list[SkippedFile]) -> str:
    """' Skipped 2 unreadable files: a.jpg (reason); b.png (reason).' or nothing."""
    if not unreadable:
        return ""
    shown = "; ".join(f"{Path(s.path).name} ({s.reason})" for s in unreadable[:5])
    more = f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
    return f" Skipped {len(unreadable)} unreadable file(s): {shown}{more}."


def _loss_and_accuracy(probabilities: np.ndarray, targets: list[int]) -> tuple[float, float]:
    probs = torch.as_tensor(probabilities, dtype=torch.float64)
    y = torch.as_tensor(targets)
    loss = torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), y).item()
    accuracy = (probs.argmax(1) == y).double().mean().item()
    return float(loss), float(accuracy)


def train(config: TrainConfig, run: RunDir | str | Path, subscribers: Iterable[Subscriber] = ()) -> TrainResult:
    """Convenience: build a :class:`Trainer` and run it to the end."""
    return Trainer(config, run, subscribers).fit()
