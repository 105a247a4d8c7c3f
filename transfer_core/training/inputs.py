"""What a run's epochs iterate over: decoded images, or what the frozen part of the network made of them.

Work that does not change between epochs is done once. Images are decoded once into the
image cache. While the first backbone stages are frozen and the inputs are not augmented,
their output is computed once (through the shared feature cache, so a shoot-out or an earlier
run may already have it) and the epochs run only the trainable rest of the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..config import Strategy, TrainConfig
from ..data.augment import eval_transform, train_transform
from ..data.decode import cache_side_for
from ..data.image_cache import LabeledImages, shared_image_cache
from ..data.images import ImageReadError
from ..data.records import DatasetIndex, SkippedFile
from ..errors import WarmstartError
from ..features.cache import encode_cached, encode_cached_sets, run_feature_key, run_network_key, shared_feature_cache
from ..features.inference import eval_mode
from ..models.registry import BackboneSpec, Preprocessing
from ..models.transfer import TransferModel, first_trainable_stage, set_trainable_groups, trainable_groups_at
from .callbacks import Callback
from .distributed import SINGLE, Distributed
from .events import CacheBuilt, CacheProgress, RunEvent
from ..randomness import seeded_scope
from ..reporting import OnProgress, phase, throttled

__all__ = ["CycledViews", "EpochInputs", "FromStage", "RunInputs", "ViewCycler", "pass_progress"]


def pass_progress(emit: Callable[[RunEvent], None], what: str) -> OnProgress:
    """An ``on_progress`` that reports a one-off pass as :class:`CacheProgress` events named ``what``,
    about 200 per pass, since each becomes a line of the run's event log."""
    return throttled(lambda done, total, _: emit(CacheProgress(what=what, done=done, total=total)))


# Cached activations of a frozen prefix are kept only while they fit in this many bytes.
PREFIX_CACHE_BYTES = 3 * 1024**3


@dataclass
class EpochInputs:
    """What the epochs iterate over and how each kind of input runs through the model."""

    train: Dataset
    val: Dataset
    train_forward: nn.Module
    val_forward: nn.Module
    augment_on_the_fly: bool


class CycledViews(Dataset):
    """Cached features of several augmented views; epoch ``e`` reads view ``e % n``."""

    def __init__(self, views: list[torch.Tensor], targets: list[int]) -> None:
        self.views, self.targets, self.epoch = views, torch.tensor(targets), 0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.views[self.epoch % len(self.views)][i], self.targets[i]


class FromStage(nn.Module):
    """The model run from stage ``start`` on: a module, so a multi-process run can wrap it in
    DistributedDataParallel like any network."""

    def __init__(self, model: TransferModel, start: int) -> None:
        super().__init__()
        self.model, self.start = model, start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, start_stage=self.start)


class ViewCycler(Callback):
    """Points the cached-views dataset at this epoch's view."""

    name = "view_cycler"

    def __init__(self, views: CycledViews) -> None:
        self.views = views

    def on_train_epoch_start(self, loop) -> None:
        self.views.epoch = loop.epoch


def _forward_from(model: TransferModel, start: int, features_only: bool) -> nn.Module:
    """The model's forward for inputs that already went through the first ``start`` stages."""
    if features_only:
        return model.head
    return FromStage(model, start)


def _unreadable_note(unreadable: list[SkippedFile]) -> str:
    """' Skipped 2 unreadable files: a.jpg (reason); b.png (reason).' or nothing."""
    if not unreadable:
        return ""
    shown = "; ".join(f"{Path(s.path).name} ({s.reason})" for s in unreadable[:5])
    more = f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
    return f" Skipped {len(unreadable)} unreadable file(s): {shown}{more}."


