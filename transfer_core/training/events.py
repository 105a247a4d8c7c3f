"""Typed events that the trainer emits to its subscribers.

The run store writes each one as a line of ``metrics.jsonl``; the app and the CLI progress bar
read the same records. A subscriber is any callable taking a :class:`RunEvent`; it must not
reach into the training loop (to stop a run, call ``Trainer.request_stop``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

__all__ = [
    "CacheBuilt",
    "CacheProgress",
    "CheckpointSaved",
    "EpochEnded",
    "Event",
    "RunEvent",
    "RunFailed",
    "RunFinished",
    "RunStarted",
    "RunStopped",
    "StepEnded",
    "StorageFailed",
    "Subscriber",
    "event_from_dict",
]


class Event(StrEnum):
    STARTED = "started"
    CACHING = "caching"
    CACHED = "cached"
    STEP = "step"
    EPOCH = "epoch"
    CHECKPOINT = "checkpoint"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    STORAGE = "storage_failed"


@dataclass(frozen=True)
class RunEvent:
    kind: ClassVar[Event]
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind.value, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        """One ``metrics.jsonl`` line."""
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass(frozen=True)
class RunStarted(RunEvent):
    kind: ClassVar[Event] = Event.STARTED
    epochs: int
    steps_per_epoch: int
    train_size: int
    val_size: int
    classes: list[str]
    device: str
    start_epoch: int = 0  # > 0 when resuming


@dataclass(frozen=True)
class CacheProgress(RunEvent):
    """Progress of a one-off pass (computing features) before the epochs start."""

    kind: ClassVar[Event] = Event.CACHING
    what: str
    done: int
    total: int


@dataclass(frozen=True)
class CacheBuilt(RunEvent):
    """Work done once so that epochs are cheap (decoded images, cached features)."""

    kind: ClassVar[Event] = Event.CACHED
    what: str
    items: int
    seconds: float
    message: str


@dataclass(frozen=True)
class StepEnded(RunEvent):
    kind: ClassVar[Event] = Event.STEP
    epoch: int
    step: int
    steps: int
    global_step: int
    loss: float
    lr: float


@dataclass(frozen=True)
class EpochEnded(RunEvent):
    kind: ClassVar[Event] = Event.EPOCH
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    trainable_groups: int


@dataclass(frozen=True)
class CheckpointSaved(RunEvent):
    kind: ClassVar[Event] = Event.CHECKPOINT
    epoch: int
    path: str
    val_accuracy: float
    val_loss: float


@dataclass(frozen=True)
class RunFinished(RunEvent):
    kind: ClassVar[Event] = Event.FINISHED
    best_epoch: int
    val_accuracy: float
    macro_f1: float
    seconds: float
    early_stopped: bool = False


@dataclass(frozen=True)
class RunStopped(RunEvent):
    kind: ClassVar[Event] = Event.STOPPED
    epoch: int
    best_epoch: int | None
    message: str


@dataclass(frozen=True)
class RunFailed(RunEvent):
    kind: ClassVar[Event] = Event.FAILED
    message: str


@dataclass(frozen=True)
class StorageFailed(RunEvent):
    """The run folder could not be written; training goes on with its results held in memory."""

    kind: ClassVar[Event] = Event.STORAGE
    message: str


Subscriber = Callable[[RunEvent], None]

_BY_KIND = {
    cls.kind: cls
    for cls in (RunStarted, CacheProgress, CacheBuilt, StepEnded, EpochEnded, CheckpointSaved, RunFinished, RunStopped, RunFailed, StorageFailed)
}


def event_from_dict(record: dict[str, Any]) -> RunEvent:
    """Rebuild a typed event from a ``metrics.jsonl`` line."""
    values = dict(record)
    cls = _BY_KIND[Event(values.pop("event"))]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})
