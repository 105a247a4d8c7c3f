"""Bad and unusual image files: each gets a one-sentence reason naming it, the rest stays usable.

One dataset is built holding every case next to valid images; the scan (header check) and the
training run (full decode) together must report each bad file by name and lose no good one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transfer_core import Trainer, TrainConfig, load_dataset
from transfer_core.data.images import ImageReadError, open_rgb
from transfer_core.training.events import CacheBuilt

from ..conftest import TINY, make_image
from . import builders

# name -> (builder, expected): "usable" with the size the model sees, or the reason's pattern.
CASES = {
    "corrupt.jpg": (builders.corrupt_jpeg, r"corrupt|truncated|not a readable image"),
    "truncated.jpg": (builders.truncated_jpeg, r"truncated|corrupt"),
    "truncated.png": (builders.truncated_png, r"truncated|corrupt"),
    "text.jpg": (lambda p: p.write_text("this is a shopping list, not a photo") or p, r"not a readable image"),
    "empty.png": (lambda p: p.write_bytes(b"") or p, r"empty file"),
    "zero.png": (lambda p: builders.png_with_header_only(p, 0, 0), r"not a readable image|no pixels"),
    "bomb.png": (lambda p: builders.png_with_header_only(p, 30_000, 30_000), r"limit of 64,000,000 pixels"),
    "over-limit.png": (lambda p: builders.png_with_header_only(p, 10_000, 10_000), r"10000x10000 .* above the limit"),
    "animated.gif": (builders.animated_gif, (40, 40)),
    "deep.png": (builders.sixteen_bit_png, (40, 40)),
    "cmyk.jpg": (builders.cmyk_jpeg, (40, 40)),
    "palette-alpha.png": (builders.palette_alpha_png, (40, 40)),
    "rotated.jpg": (builders.exif_rotated_jpeg, (30, 60)),
    "gray.png": (builders.grayscale_png, (40, 40)),
    "tiny 8x8.png": (builders.tiny_png, (8, 8)),
    "large.jpg": (builders.large_jpeg, (4000, 3000)),
    "notes.txt": (lambda p: p.write_text("hi") or p, r"not an image type \(\.txt\)"),
}
GOOD_PER_CLASS = 6


@pytest.fixture(scope="module")
def messy_dataset(tmp_path_factory) -> Path:
    """Two classes with unicode and spaces in their names, valid images, and every case in one of them."""
    root = tmp_path_factory.mktemp("messy")
    for c, (label, color) in enumerate({"café au lait": (160, 110, 60), "Zebra 斑马": (30, 30, 30)}.items()):
        folder = root / label
        folder.mkdir()
        for i in range(GOOD_PER_CLASS):
            make_image(color, seed=c * 100 + i).save(folder / f"photo {i} é.png")
    for name, (build, _) in CASES.items():
        build(root / "Zebra 斑马" / name)
    (root / "no images here").mkdir()
    (root / ".hidden").mkdir()
    make_image((1, 2, 3)).save(root / ".hidden" / "x.png")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._photo.png").write_bytes(b"\x00\x05\x16\x07")
    (root / "Zebra 斑马" / ".DS_Store").write_bytes(b"\x00")
    return root


def _decode_problems(paths: list[str]) -> dict[str, str]:
    problems = {}
    for path in paths:
        try:
            open_rgb(path)
        except ImageReadError as exc:
            problems[Path(path).name] = str(exc)
    return problems


def test_every_case_is_usable_or_named_with_its_reason(messy_dataset):
    index = load_dataset(messy_dataset)
    assert index.classes == ["Zebra 斑马", "café au lait"]
    skipped = {Path(s.path).name or s.path: s.reason for s in index.skipped}
    # Header problems are caught by the scan, data problems when the image is decoded.
    reasons = {**skipped, **_decode_problems([r.path for r in index.records])}
    for name, (_, expected) in CASES.items():
        if isinstance(expected, str):
            assert name in reasons, f"{name} was not reported"
            assert re.search(expected, reasons[name]), (name, reasons[name])
            assert reasons[name][0].islower() and "\n" not in reasons[name]  # one clause, reads after the name
        else:
            assert name not in reasons, (name, reasons.get(name))
            record = next(r for r in index.records if Path(r.path).name == name)
            image = open_rgb(record.path)
            assert image.mode == "RGB" and image.size == expected
    assert any("no images here" in s.path and "no usable images" in s.reason for s in index.skipped)
    assert not any("hidden" in s.path or "MACOSX" in s.path or "DS_Store" in s.path for s in index.skipped)
    good = [r for r in index.records if "photo" in Path(r.path).name]
    assert len(good) == 2 * GOOD_PER_CLASS  # nothing valid was lost


def test_training_on_the_messy_folder_skips_only_the_bad_files(messy_dataset, tmp_path):
    config = TrainConfig(data=str(messy_dataset), backbone=TINY, epochs=1, batch_size=8, lr=0.1, head_warmup_epochs=0)
    messages = []
    trainer = Trainer(config, tmp_path / "run", [messages.append])
    result = trainer.fit()
    assert result.status == "finished"
    usable = [n for n, (_, expected) in CASES.items() if not isinstance(expected, str)]
    report = result.report
    assert report["train_size"] + report["val_size"] == 2 * GOOD_PER_CLASS + len(usable)
    skipped = {Path(s["path"]).name for s in report["skipped"]}
    assert {n for n, (_, expected) in CASES.items() if isinstance(expected, str)} <= skipped
    decoded_note = next(e.message for e in messages if isinstance(e, CacheBuilt) and e.what == "images")
    assert "unreadable file(s)" in decoded_note and "corrupt.jpg" in decoded_note


def test_the_pixel_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    make_image((1, 2, 3), size=(100, 100)).save(path)
    monkeypatch.setenv("WARMSTART_MAX_IMAGE_PIXELS", "5000")
    with pytest.raises(ImageReadError, match=r"100x100 = 10,000 pixels, above the limit of 5,000 \(WARMSTART_MAX_IMAGE_PIXELS\)"):
        open_rgb(path)
    monkeypatch.setenv("WARMSTART_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(Exception, match="WARMSTART_MAX_IMAGE_PIXELS must be a positive number"):
        open_rgb(path)
