"""Which backbone to train: the shoot-out's recommendation, and the ``auto`` backbone that follows it.

The rule (:func:`recommend`), in the spirit of the one-standard-error rule of model selection:

1. the contenders are the backbones whose probe accuracy lies inside the best one's 95 % (Wilson)
   interval on the held-out images, the "within noise" of :func:`~.shootout.shootout_verdict` that
   the page shows beside it: the probe is measured on the user's own images, the closest thing to
   the run's result that costs seconds, but on 60 images 85 % and 87 % are not told apart;
2. among the contenders, the fastest measured per image (within 1.2×, timings on a shared machine
   are noisy, counts as as fast): equal results for less time on every later prediction. When a
   contender's speed was never measured this step is skipped rather than guessed;
3. then the higher probe accuracy, then the higher LogME (an estimate from the training features
   alone), then fewer seconds per image.

A backbone that could not be tried never wins. The rule takes the measured number first and the
estimate second on purpose: ``bench/transferability.py`` measures how often LogME's ranking agrees
with the probe's and with trained runs'.

``auto`` as a backbone name (``--backbone auto``, the Auto recipe) runs the shoot-out on the
training images alone, the probe scored by cross-validation, so the run's validation accuracy stays
an honest estimate rather than the best of several tries on the same images. It is resolved before
any Trainer starts (:func:`resolve_backbone`, :func:`resolve_run_backbone`): a run folder's config
always names the backbone it trained, so the run can be reproduced, and resuming it never runs the
shoot-out again.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import AUTO_BACKBONE, TrainConfig
from ..data.records import DatasetIndex
from ..errors import WarmstartError
from ..models.backbone import Availability, WeightsSource
from ..models.registry import get_backbone, list_backbones
from ..reporting import OnProgress
from ..runs.store import RunDir
from ..training.events import CacheBuilt, CacheProgress
from .shootout import ProbeResult, backbone_shootout, noise_interval

__all__ = [
    "AUTO_BACKBONE", "CANDIDATES_ENV", "BackboneChoice", "auto_candidates", "noise_floor", "rank", "recommend", "record_choice",
    "resolve_backbone", "resolve_run_backbone", "run_progress",
]

CANDIDATES_ENV = "WARMSTART_AUTO_BACKBONES"  # comma-separated names: what ``auto`` chooses among
_SAME_SPEED = 1.2  # closer than this ratio two measured speeds are "about as fast": timings on a shared machine are noisy


@dataclass(frozen=True)
class BackboneChoice:
    """The recommended backbone, the one sentence that says why, and the results it came from."""

    backbone: str
    reason: str
    results: tuple[ProbeResult, ...]

    @property
    def announcement(self) -> str:
        """One line for a run's log and the command line."""
        images = next((r.held_out for r in self.results if r.backbone == self.backbone), 0)
        return (f"Auto chose {self.backbone} after a shoot-out of {len(self.results)} backbone"
                f"{'s' if len(self.results) != 1 else ''} on {images:,} training images: {self.reason}")


def auto_candidates() -> list[str]:
    """What ``auto`` compares: every registered backbone whose weights are on this machine (bundled,
    or downloaded before), the same list the Backbone page's shoot-out uses; test and from-scratch
    networks are not candidates. ``$WARMSTART_AUTO_BACKBONES`` (comma-separated names) replaces it.

    Raises:
        WarmstartError: ``$WARMSTART_AUTO_BACKBONES`` names a backbone that is not registered.
    """
    configured = [name.strip() for name in os.environ.get(CANDIDATES_ENV, "").split(",") if name.strip()]
    if configured:
        for name in configured:
            try:
                get_backbone(name)
            except WarmstartError as exc:
                raise WarmstartError(f"{CANDIDATES_ENV} names '{name}': {exc}") from None
        return configured
    return [spec.name for spec in list_backbones()
            if spec.source is not WeightsSource.LOCAL and spec.availability() is not Availability.DOWNLOAD]


def _rank_key(result: ProbeResult) -> tuple[float, float, float]:
    """Best first by accuracy (rounded so equal image counts tie exactly), then LogME, then speed."""
    logme = result.logme if result.logme is not None else -math.inf
    speed = result.seconds_per_image if result.seconds_per_image is not None else math.inf
    return -round(result.val_accuracy, 9), -logme, speed


def noise_floor(accuracy: float, images: int) -> float:
    """The lowest accuracy still "within noise" of ``accuracy`` measured on ``images`` held-out images:
    the bottom of its 95 % Wilson interval (as the page's verdict says it)."""
    return noise_interval(accuracy, images)[0] if images > 0 else 0.0


