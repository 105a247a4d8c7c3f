"""Plain words for what the engine records: durations, settings as a person would read them."""

from __future__ import annotations

from typing import Any

from transfer_core import AUTO_BACKBONE

__all__ = ["OPTIMIZER_WORDS", "SCHEDULE_WORDS", "ago_text", "duration_text", "recipe_text", "setting_text", "short_file_name"]

OPTIMIZER_WORDS = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD with momentum"}
SCHEDULE_WORDS = {
    "onecycle": "one-cycle (warms up, then decays)",
    "cosine": "cosine (decays smoothly)",
    "step": "step (drops every few epochs)",
    "constant": "constant",
}
_SCHEDULE_VERBS = {
    "onecycle": "warms up, then decays (one-cycle)",
    "cosine": "decays smoothly (cosine)",
    "step": "drops every few epochs (step)",
    "constant": "stays constant",
}


def duration_text(seconds: float) -> str:
    """'45 s' or '4 min 45 s'."""
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60} s"


def ago_text(seconds: float) -> str:
    """How long ago, as a list of projects says it: 'just now', '5 min ago', '3 h ago', '2 days ago'."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return "yesterday" if days == 1 else f"{days} days ago"


def size_text(megabytes: float) -> str:
    """'13.5 MB', '820 kB': a file size as people read it."""
    return f"{megabytes:.1f} MB" if megabytes >= 1 else f"{megabytes * 1000:.0f} kB"


def short_file_name(name: str, limit: int = 24) -> str:
    """A file name shortened in the middle, so its end and extension stay readable ('IMG_20…1234.jpg')."""
    if len(name) <= limit:
        return name
    keep_end = max(limit // 2, len(name.rsplit(".", 1)[-1]) + 5)
    return name[: max(1, limit - keep_end - 1)] + "…" + name[-keep_end:]


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


def _strategy_text(config) -> str:
    strategy = str(config.strategy)
    if strategy == "frozen":
        return "backbone frozen (only the new last layer learns)"
    if strategy == "partial":
        return f"the last {config.trainable_blocks} block{'s' if config.trainable_blocks != 1 else ''} of the backbone fine-tuned"
    if strategy == "gradual":
        return f"the backbone unfrozen one block every {config.unfreeze_every} epoch{'s' if config.unfreeze_every != 1 else ''}"
    return "every layer fine-tuned"


def recipe_text(config) -> str:
    """The recipe of a TrainConfig in one plain sentence, e.g. for the Train page."""
    augment = config.augment.preset_name
    augmentation = "no augmentation" if augment == "none" else f"{augment or 'custom'} augmentation"
    backbone = "the backbone a shoot-out on your training images picks" if config.backbone == AUTO_BACKBONE else config.backbone
    return (
        f"Recipe: {backbone}, {_strategy_text(config)}; {config.epochs} epochs of batches of {config.batch_size} "
        f"images, {augmentation}; {OPTIMIZER_WORDS.get(str(config.optimizer), str(config.optimizer))} optimizer with a "
        f"learning rate that {_SCHEDULE_VERBS.get(str(config.schedule), 'follows ' + str(config.schedule))}"
        + ("; the kept model is a moving average of the weights (EMA)." if config.ema_decay else ".")
    )
