"""What every seed-averaged benchmark prints: a mean and its spread over the seeds."""

from __future__ import annotations

import statistics

__all__ = ["mean_sd"]


def mean_sd(values: list[float], fmt: str = ".2f", scale: float = 1.0) -> str:
    """``"mean ± sample standard deviation"`` of ``values`` times ``scale`` (one value: ± 0)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.mean(values) * scale, fmt)} ± {format(sd * scale, fmt)}"
