"""A run: one config in, a run folder with a checkpoint and a report out.

The :class:`Trainer` assembles the parts (data, model, inputs, optimiser, callbacks) and hands
them to the one :class:`~transfer_core.training.loop.Loop`. It never talks to a UI: it emits
typed events (see :mod:`transfer_core.training.events`) to its callbacks, the first of which
writes them to the run's ``metrics.jsonl``.

Stopping is a flag checked before every batch; the run then ends as "stopped" with the best
checkpoint and a report of it. A stopped or interrupted run resumed from its last complete
epoch ends exactly where an uninterrupted run would (on a CPU): the loop's state and every
callback's state are saved after each epoch, and random numbers restart from (seed, epoch).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import Strategy, TrainConfig
from ..data.augment import batch_mixer
from ..data.batch_augment import BatchAugment, pad_collate
from ..data.image_cache import LabeledImages
from ..data.records import DatasetIndex, SkippedFile
from ..data.splits import load_run_split
from ..errors import WarmstartError
from ..features.cache import run_network_key
from ..features.cpu_runtime import cpu_runtime_enabled
from ..features.inference import cpu_bf16_training, to_device, weights_layout
from ..insight.calibration import calibrate_run
from ..insight.evaluate import classification_report, per_image_predictions
from ..models.metadata import ModelInfo
from ..models.registry import get_backbone
from ..models.transfer import TransferModel, trainable_groups_at
from ..runs.shared_weights import SharedWeights
from ..runs.store import HeldWrites, RunDir
from .batches import batch_loader
from .callbacks import (
    BackboneFreezing, Callback, CallbackList, CheckpointTimer, EarlyStopping, EventLog, ModelCheckpoint, ModelState, ProgressEvents,
    ResumeCheckpoint, SubscriberCallback,
)
from .distributed import SINGLE, DiscardedWrites, Distributed, ShardedBatchSampler, SynchronisedForward, distributed_from_env
from .events import CacheBuilt, RunEvent, RunFailed, RunFinished, RunStarted, RunStopped, StorageFailed, Subscriber
from .inputs import CycledViews, EpochInputs, RunInputs, ViewCycler, pass_progress
from .loop import Loop, PreparedBatch, head_only_threads
from .optim import class_weights, l2sp_penalty, make_optimizer, make_sampler, make_scheduler
from .distillation import distilled, teacher_for
from .pool_data import pool_training_images
from ..randomness import RunRandomness, seeded_scope
from .warmup import HeadWarmup
from .averaging import weight_averaging

__all__ = ["DEFAULT_CHECKPOINT_INTERVAL_S", "TrainResult", "Trainer", "resolve_device", "train"]

DEFAULT_CHECKPOINT_INTERVAL_S = 5.0  # a run killed outright loses at most this much training


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WarmstartError("--device cuda was requested but no CUDA GPU is available; use --device cpu.")
    return torch.device(name)


@dataclass
class TrainResult:
    run: RunDir
    status: str  # finished / stopped
    report: dict[str, Any] | None
    unsaved: list[str] = dataclasses.field(default_factory=list)  # files held in memory (see Trainer.held)


def _as_callback(item: Callback | Subscriber) -> Callback:
    return item if isinstance(item, Callback) else SubscriberCallback(item)


class Trainer:
    """Train one :class:`TrainConfig` into one run folder.

    Args:
        config: the recipe.
        run: the run folder. Every event is appended to its ``metrics.jsonl``; if the folder stops
            accepting writes (disk full, permissions), training goes on, the results are held in
            memory (:attr:`held`) and a :class:`StorageFailed` event says so once.
        callbacks: :class:`Callback` objects (they see the loop's hooks and every event) or plain
            ``event -> None`` functions.
        data: optional (train, val) indexes; by default they are loaded from ``config.data``.
        checkpoint_interval_s: write the checkpoint files after an epoch only once this many seconds
            have passed since the last write, and at the end (see :class:`CheckpointTimer`); 0 writes
            after every epoch.
    """

    def __init__(
        self,
        config: TrainConfig,
        run: RunDir | str | Path,
        callbacks: Iterable[Callback | Subscriber] = (),
        data: tuple[DatasetIndex, DatasetIndex] | None = None,
        checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.config = config
        self.checkpoint_interval_s = checkpoint_interval_s
        self.run = run if isinstance(run, RunDir) else RunDir(run)
        self.held = HeldWrites(self.run, self._storage_failed)
        self.callbacks = CallbackList([EventLog(self.held), *(_as_callback(c) for c in callbacks)])
        self._data = data
        self._stop = threading.Event()
        self._inputs: RunInputs | None = None
        self.distributed: Distributed = SINGLE  # set in fit() from the launcher's environment (torchrun)
        self.model: TransferModel | None = None  # after fit(): the best epoch's weights

    def subscribe(self, subscriber: Callback | Subscriber) -> None:
        self.callbacks.append(_as_callback(subscriber))

    def request_stop(self) -> None:
        """Ask the loop to stop before its next batch (safe from any thread)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def skipped(self) -> list[SkippedFile]:
        return self._inputs.skipped if self._inputs else []

    @property
    def reused_features(self) -> int:
        """Images whose frozen-part output came from the feature cache (a shoot-out or an earlier run)."""
        return self._inputs.reused_features if self._inputs else 0

    def emit(self, event: RunEvent) -> None:
        if self.distributed.is_main:  # the other ranks of a multi-process run report nothing
            self.callbacks.call("on_event", event)

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

    # ---------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train to completion (or until stopped); raises WarmstartError on bad input."""
        with self.run.metrics_kept_open():  # a line per step: see runs/event_lines.py
            try:
                return self._fit(resume)
            except WarmstartError as exc:
                self.emit(RunFailed(message=str(exc)))
                raise
            except Exception as exc:
                self.emit(RunFailed(message=f"{type(exc).__name__}: {exc}"))
                raise

    def _open_run_folder(self) -> None:
        """Create (or reopen) the run folder, clearing what a killed process left half-written."""
        try:
            self.run.path.mkdir(parents=True, exist_ok=True)
            if not self.run.config_file.exists():
                self.run.write_config(self.config)
            self.run.mark_owner()
            self.run.remove_partial_files()
        except OSError as exc:
            raise WarmstartError(
                f"Cannot write to the run folder '{self.run.path}' ({exc.strerror or exc}); "
                "choose another folder or free some disk space."
            ) from None

    def _fit(self, resume: bool) -> TrainResult:
        cfg = self.config
        started = time.perf_counter()
        device = resolve_device(cfg.device)
        self.distributed = ranks = distributed_from_env(device.type)
        if ranks.enabled and device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
        if ranks.is_main:
            self._open_run_folder()
        else:  # only rank 0 writes the run folder; the others compute the same and wait for it
            self.held = DiscardedWrites(self.run)
        ranks.barrier()
        if resume and self.run.status() == "finished":  # a finished run keeps no resume state
            raise WarmstartError(f"Run '{self.run.name}' already completed all {self.config.epochs} epochs.")
        state = self.run.load_resume_state() if resume else None
        if resume and state is None:
            raise WarmstartError(f"Run '{self.run.name}' has no completed epoch to resume from; start it again.")

        train_index, val_index = self._data or load_run_split(cfg, on_progress=pass_progress(self.emit, "index"))
        train_index = pool_training_images(train_index, cfg, self.run.path, resume, str(device), self.held.write, ranks,
                                           pass_progress(self.emit, "pseudo"))
        classes = train_index.classes
        if len(classes) < 2:
            raise WarmstartError(
                f"Training needs at least two classes, but only '{classes[0]}' has images; add a folder for another class."
            )
        spec = get_backbone(cfg.backbone)
        pre = dataclasses.replace(spec.preprocessing, input_size=cfg.image_size or spec.preprocessing.input_size)
        with seeded_scope(cfg.seed):  # the new head's (and a from-scratch backbone's) initial weights
            model = TransferModel(spec.build(pretrained=cfg.pretrained), len(classes), cfg.dropout)
        # Channels-last convolutions are faster on CUDA and, measured in bench/run.py, on CPUs too
        # (WARMSTART_CPU_RUNTIME=torch keeps the plain PyTorch layout, the benchmark's baseline).
        self._channels_last = device.type == "cuda" or cpu_runtime_enabled()
        model.to(device, memory_format=weights_layout(self._channels_last, device, frozen=cfg.strategy is Strategy.FROZEN))
        self._info = info = ModelInfo(cfg.backbone, classes, pre, model.backbone.num_features, cfg.dropout)
        self.held.write(self.run.model_file.name, info.to_json_bytes())

        self._inputs = inputs = RunInputs(cfg, spec, pre, device, self.emit, ranks)
        inputs.teacher = teacher_for(cfg, pre, device, classes)
        inputs.skipped += train_index.skipped
        train_set, val_set = inputs.image_sets(train_index, val_index, {name: i for i, name in enumerate(classes)})
        steps_per_epoch = -(-len(train_set) // cfg.batch_size)
        start_epoch = state["epoch"] + 1 if state is not None else 0
        if start_epoch >= cfg.epochs:
            raise WarmstartError(f"Run '{self.run.name}' already completed all {cfg.epochs} epochs.")
        self.emit(
            RunStarted(
                epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, train_size=len(train_set), val_size=len(val_set),
                classes=classes, device=str(device), start_epoch=start_epoch,
            )
        )
        n_groups = len(model.backbone.groups)
        epoch_inputs = inputs.epoch_inputs(model, train_set, val_set, n_groups)
        loop = self._loop(model, epoch_inputs, train_set, val_set, n_groups, steps_per_epoch, device)
        if state is not None:
            loop.load_state_dict(state)
        loop.fit(cfg.epochs, start_epoch)
        result = self._finish(loop, model, epoch_inputs, val_set, classes, time.perf_counter() - started)
        self.model = model
        ranks.barrier()  # rank 0's files are complete before any rank returns
        return result

    def _loop(self, model, epoch_inputs: EpochInputs, train_set: LabeledImages, val_set: LabeledImages, n_groups: int, steps_per_epoch: int, device) -> Loop:
        """The loop with this run's data, optimiser and callbacks."""
        cfg = self.config
        n_classes = model.head[-1].out_features
        randomness = RunRandomness(cfg.seed, device)
        batch_augment = self._batch_augment(epoch_inputs, device)
        train_data = epoch_inputs.train.with_transform(None) if batch_augment else epoch_inputs.train
        sampler = make_sampler(cfg, train_set.targets, n_classes, randomness.sampler)
        ranks = self.distributed
        batches = ShardedBatchSampler(sampler, cfg.batch_size, ranks) if ranks.enabled else None
        loader = batch_loader(
            train_data, cfg.batch_size, sampler=None if batches else sampler, batch_sampler=batches,
            generator=randomness.sampler, pin_memory=device.type == "cuda", collate_fn=pad_collate if batch_augment else None,
        )
        optimizer = make_optimizer(model, cfg)
        criterion, prepare = distilled(
            nn.CrossEntropyLoss(weight=class_weights(cfg, train_set.targets, n_classes, device), label_smoothing=cfg.label_smoothing),
            self._batch_preparer(device, batch_augment, n_classes if epoch_inputs.augment_on_the_fly else 0), self._inputs.teacher, cfg,
            cached=not epoch_inputs.augment_on_the_fly)
        freezing = BackboneFreezing(model, lambda epoch: trainable_groups_at(cfg, epoch, n_groups))
        timer = CheckpointTimer(self.checkpoint_interval_s)
        # A frozen backbone's weights are the same after every epoch: both checkpoints read them once and share them.
        weights = ModelState(model, unchanging=("backbone.",) if cfg.strategy is Strategy.FROZEN else ())
        shared = SharedWeights(run_network_key(cfg, self._inputs.spec), weights.unchanging) if weights.constant and ranks.is_main else None
        self._checkpoint = ModelCheckpoint(model, self.held, self.run.checkpoint_file.name, self.emit, timer, weights, shared)
        self._early_stopping = EarlyStopping(cfg.early_stopping_patience, cfg.epochs)
        internal: list[Callback] = [freezing]
        if cfg.head_warmup_epochs and trainable_groups_at(cfg, 0, n_groups) > 0:
            internal.append(self._head_warmup(model, train_set, val_set.transform))
        if isinstance(epoch_inputs.train, CycledViews):
            internal.append(ViewCycler(epoch_inputs.train))
        internal += [ProgressEvents(self.emit, cfg.epochs, freezing), self._checkpoint, self._early_stopping, *weight_averaging(cfg, model)]
        reference = {n: p.detach().clone() for n, p in model.backbone.named_parameters()} if cfg.l2sp > 0 else None
        return Loop(
            module=model,
            forward=SynchronisedForward(epoch_inputs.train_forward, device) if ranks.enabled else epoch_inputs.train_forward,
            optimizer=optimizer,
            criterion=criterion,
            train_data=loader,
            device=device,
            scheduler=make_scheduler(optimizer, cfg, steps_per_epoch),
            prepare_batch=prepare,
            penalty=(lambda: l2sp_penalty(model, reference, cfg.l2sp)) if reference is not None else None,
            grad_clip=cfg.grad_clip,
            val_inputs=epoch_inputs.val,
            val_targets=list(_targets_of(epoch_inputs.val)),
            val_forward=epoch_inputs.val_forward,
            randomness=randomness,
            callbacks=[*internal, *self.callbacks.callbacks, ResumeCheckpoint(self.held, self.run.resume_file.name, timer, weights)],
            stop_event=self._stop,
            steps_per_epoch=steps_per_epoch,
            batch_size=max(cfg.batch_size, 64),
            channels_last=self._channels_last,
            # Steps through backbone layers run in bf16 on CPUs that compute it natively (about 2x,
            # bench/run.py); a head-only step on cached features gains nothing and keeps fp32.
            mixed_precision=device.type == "cuda" or (cpu_bf16_training() and cfg.strategy is not Strategy.FROZEN),
            distributed=ranks, batch_share=batches.next_share if batches else None,
            threads=head_only_threads(device) if epoch_inputs.train_forward is model.head else None,
        )

    def _head_warmup(self, model: TransferModel, train_set: LabeledImages, eval_transform) -> HeadWarmup:
        """Warm-up on pooled features of the training images (evaluation crops, no augmentation)."""
        cfg = self.config

        def features():
            images = train_set.with_transform(eval_transform)
            encoded = self._inputs.encode(model, images, len(model.backbone.stages), True)
            return None if encoded is None else (encoded, images.targets)

        def announce(n: int) -> None:
            self.emit(
                CacheBuilt(
                    what="features", items=n, seconds=0.0,
                    message=(f"Warmed up the new last layer alone for {cfg.head_warmup_epochs} epochs on the features of {n:,} "
                             "images, so fine-tuning starts from a sensible classifier."),
                )
            )

        return HeadWarmup(
            model.head, features, epochs=cfg.head_warmup_epochs, lr=cfg.head_lr, weight_decay=cfg.weight_decay,
            batch_size=cfg.batch_size, seed=cfg.seed, on_start=announce,
        )

    def _batch_augment(self, epoch_inputs: EpochInputs, device: torch.device) -> BatchAugment | None:
        """The on-device batch augmenter when epochs read images and the config allows it."""
        mode = self.config.batch_augment
        wanted = mode == "on" or (mode == "auto" and device.type == "cuda")
        if not (wanted and isinstance(epoch_inputs.train, LabeledImages) and BatchAugment.supports(self.config.augment)):
            return None
        return BatchAugment(self._inputs.pre, self.config.augment, self._inputs.size)

    def _batch_preparer(self, device, batch_augment: BatchAugment | None, n_classes_to_mix: int):
        """Raw batch → (inputs, loss target, class indices): device copy, batched augmentation, mixup/cutmix."""
        mixer = batch_mixer(self.config.augment, n_classes_to_mix) if n_classes_to_mix else None

        def prepare(batch) -> PreparedBatch:
            x, y = to_device(batch[0], device, self._channels_last), batch[-1].to(device, non_blocking=True)
            if batch_augment is not None:
                x = to_device(batch_augment(x, batch[1]), device, self._channels_last)
            target = y
            if mixer is not None:
                x, target = mixer(x, y)
            return x, target, y

        return prepare

    # ---------------------------------------------------------------------------------------
    def _finish(self, loop: Loop, model: TransferModel, epoch_inputs: EpochInputs, val_set: LabeledImages, classes, seconds: float) -> TrainResult:
        """Report the best epoch (or say that nothing was saved) and end with the matching event."""
        best = self._checkpoint.best
        stopped_in = loop.epoch + 1 if loop.interrupted else None
        if best is None:
            self.emit(RunStopped(epoch=stopped_in or 1, best_epoch=None, message="Stopped before the first epoch finished; nothing was saved."))
            return TrainResult(self.run, "stopped", None)
        self._checkpoint.restore_best(self.run.load_checkpoint)
        probabilities, targets, calibration = calibrate_run(loop.validation_logits(), self.held, self._info, self.config.seed)
        report = {
            "classes": classes,
            **classification_report(targets, probabilities, classes),
            "best_epoch": best["epoch"],
            "epochs_run": len(loop.history), "history": loop.history,
            "train_seconds": round(seconds, 3),
            "train_size": len(epoch_inputs.train), "val_size": len(targets), "calibration": calibration,
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "config": self.config.to_dict(),
        }
        self.held.write_json(self.run.report_file.name, report)
        paths = [r.path for r in val_set.records]
        self.held.write_json("predictions.json", per_image_predictions(paths, targets, probabilities, classes))
        if stopped_in is not None:
            message = f"Stopped during epoch {stopped_in}; kept the best model (epoch {best['epoch']})."
            self.emit(RunStopped(epoch=stopped_in, best_epoch=best["epoch"], message=message))
            return TrainResult(self.run, "stopped", report, self.held.pending)
        self.emit(
            RunFinished(
                best_epoch=best["epoch"], val_accuracy=report["val_accuracy"], macro_f1=report["macro_f1"],
                seconds=seconds, early_stopped=self._early_stopping.stopped,
            )
        )
        return TrainResult(self.run, "finished", report, self.held.pending)


def _targets_of(dataset) -> list[int]:
    """Class indices of a validation dataset: image datasets keep a list, cached ones a tensor."""
    if hasattr(dataset, "targets"):
        return [int(t) for t in dataset.targets]
    return [int(t) for t in dataset.tensors[-1]]


def train(config: TrainConfig, run: RunDir | str | Path, callbacks: Iterable[Callback | Subscriber] = ()) -> TrainResult:
    """Convenience: build a :class:`Trainer` and run it to the end."""
    return Trainer(config, run, callbacks).fit()
