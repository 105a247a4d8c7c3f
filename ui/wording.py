"""Plain words for what the engine records: durations, settings as a person would read them."""

from __future__ import annotations

from typing import Any

__all__ = ["duration_text", "setting_text"]


def duration_text(seconds: float) -> str:
    """'45 s' or '4 min 45 s'."""
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60} s"


def setting_text(name: str, value: Any) -> str:
    """A setting's value for a table: no 'None', numbers as typed (0.007, not 0.007000)."""
    if name == "lr" and value is None:
        return "automatic"
    if name == "image_size" and value is None:
        return "backbone default"
    if name == "image_size":
        return f"{value} px"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return "–" if value is None else str(getattr(value, "value", value))