class RunInputs:
    """Builds a run's datasets and caches, reporting each one-off pass as events.

    Args:
        config: the recipe.
        spec, preprocessing: the backbone and the preprocessing at the run's image size.
        device: where the frozen part runs.
        emit: receives :class:`CacheProgress` / :class:`CacheBuilt` events.
        distributed: this process's rank in a multi-process run: the frozen part runs over this
            rank's share of the images only, and the shares are gathered.
    """

    def __init__(
        self, config: TrainConfig, spec: BackboneSpec, preprocessing: Preprocessing, device: torch.device,
        emit: Callable[[RunEvent], None], distributed: Distributed = SINGLE,
    ) -> None:
        self.config, self.spec, self.pre, self.device, self.emit = config, spec, preprocessing, device, emit
        self.distributed = distributed
        self.size = preprocessing.input_size
        self.skipped: list[SkippedFile] = []
        self.reused_features = 0  # images whose frozen-part output came from the feature cache
        self.runtime: str | None = None  # what ran the frozen part ("ONNX Runtime", or "PyTorch (why)")
        self.teacher = None  # a distillation Teacher, set by the trainer: its logits of cached inputs are cached with them

    def _note_runtime(self, runtime: str) -> None:
        self.runtime = runtime

    def _runtime_note(self) -> str:
        return f" with {self.runtime}" if self.runtime else ""

    def image_sets(self, train_index: DatasetIndex, val_index: DatasetIndex, class_to_idx: dict[str, int]) -> tuple[LabeledImages, LabeledImages]:
        """Datasets over the decoded-image cache; images that fail to decode are skipped and reported."""
        cache = shared_image_cache(cache_side_for(self.size, self.pre.crop_pct))
        train_set = LabeledImages(train_index.records, class_to_idx, cache, train_transform(self.pre, self.config.augment, self.size))
        val_set = LabeledImages(val_index.records, class_to_idx, cache, eval_transform(self.pre, self.size))
        started, cached_before = time.perf_counter(), len(cache)
        unreadable: list[SkippedFile] = []

        def report(record, exc) -> None:
            unreadable.append(SkippedFile(record.path, str(exc)))

        read, n_train = phase(pass_progress(self.emit, "images"), len(train_set) + len(val_set), "images"), len(train_set)
        train_set = train_set.without(self._warm(train_set, report, read))
        val_set = val_set.without(self._warm(val_set, report, lambda done: read(n_train + done)))
        self.skipped += unreadable
        if len(train_set) == 0 or len(val_set) == 0:
            raise WarmstartError("No readable images are left for training or validation; see the skipped files.")
        decoded, seconds = len(cache) - cached_before, time.perf_counter() - started
        decoded = int(self.distributed.sum([decoded])[0])  # each rank decoded its own share
        where = "kept in memory" if cache.fits_everything else "partly streamed from disk (cache full)"
        total = len(train_set) + len(val_set)
        self.emit(
            CacheBuilt(
                what="images", items=total, seconds=seconds,
                message=f"Read {decoded:,} images in {seconds:.1f} s ({where}); {total - decoded:,} were already in memory."
                + _unreadable_note(unreadable),
            )
        )
        return train_set, val_set

    def _warm(self, images: LabeledImages, report: Callable, on_read: Callable[[int], None]) -> list[int]:
        """Decode ``images`` into the cache; the positions that failed. In a multi-process run each
        rank decodes its share and every rank learns all failures (so all skip the same files)."""
        ranks = self.distributed
        if not ranks.enabled:
            return images.warm(report, on_read=on_read)
        mine = ranks.shard(len(images))
        reasons: list[str] = []
        unreadable = images.subset(mine).warm(
            lambda record, exc: reasons.append(str(exc)), on_read=lambda done: on_read(min(len(images), done * ranks.world_size))
        )
        failed = [(mine[i], reason) for i, reason in zip(unreadable, reasons)]
        everyone: list[list[tuple[int, str]]] = [[] for _ in range(ranks.world_size)]
        torch.distributed.all_gather_object(everyone, failed)
        positions = []
        for position, reason in sorted(pair for part in everyone for pair in part):
            report(images.records[position], ImageReadError(reason))
            positions.append(position)
        return positions

    def epoch_inputs(self, model: TransferModel, train_set: LabeledImages, val_set: LabeledImages, n_groups: int) -> EpochInputs:
        """Precompute what stays fixed for the whole run: pooled features or the frozen prefix."""
        cfg = self.config
        n_trainable = trainable_groups_at(cfg, 0, n_groups)
        fixed = cfg.strategy in (Strategy.FROZEN, Strategy.PARTIAL)
        start = first_trainable_stage(model, n_trainable) if fixed else 0
        on_images = _forward_from(model, 0, False)
        if start == 0:
            return EpochInputs(train_set, val_set, on_images, on_images, True)
        features_only = n_trainable == 0
        set_trainable_groups(model, n_trainable)
        cache_train = cfg.augment.is_none
        started = time.perf_counter()
        encoded = []
        datasets = (val_set, train_set) if cache_train else (val_set,)
        with eval_mode(model.backbone):  # switched once for both sets instead of once for each
            activations = self.encode_sets(model, datasets, start, features_only)
        if activations is None:  # too large to keep: run the whole network every epoch
            return EpochInputs(train_set, val_set, on_images, on_images, True)
        for dataset, features in zip(datasets, activations):
            # A teacher's logits of cached inputs are computed once too, and travel with them (see training/distillation.py).
            taught = [self.teacher.logits_of(dataset)] if self.teacher is not None and dataset is train_set else []
            encoded.append(TensorDataset(features, *taught, torch.tensor(dataset.targets)))
        seconds = time.perf_counter() - started
        items = sum(len(e) for e in encoded)
        reused = f" ({self.reused_features:,} reused from an earlier run)" if self.reused_features else ""
        if features_only:
            message = (f"Computed the frozen backbone's features once for {items:,} images in {seconds:.1f} s"
                       f"{self._runtime_note()}{reused}; each epoch now trains only the new last layer, in moments.")
        else:
            message = (f"Ran the frozen part of the network (its first {start} blocks) once over {items:,} images in "
                       f"{seconds:.1f} s{self._runtime_note()}{reused}; each epoch now runs only the layers that learn.")
        self.emit(CacheBuilt(what="features" if features_only else "prefix", items=items, seconds=seconds, message=message))
        on_cache = _forward_from(model, start, features_only)
        if cache_train:
            return EpochInputs(encoded[1], encoded[0], on_cache, on_cache, False)
        if features_only and cfg.augment_views and not cfg.augment.mixes_batches:
            views = self._encode_views(model, train_set)
            if views is not None:
                return EpochInputs(views, encoded[0], on_cache, on_cache, False)
        return EpochInputs(train_set, encoded[0], on_images, on_cache, True)

    def encode_sets(self, model: TransferModel, datasets: tuple[LabeledImages, ...], start: int, features_only: bool) -> list[torch.Tensor] | None:
        """:meth:`encode` for each of ``datasets`` (read alike: the evaluation crop); None when they would
        not fit in memory. Pooled features of the sets not cached yet come from one pass (see
        :func:`encode_cached_sets`). A frozen prefix's activations, tens of times larger, and each set in a
        multi-process run (shared out among the ranks and gathered) are computed a set at a time."""
        total = sum(len(d) for d in datasets)
        if self.distributed.enabled or not features_only:
            encoded, offset = [], 0
            for dataset in datasets:
                activations = self.encode(model, dataset, start, features_only, (offset, total))
                if activations is None:
                    return None
                encoded.append(activations)
                offset += len(dataset)
            return encoded
        keys = [self._feature_key("features", d) for d in datasets]
        cache = shared_feature_cache()
        reused = sum(len(d) for d, key in zip(datasets, keys) if cache.get(key) is not None)
        result = encode_cached_sets(
            model.backbone, datasets, keys, self.device, join=lambda sets: sets[0].joined(sets[1:]),
            batch_size=max(self.config.batch_size, 64), max_bytes=PREFIX_CACHE_BYTES,
            on_batch=lambda done: self.emit(CacheProgress(what="features", done=done, total=total)),
            weights=run_network_key(self.config, self.spec), on_runtime=self._note_runtime,
        )
        if result is not None:
            self.reused_features += reused
        return result

    def encode(self, model: TransferModel, dataset: LabeledImages, start: int, features_only: bool, progress: tuple[int, int] | None = None) -> torch.Tensor | None:
        """Run the frozen part once over ``dataset`` through the shared feature cache.

        Returns None when the activations would not fit in memory. ``progress`` is (images
        done before this set, total images) for progress events.
        """
        offset, total = progress or (0, len(dataset))
        what = "features" if features_only else "prefix"
        key = self._feature_key("features" if features_only else f"stage-{start}", dataset)
        ranks = self.distributed
        mine = dataset.subset(ranks.shard(len(dataset))) if ranks.enabled else dataset
        local_key = f"{key}|rank {ranks.rank} of {ranks.world_size}" if ranks.enabled else key
        hit = shared_feature_cache().get(local_key) is not None
        result = encode_cached(
            model.backbone, mine, local_key, self.device, depth=None if features_only else start,
            batch_size=max(self.config.batch_size, 64), max_bytes=PREFIX_CACHE_BYTES // ranks.world_size,
            on_batch=lambda done: self.emit(CacheProgress(what=what, done=offset + done * ranks.world_size, total=total)),
            weights=run_network_key(self.config, self.spec), on_runtime=self._note_runtime,
        )
        if ranks.enabled:  # every rank keeps the whole set, or none does
            if ranks.any(result is None):
                return None
            result = ranks.gather_rows(result, len(dataset))
        if hit and result is not None:
            self.reused_features += len(result)
        return result

    def _encode_views(self, model: TransferModel, train_set: LabeledImages) -> CycledViews | None:
        """Features of ``augment_views`` seeded augmented views per training image, computed once."""
        cfg = self.config
        started = time.perf_counter()
        views, n = [], cfg.augment_views
        for view in range(n):
            key = self._feature_key(f"features-view-{view}-seed-{cfg.seed}-{cfg.augment}", train_set)
            with seeded_scope(cfg.seed * 7_919 + view):  # the view's random crops and flips
                features = encode_cached(
                    model.backbone, train_set, key, self.device, batch_size=max(cfg.batch_size, 64), max_bytes=PREFIX_CACHE_BYTES,
                    on_batch=lambda done, v=view: self.emit(CacheProgress(what="views", done=v * len(train_set) + done, total=n * len(train_set))),
                    weights=run_network_key(cfg, self.spec), on_runtime=self._note_runtime,
                )
            if features is None:
                return None
            views.append(features)
        seconds = time.perf_counter() - started
        self.emit(
            CacheBuilt(
                what="views", items=n * len(train_set), seconds=seconds,
                message=(
                    f"Computed the features of {n} randomly altered copies of each of the {len(train_set):,} training images once, "
                    f"in {seconds:.1f} s{self._runtime_note()}; epochs take turns with them instead of running the backbone again."
                ),
            )
        )
        return CycledViews(views, train_set.targets)

    def _feature_key(self, depth: str, dataset: LabeledImages) -> str:
        """Feature-cache key for this run's backbone, weights and preprocessing at ``depth``."""
        return run_feature_key(self.config, self.spec, self.pre, depth, [r.path for r in dataset.records])