def _percents(a: float, b: float) -> tuple[str, str]:
    """'97 %' and '94 %'; one decimal when whole percents would hide the difference."""
    digits = 0 if round(a * 100) != round(b * 100) or round(a, 9) == round(b, 9) else 1
    return f"{a * 100:.{digits}f} %", f"{b * 100:.{digits}f} %"


def _speed_ratio(slow: ProbeResult, fast: ProbeResult) -> float | None:
    """How many times ``fast`` is quicker per image than ``slow`` (None when either is unmeasured)."""
    if not slow.seconds_per_image or not fast.seconds_per_image:
        return None
    return slow.seconds_per_image / fast.seconds_per_image


def _speed_clause(best: ProbeResult, other: ProbeResult) -> str:
    """'; about 1.6× slower per image', from the two measured seconds per image ('' if either is unknown)."""
    ratio = _speed_ratio(best, other)
    if ratio is None:
        return ""
    if ratio >= _SAME_SPEED:
        return f"; about {ratio:.1f}× slower per image"
    if ratio <= 1 / _SAME_SPEED:
        return f"; and about {1 / ratio:.1f}× faster per image"
    return "; about as fast per image"


def _winner(scored: list[ProbeResult]) -> ProbeResult:
    """The module's rule over backbones that were tried, ``scored`` best first by :func:`_rank_key`."""
    contenders = _contenders(scored)
    if all(r.seconds_per_image for r in contenders):
        fastest = min(r.seconds_per_image for r in contenders)
        contenders = [r for r in contenders if r.seconds_per_image <= fastest * _SAME_SPEED]
    return contenders[0]  # still in _rank_key order


def _contenders(scored: list[ProbeResult]) -> list[ProbeResult]:
    """The backbones within noise of the most accurate one (``scored`` best first), in that order."""
    floor = noise_floor(scored[0].val_accuracy, scored[0].held_out or 0)
    return [r for r in scored if r.val_accuracy >= floor - 1e-9]


def rank(results: Sequence[ProbeResult]) -> list[ProbeResult]:
    """``results`` with the rule's pick first, the rest by accuracy, those that could not be tried last."""
    scored = sorted((r for r in results if r.val_accuracy is not None), key=_rank_key)
    if scored:
        winner = _winner(scored)
        scored = [winner] + [r for r in scored if r is not winner]
    return scored + [r for r in results if r.val_accuracy is None]


def recommend(results: Sequence[ProbeResult]) -> BackboneChoice | None:
    """The backbone the module's rule picks from shoot-out ``results``, with one sentence on why
    (against the strongest other backbone); None when no backbone could be tried."""
    scored = [r for r in rank(results) if r.val_accuracy is not None]
    if not scored:
        return None
    best = scored[0]
    if len(scored) == 1:
        reason = f"{best.backbone} is the only backbone that could be tried (probe {_percents(best.val_accuracy, 0)[0]})."
        return BackboneChoice(best.backbone, reason, tuple(results))
    other = min(scored[1:], key=_rank_key)
    mine, theirs = _percents(best.val_accuracy, other.val_accuracy)
    ratio = _speed_ratio(other, best)
    if _rank_key(other)[:2] <= _rank_key(best)[:2] and ratio is not None:  # other is as good on probe and LogME: speed decided
        reason = (f"{best.backbone} is {ratio:.1f}× faster per image than {other.backbone}, and their probes are within "
                  f"the noise of {best.held_out} held-out images ({mine} vs {theirs}).")
        return BackboneChoice(best.backbone, reason, tuple(results))
    if round(best.val_accuracy, 9) != round(other.val_accuracy, 9) and other in _contenders(scored):
        reason = (f"{best.backbone} has the highest probe ({mine} vs {theirs} for {other.backbone}, a difference within the "
                  f"noise of {best.held_out} held-out images)")
    elif round(best.val_accuracy, 9) != round(other.val_accuracy, 9):
        reason = f"{best.backbone}'s features separate your classes best: probe {mine} vs {theirs} for {other.backbone}"
    elif best.logme is not None and best.logme != other.logme:
        theirs_logme = f"{other.logme:.2f}" if other.logme is not None else "none"
        reason = (f"{best.backbone} and {other.backbone} tie on the probe ({mine}), and {best.backbone}'s features score "
                  f"higher on LogME, an estimate of how well they transfer ({best.logme:.2f} vs {theirs_logme})")
    elif best.seconds_per_image is not None and best.seconds_per_image != other.seconds_per_image:
        reason = f"{best.backbone} and {other.backbone} tie on the probe ({mine}) and on LogME, and {best.backbone} is faster"
    else:
        reason = f"{best.backbone} and {other.backbone} tie on the probe ({mine}), LogME and speed; {best.backbone} came first"
    return BackboneChoice(best.backbone, reason + _speed_clause(best, other) + ".", tuple(results))


