"""Names a person can read for a run (``lite1 · partial · 95.4 % · Nov 23 14:05``).

The folder name stays the run's id (a timestamp, so folders sort by age and never collide);
what lists and pickers show is derived from the run's own files instead.
"""

from __future__ import annotations

import re
import time

from ..errors import WarmstartError
from .store import RunDir

__all__ = ["display_name", "short_backbone"]

_STAMPED = re.compile(r"^(\d{8})-(\d{6})(?:-(.*))?$")
_STATUS_WORDS = {"running": "training…", "interrupted": "interrupted", "stopped": "stopped", "failed": "failed",
                 "created": "not started"}


def short_backbone(name: str) -> str:
    """``efficientnet_lite1`` → ``lite1``; other names as they are (without a ``.tv`` style suffix)."""
    name = name.removeprefix("efficientnet_").removeprefix("tv_")
    return name.split(".")[0]


def display_name(run: RunDir) -> str:
    """Backbone, strategy, accuracy (or state), start time, and the run's label when it has one
    (``corrected``, ``scratch``, or a name the user gave it, which then comes first)."""
    match = _STAMPED.match(run.name)
    if match is not None and _started(match) is None:
        match = None  # a user's name that only looks like a time stamp ("12345678-999999") leads as it is
    parts: list[str] = [] if match else [run.name]  # renamed by the user: their name leads
    label = ""
    try:
        config = run.read_config()
        parts += [short_backbone(config.backbone), config.strategy.value]
        label = re.sub(r"-\d+$", "", match.group(3) or "") if match else ""
        # The name RunStore.new_run gives a run by default says nothing new.
        label = label.removeprefix(f"{config.backbone}-{config.strategy.value}").lstrip("-")
    except WarmstartError:
        parts.append("unreadable settings")
    accuracy = run.final_accuracy()
    if accuracy is not None:
        parts.append(f"{accuracy * 100:.1f} %")
    status = run.status()
    if status != "finished":
        parts.append(_STATUS_WORDS.get(status, status))
    if match is not None:
        parts.append(time.strftime("%b %d %H:%M", _started(match)))
    if label:
        parts.append(label)
    return " · ".join(parts)


def _started(match: re.Match[str]) -> time.struct_time | None:
    try:
        return time.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        return None
