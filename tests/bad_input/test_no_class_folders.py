"""Images without class folders (a flat zip, one folder of photos): one sentence with the layout to use.

Users zip a folder of photos as it is; the extractor's own listing of skipped files must never be
taken for their CSV manifest, and the answer must say what layout Warmstart expects.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from transfer_core import WarmstartError, load_train_val

from . import builders

LAYOUT = "put each class's images in its own folder, e.g. cats/1.jpg, dogs/2.jpg (optionally inside train/ and val/)."
ONE_FOLDER = "all its images are in one folder, '{}/', and a classifier needs at least two classes; "


def _zip(tmp_path, name: str, folder: str):
    entries = {f"{folder}{i}.jpg": builders.jpeg_bytes(color=(40 * i, 90, 30)) for i in range(4)}
    return builders.zip_of(tmp_path / name, entries)


# zip name, folder of its images, what the message says between the name and the layout
CASES = {
    "flat": ("flat.zip", "", ""),
    "one-folder": ("photos.zip", "photos/", ONE_FOLDER.format("photos")),
    "one-class-wrapped": ("cats.zip", "set/cats/", ONE_FOLDER.format("set/cats")),
}


@pytest.mark.parametrize("name, folder, middle", CASES.values(), ids=CASES.keys())
def test_a_zip_without_class_folders_says_which_layout_to_use(tmp_path, name, folder, middle):
    archive = _zip(tmp_path, name, folder)
    with pytest.raises(WarmstartError) as caught:
        load_train_val(archive, extract_dir=tmp_path / "x")
    message = str(caught.value)
    assert message == f"No class folders found in '{name}': {middle}{LAYOUT}"
    assert ".skipped.csv" not in message and str(tmp_path / "x") not in message


def test_a_folder_of_loose_images_says_which_layout_to_use(tmp_path):
    folder = tmp_path / "holiday"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(builders.jpeg_bytes(color=(40 * i, 90, 30)))
    with pytest.raises(WarmstartError, match="^No class folders found in '.*holiday': put each class's images"):
        load_train_val(folder)


def test_loose_images_in_a_split_part_name_that_part(tmp_path):
    entries = {f"{part}/{i}.jpg": builders.jpeg_bytes() for part in ("train", "val") for i in range(2)}
    archive = builders.zip_of(tmp_path / "split.zip", entries)
    with pytest.raises(WarmstartError) as caught:
        load_train_val(archive, extract_dir=tmp_path / "x")
    assert str(caught.value) == f"No class folders found in 'split.zip/train': {LAYOUT}"


def test_the_extractors_listing_is_never_a_manifest_but_a_users_csv_is(tmp_path):
    images = {f"{i}.jpg": builders.jpeg_bytes(color=(200 * (i % 2), 90, 30)) for i in range(6)}
    rows = "path,label\n" + "".join(f"{i}.jpg,{'ab'[i % 2]}\n" for i in range(6))
    archive = builders.zip_of(tmp_path / "listed.zip", {**images, "labels.csv": rows.encode(), "notes.txt": b"x"})
    train, val = load_train_val(archive, extract_dir=tmp_path / "x")
    assert train.source.endswith("labels.csv") and train.classes == ["a", "b"] and len(train) + len(val) == 6
    assert [s.path for s in train.skipped] == ["notes.txt"]  # the extractor's listing, read back as such


@pytest.mark.parametrize(
    "name, entries, sentence",
    [
        *[(name, [f"{folder}{i}.jpg" for i in range(3)], f"No class folders found in '{name}': {middle}{LAYOUT}") for name, folder, middle in CASES.values()],
        # One class in a train/val layout is already refused by the trainer in one sentence; kept so.
        ("one-class.zip", [f"{part}/cats/{i}.jpg" for part in ("train", "val") for i in range(2)],
         "Training needs at least two classes, but only 'cats' has images; add a folder for another class."),
    ],
    ids=[*CASES, "one-class-split"],
)
def test_cli_train_prints_the_sentence_and_exits_2(tmp_path, name, entries, sentence):
    archive = builders.zip_of(tmp_path / name, {entry: builders.jpeg_bytes() for entry in entries})
    argv = [sys.executable, "-m", "transfer_core", "train", str(archive), "--out", str(tmp_path / "run")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: {sentence}"