def resolve_backbone(
    config: TrainConfig,
    data: tuple[DatasetIndex, DatasetIndex] | None = None,
    on_progress: OnProgress | None = None,
) -> tuple[TrainConfig, BackboneChoice | None]:
    """``config`` with ``auto`` replaced by the shoot-out's winner on its training images, and the choice;
    any other config unchanged (and None), without reading the data.

    Args:
        config: the run's recipe.
        data: its (train, val) indexes when already read; by default read from ``config``.
        on_progress: the shoot-out's progress (see :func:`~transfer_core.insight.shootout.backbone_shootout`).

    Raises:
        WarmstartError: no candidate backbone, none could be tried, or the training images cannot be
            cross-validated (a class with one image).
    """
    if config.backbone != AUTO_BACKBONE:
        return config, None
    from ..data.splits import load_run_split
    from ..training.trainer import resolve_device

    candidates = auto_candidates()
    if not candidates:
        raise WarmstartError("No backbone's weights are on this machine for auto to choose from; name one with --backbone.")
    train, _ = data or load_run_split(config)
    results = backbone_shootout(train, None, candidates, device=str(resolve_device(config.device)), on_progress=on_progress)
    choice = recommend(results)
    if choice is None:
        reasons = "; ".join(f"{r.backbone}: {r.error}" for r in results)
        raise WarmstartError(f"Auto could not try any backbone ({reasons}).")
    return config.replace(backbone=choice.backbone), choice


def record_choice(run: RunDir, choice: BackboneChoice) -> None:
    """Write why the run trains ``choice.backbone`` into its events (a "cached" event, what="backbone"),
    where the app's event log and anyone reading ``metrics.jsonl`` find it."""
    seconds = round(sum(r.seconds for r in choice.results), 3)
    run.append_event(CacheBuilt(what="backbone", items=len(choice.results), seconds=seconds, message=choice.announcement))


def run_progress(run: RunDir) -> OnProgress:
    """An ``on_progress`` that writes the shoot-out's progress into the run's events (about 200 lines a
    phase, as a training pass's own), for the app to show while a worker chooses; a refused write is skipped."""
    from ..training.inputs import pass_progress

    def append(event: CacheProgress) -> None:
        with contextlib.suppress(OSError):  # a refused write loses one progress line, never the choice
            run.append_event(event)

    return pass_progress(append, "backbone")


def resolve_run_backbone(
    config: TrainConfig,
    run: RunDir,
    data: tuple[DatasetIndex, DatasetIndex] | None = None,
    on_progress: OnProgress | None = None,
) -> tuple[TrainConfig, BackboneChoice | None]:
    """:func:`resolve_backbone` for a run about to train in ``run``: the winner is written into the
    run's ``config.json`` and the reason into its events (:func:`record_choice`).

    Under ``torchrun`` only rank 0 runs the shoot-out and every rank gets its choice; every rank joins
    that exchange whatever config it read, since rank 0 may already have written the winner when a
    slower rank reads ``config.json``, and a rank that skipped the exchange would leave rank 0 waiting.

    Raises:
        WarmstartError: as :func:`resolve_backbone`, or the run folder cannot be written.
    """
    from ..training.distributed import distributed_from_env
    from ..training.trainer import resolve_device

    ranks = distributed_from_env(resolve_device(config.device).type)
    if config.backbone != AUTO_BACKBONE and not ranks.enabled:
        return config, None

    def choose() -> BackboneChoice | None:
        resolved, choice = resolve_backbone(config, data, on_progress)
        if choice is None:
            return None
        try:
            run.write_config(resolved)
            record_choice(run, choice)
        except OSError as exc:
            raise WarmstartError(f"Cannot write to the run folder '{run.path}' ({exc.strerror or exc}); "
                                 "choose another folder or free some disk space.") from None
        return choice

    choice = ranks.from_main(choose)
    return (config, None) if choice is None else (config.replace(backbone=choice.backbone), choice)
