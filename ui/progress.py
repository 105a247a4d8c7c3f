"""Turn a run's event records (live or from metrics.jsonl) into tables and a progress line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .wording import duration_text

__all__ = ["RunProgress", "summarize_events"]


@dataclass
class RunProgress:
    status: str
    caching: tuple[int, int] | None
    epoch: int
    epochs: int
    step: int
    steps: int
    fraction: float
    eta_seconds: float | None
    epochs_table: pd.DataFrame
    steps_table: pd.DataFrame
    log: list[str]
    cache_summary: str | None = None
    backbone_choice: str | None = None  # "Auto chose …: why", when the run's backbone was chosen by a shoot-out
    choosing: bool = False  # the shoot-out that chooses it is running

    @property
    def text(self) -> str:
        eta = f", about {duration_text(self.eta_seconds)} left" if self.eta_seconds is not None else ", time left: estimating…"
        if self.status == "preparing" and self.choosing:
            return "Choosing a backbone: a shoot-out on your training images…"
        if self.status == "preparing":
            return "Preparing: reading images and computing what can be cached…"
        if self.status == "running":
            if not self.step:
                if self.caching:
                    done, total = self.caching
                    return f"Computing features once ({done:,} of {total:,} images) so that epochs run fast…"
                return f"Preparing epoch {self.epoch} of {self.epochs}…"
            return f"Epoch {self.epoch}/{self.epochs}, step {self.step}/{self.steps}{eta}"
        return f"{self.status.capitalize()} after {len(self.epochs_table)} of {self.epochs} epochs"


_MIN_TIMED_STEPS = 5  # steps of this run segment needed before the time left is estimated from them


def _eta(started: dict[str, Any], steps: list[dict[str, Any]], epochs: list[dict[str, Any]], remaining: int, now: float) -> float | None:
    """Seconds left from this run segment's pace, or None while there is too little to go on.

    The clock starts at the segment's first step, not at its start: computing features first can
    take longer than the epochs, and counting it would promise hours for a five-minute run.
    Once an epoch has ended its time (validation included) sets the pace; before that, the steps.
    """
    epoch_seconds = [r["seconds"] for r in epochs if r["time"] >= started["time"]]
    steps_per_epoch = started["steps_per_epoch"]
    if epoch_seconds and steps_per_epoch:
        return max(0.0, remaining * sum(epoch_seconds) / len(epoch_seconds) / steps_per_epoch)
    timed = [r for r in steps if r["time"] >= started["time"]]
    if len(timed) < _MIN_TIMED_STEPS or timed[-1]["time"] <= timed[0]["time"]:
        return None
    pace = (max(now, timed[-1]["time"]) - timed[0]["time"]) / (timed[-1]["global_step"] - timed[0]["global_step"])
    return max(0.0, remaining * pace)


def _log_line(record: dict[str, Any]) -> str | None:
    kind = record["event"]
    stamp = time.strftime("%H:%M:%S", time.localtime(record.get("time", 0)))
    if kind == "started":
        resumed = f", resuming at epoch {record['start_epoch'] + 1}" if record.get("start_epoch") else ""
        text = f"Started: {record['train_size']} training and {record['val_size']} validation images on {record['device']}{resumed}."
    elif kind == "cached":
        text = record["message"]
    elif kind == "epoch":
        text = (
            f"Epoch {record['epoch']}: train loss {record['train_loss']:.3f}, val loss {record['val_loss']:.3f}, "
            f"val accuracy {record['val_accuracy']:.1%} ({record['seconds']:.1f} s)."
        )
    elif kind == "checkpoint":
        text = f"Saved best model so far (epoch {record['epoch']}, val accuracy {record['val_accuracy']:.1%})."
    elif kind == "finished":
        text = f"Finished in {record['seconds']:.1f} s: val accuracy {record['val_accuracy']:.1%}, macro-F1 {record['macro_f1']:.3f}."
        if record.get("early_stopped"):
            text += " Stopped early: validation loss stopped improving."
    elif kind == "stopped":
        text = record["message"]
    elif kind == "failed":
        text = f"Failed: {record['message']}"
    elif kind == "storage_failed":
        text = f"Not saved: {record['message']}"
    else:
        return None
    return f"{stamp}  {text}"


def summarize_events(records: list[dict[str, Any]], now: float | None = None) -> RunProgress:
    """Progress, per-epoch and per-step tables, and a readable log from event records."""
    now = now or time.time()
    started = next((r for r in reversed(records) if r["event"] == "started"), None)
    epochs = started["epochs"] if started else 0
    steps_per_epoch = started["steps_per_epoch"] if started else 0
    step_records = [r for r in records if r["event"] == "step"]
    epoch_records = [r for r in records if r["event"] == "epoch"]
    terminal = next((r["event"] for r in reversed(records) if r["event"] in ("finished", "stopped", "failed")), None)
    status = terminal or ("running" if started else "preparing")
    last = step_records[-1] if step_records else None
    epoch, step = (last["epoch"], last["step"]) if last else ((started or {}).get("start_epoch", 0) + 1 if started else 0, 0)
    total = epochs * steps_per_epoch
    done = last["global_step"] if last else 0
    fraction = 1.0 if status == "finished" else (done / total if total else 0.0)
    caching_record = records[-1] if records and records[-1]["event"] == "caching" else None
    caching = (caching_record["done"], caching_record["total"]) if caching_record else None
    if caching and not last:
        fraction = caching[0] / max(caching[1], 1)
    eta = _eta(started, step_records, epoch_records, total - done, now) if status == "running" and last and started else None
    epochs_table = pd.DataFrame(epoch_records, columns=["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"])
    epochs_table = epochs_table.drop_duplicates("epoch", keep="last").reset_index(drop=True)
    steps_table = pd.DataFrame(step_records, columns=["global_step", "epoch", "loss", "lr"])
    steps_table = steps_table.drop_duplicates("global_step", keep="last").reset_index(drop=True)
    log = [line for line in map(_log_line, records) if line]
    return RunProgress(
        status, caching, epoch, epochs, step, steps_per_epoch, min(fraction, 1.0), eta, epochs_table, steps_table, log,
        _cache_summary(records, epochs_table),
        next((r["message"] for r in reversed(records) if r["event"] == "cached" and r["what"] == "backbone"), None),
        caching_record is not None and caching_record["what"] == "backbone",
    )


def _cache_summary(records: list[dict[str, Any]], epochs_table: pd.DataFrame) -> str | None:
    """'Features cached for 3,670 images in 41 s; epochs then took 0.3 s': why the run is fast."""
    built = [r for r in records if r["event"] == "cached" and r["what"] in ("features", "prefix")]
    if not built or epochs_table.empty:
        return None
    main = built[0]
    what = "Features" if main["what"] == "features" else "Frozen-layer outputs"
    reused = "reused from an earlier run" if "reused" in main["message"] else f"computed in {main['seconds']:.1f} s"
    per_epoch = float(epochs_table["seconds"].mean())
    return f"{what} for {main['items']:,} images {reused}, once; each epoch then took {per_epoch:.2f} s."
