"""A Markdown model card for an exported run: data, recipe, metrics, confusion matrix, weaknesses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..insight.calibration import calibration_sentence
from ..insight.evaluate import report_intervals, small_sample_warning

__all__ = ["confusion_matrix_image", "most_confused_pairs", "write_model_card", "add_deployment_section"]


def most_confused_pairs(matrix: list[list[int]], classes: list[str], top: int = 3) -> list[tuple[str, str, int]]:
    """(true class, predicted class, count) for the largest off-diagonal cells."""
    cells = [(classes[i], classes[j], n) for i, row in enumerate(matrix) for j, n in enumerate(row) if i != j and n > 0]
    return sorted(cells, key=lambda cell: -cell[2])[:top]


def confusion_matrix_image(matrix: list[list[int]], classes: list[str], cell: int = 56) -> Image.Image:
    """The confusion matrix as a PNG-ready picture (rows: true class, columns: predicted)."""
    counts = np.asarray(matrix, dtype=float)
    rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    font = ImageFont.load_default()
    label_width = min(160, 8 + 7 * max(len(c) for c in classes))
    n = len(classes)
    image = Image.new("RGB", (label_width + n * cell + 10, label_width + n * cell + 30), "white")
    draw = ImageDraw.Draw(image)
    draw.text((label_width, 4), "predicted ->   (rows: true class)", fill="black", font=font)
    for i, name in enumerate(classes):
        draw.text((4, label_width + 20 + i * cell + cell // 2 - 6), name[:22], fill="black", font=font)
        column = Image.new("RGB", (label_width - 8, 14), "white")
        ImageDraw.Draw(column).text((0, 0), name[:22], fill="black", font=font)
        image.paste(column.rotate(90, expand=True), (label_width + i * cell + cell // 2 - 7, 18))
        for j in range(n):
            shade = int(255 - 200 * rows[i, j])
            colour = (shade, shade, 255) if i == j else (255, shade, shade)
            x, y = label_width + j * cell, label_width + 20 + i * cell
            draw.rectangle([x, y, x + cell - 2, y + cell - 2], fill=colour)
            draw.text((x + cell // 2 - 8, y + cell // 2 - 6), str(int(counts[i, j])), fill="black", font=font)
    return image


def _describe(key: str, value: Any) -> str:
    if key == "augment" and isinstance(value, dict):
        active = {k: v for k, v in value.items() if v not in (0, 0.0, 1.0, False) or (k == "crop_scale_min" and v < 1)}
        return ", ".join(f"{k} {v}" for k, v in active.items()) or "none"
    if key == "lr" and value is None:
        return "automatic (1e-2 frozen, 3e-3 fine-tuning)"
    return str(value)


def write_model_card(
    folder: Path, model_info: dict[str, Any], report: dict[str, Any], config: dict[str, Any], title: str
) -> Path:
    """Write ``MODEL_CARD.md`` and ``confusion_matrix.png`` into ``folder``."""
    classes = report["classes"]
    matrix = report["confusion_matrix"]
    confusion_matrix_image(matrix, classes).save(folder / "confusion_matrix.png")
    intervals = report_intervals(report)  # the numbers the Evaluate page shows
    acc_low, acc_high = intervals["val_accuracy"]
    f1_low, f1_high = intervals["macro_f1"]
    pre = model_info["preprocessing"]
    recipe_keys = ["backbone", "pretrained", "strategy", "trainable_blocks", "epochs", "batch_size", "lr", "optimizer",
                   "schedule", "weight_decay", "dropout", "label_smoothing", "augment", "seed"]
    lines = [
        f"# Model card: {title}",
        "",
        f"An image classifier for {len(classes)} classes, fine-tuned from **{model_info['backbone']}** with Warmstart.",
        "",
        "## Intended use",
        "Classifying images like those it was trained on. It knows only the classes below; an image of anything "
        "else still gets one of them, so check confidence before acting on a prediction.",
        "",
        "## Data",
        f"{report['train_size']} training and {report['val_size']} validation images.",
        "",
        "| class | validation images | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|",
        *[f"| {c['class']} | {c['support']} | {c['precision']:.2f} | {c['recall']:.2f} | {c['f1']:.2f} |" for c in report["per_class"]],
        "",
        "## Recipe",
        *[f"- **{k}**: {_describe(k, config.get(k))}" for k in recipe_keys if k in config],
        "",
        "## Input",
        f"RGB, resized ({pre.get('interpolation', 'bilinear')}) so the short side is "
        f"{round(pre['input_size'] / pre.get('crop_pct', 0.875))} px, centre-cropped to "
        f"{pre['input_size']}x{pre['input_size']}, scaled to [0, 1], normalised with mean {pre['mean']} and std {pre['std']}; "
        "NCHW float32. Output: class probabilities (softmax of the logits divided by `temperature` in `model.json`) "
        "in the order of `classes` in `model.json`.",
        "",
        "## Metrics (validation set)",
        f"- Accuracy: **{report['val_accuracy']:.1%}** (95 % Wilson interval {acc_low:.1%}–{acc_high:.1%})",
        f"- Macro-F1: **{report['macro_f1']:.3f}** (95 % bootstrap interval {f1_low:.3f}–{f1_high:.3f})",
        f"- Best epoch: {report.get('best_epoch')} of {report.get('epochs_run')}",
        *([f"- Calibration: {sentence}"] if (sentence := calibration_sentence(report.get("calibration"))) else []),
        "",
        "![Confusion matrix](confusion_matrix.png)",
        "",
        "## Known weaknesses",
    ]
    pairs = most_confused_pairs(matrix, classes)
    if pairs:
        lines += [f"- **{true}** is mistaken for **{pred}** ({n} validation image{'s' if n != 1 else ''})." for true, pred, n in pairs]
    else:
        lines.append("- No confusions on the validation set; with few images that says little about new data.")
    if warning := small_sample_warning(report, intervals):  # the warning the Evaluate page shows
        lines.append(f"- {warning}")
    (folder / "MODEL_CARD.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "MODEL_CARD.md"


DEPLOYMENT_HEADING = "## Deployment (measured when exported)"


def add_deployment_section(folder: str | Path, checks, costs) -> None:
    """Add (or replace) the card's deployment section: each file's check against the app, and its size
    and time per image on the exporting machine. Does nothing when the folder has no model card."""
    from .latency import cost_table
    from .verify import describe

    card = Path(folder) / "MODEL_CARD.md"
    if not card.exists():
        return
    head = card.read_text(encoding="utf-8").split(DEPLOYMENT_HEADING)[0].rstrip()
    lines = [DEPLOYMENT_HEADING, "", *(f"- {describe(check)}" for check in checks), ""]
    if costs:
        lines += ["Time per image on the machine that exported (CPU; ONNX files in ONNX Runtime, the others in PyTorch):", "",
                  cost_table(costs), ""]
    card.write_text(head + "\n\n" + "\n".join(lines), encoding="utf-8")
