"""Find and validate labeled images in a folder, a zip or a CSV manifest.

A dataset arrives as a folder of ``class/image`` sub-folders (optionally split into ``train/``
and ``val/``), a ``.zip`` of the same, or a CSV manifest of ``path,label`` rows. Each image is
header-checked here, once, so later steps can trust every record they are given.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import WarmstartError
from .archives import extract_zip
from .images import IMAGE_EXTENSIONS, ImageReadError, read_image_size
from .records import DatasetIndex, ImageRecord, SkippedFile, is_ignored_name

__all__ = ["dataset_root", "load_dataset", "load_source", "scan_csv", "scan_folder"]

_VAL_FOLDER_NAMES = ("val", "valid", "validation", "test")


def _check_image(path: Path, shown_as: str, skipped: list[SkippedFile]) -> bool:
    """Header-check one file; record why it is skipped if it is not a usable image."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        skipped.append(SkippedFile(shown_as, f"not an image type ({path.suffix or 'no extension'})"))
        return False
    if path.is_symlink():
        skipped.append(SkippedFile(shown_as, "symbolic links are not followed"))
        return False
    try:
        if path.stat().st_size == 0:
            skipped.append(SkippedFile(shown_as, "empty file"))
            return False
        read_image_size(path)
    except ImageReadError as exc:
        skipped.append(SkippedFile(shown_as, str(exc)))
        return False
    return True


def scan_folder(root: str | Path) -> DatasetIndex:
    """Index ``root/<class>/**/<image>``; each sub-folder of ``root`` is one class.

    Raises:
        WarmstartError: if ``root`` does not exist or holds no class folder with an image.
    """
    root = Path(root)
    if not root.is_dir():
        raise WarmstartError(f"Dataset folder '{root}' does not exist.")
    records: list[ImageRecord] = []
    skipped: list[SkippedFile] = []
    for entry in sorted(root.iterdir()):
        if is_ignored_name(entry.name):
            continue
        if entry.is_file():
            skipped.append(SkippedFile(entry.name, "file is not inside a class folder"))
            continue
        if not entry.is_dir() or entry.is_symlink():
            continue
        label = entry.name.strip()
        before = len(records)
        for dirpath, dirnames, filenames in os.walk(entry):
            dirnames[:] = sorted(d for d in dirnames if not is_ignored_name(d))
            for name in sorted(filenames):
                if is_ignored_name(name):
                    continue
                path = Path(dirpath) / name
                shown_as = path.relative_to(root).as_posix()
                if _check_image(path, shown_as, skipped):
                    records.append(ImageRecord(str(path), label))
        if len(records) == before:
            skipped.append(SkippedFile(entry.name + "/", "class folder contains no usable images"))
    if not records:
        raise WarmstartError(
            f"No images found in '{root}'. Expected one folder of images per class, e.g. {root}/cat/1.jpg."
        )
    return DatasetIndex(records, skipped, str(root))


def scan_csv(manifest: str | Path) -> DatasetIndex:
    """Index a CSV manifest with ``path`` and ``label`` columns; paths are relative to the CSV."""
    manifest = Path(manifest)
    base = manifest.parent
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            if "path" not in columns or "label" not in columns:
                raise WarmstartError(
                    f"CSV manifest '{manifest.name}' needs the columns 'path' and 'label'; "
                    f"it has: {', '.join(columns) or 'none'}."
                )
            rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
            unused = [c for c in columns if c and c not in ("path", "label")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WarmstartError(f"Cannot read CSV manifest '{manifest}': {exc}.") from None
    records: list[ImageRecord] = []
    skipped: list[SkippedFile] = []
    for line, row in enumerate(rows, start=2):
        rel, label = row.get("path", ""), row.get("label", "")
        if not rel or not label:
            skipped.append(SkippedFile(f"{manifest.name}:{line}", "row has an empty path or label"))
            continue
        path = (base / rel).resolve()
        if not path.is_relative_to(base.resolve()):
            skipped.append(SkippedFile(rel, "path points outside the manifest's folder"))
            continue
        if not path.exists():
            skipped.append(SkippedFile(rel, "file listed in the manifest does not exist"))
            continue
        if _check_image(path, rel, skipped):
            records.append(ImageRecord(str(path), label))
    if not records:
        raise WarmstartError(f"CSV manifest '{manifest.name}' lists no usable images.")
    notes = [f"CSV manifest '{manifest.name}' has columns Warmstart does not use (ignored): {', '.join(unused)}."] if unused else []
    return DatasetIndex(records, skipped, str(manifest), notes)


def dataset_root(folder: Path) -> Path:
    """Descend through single wrapper folders (``flowers.zip`` → ``flowers/daisy/...``)."""
    while True:
        children = [c for c in folder.iterdir() if not is_ignored_name(c.name)]
        dirs = [c for c in children if c.is_dir()]
        files = [c for c in children if c.is_file()]
        if len(dirs) == 1 and not files:
            folder = dirs[0]
        else:
            return folder


def _split_layout(folder: Path) -> tuple[Path, Path] | None:
    """Recognise ``train/`` + ``val/`` (or valid/validation/test) sub-folders."""
    train = folder / "train"
    if not train.is_dir():
        return None
    for name in _VAL_FOLDER_NAMES:
        if (folder / name).is_dir():
            return train, folder / name
    return None


def load_dataset(source: str | Path, extract_dir: str | Path | None = None) -> DatasetIndex:
    """Index a folder, a zip or a CSV manifest (see :func:`load_train_val` for split layouts)."""
    train, _ = load_source(source, extract_dir)
    return train


def load_source(source: str | Path, extract_dir: str | Path | None = None) -> tuple[DatasetIndex, DatasetIndex | None]:
    """Index a folder, a zip or a CSV manifest, keeping a ``train/`` + ``val/`` layout's own split.

    Args:
        source: the dataset as given by the user.
        extract_dir: where a zip is extracted; by default the workspace's one extraction folder.

    Returns:
        The index of the images (the ``train/`` part for a split layout), and the ``val/``
        part's index or None when the source has no split of its own.

    Raises:
        WarmstartError: naming ``source`` when it does not exist, is of an unknown kind, holds no
            images, or holds images without class folders (the message shows the layout to use).
    """
    path = Path(source)
    if not path.exists():
        raise WarmstartError(f"Dataset '{source}' does not exist; give a folder, a .zip or a .csv manifest.")
    skipped: list[SkippedFile] = []
    top, name = path, str(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        top, skipped = extract_zip(path, extract_dir)
        name = path.name
        children = [c for c in top.iterdir() if not is_ignored_name(c.name)]  # the extractor's listing is hidden
        csvs = [c for c in children if c.suffix.lower() == ".csv"]
        if len(csvs) == 1 and not any(c.is_dir() for c in children):
            index = scan_csv(csvs[0])
            index.skipped[:0] = skipped
            return index, None
        path = dataset_root(top)
    elif path.is_file() and path.suffix.lower() == ".csv":
        return scan_csv(path), None
    elif path.is_file():
        raise WarmstartError(f"'{path.name}' is neither a folder, a .zip nor a .csv manifest.")
    layout = _split_layout(path)
    if layout:
        for part in layout:
            _require_class_folders(part, f"{name}/{part.relative_to(top).as_posix()}")
        train, val = scan_folder(layout[0]), scan_folder(layout[1])
        train.skipped[:0] = skipped
        return train, val
    _require_class_folders(path, name, path.relative_to(top).as_posix() if path != top else "")
    index = scan_folder(path)
    index.skipped[:0] = skipped
    return index, None


def _require_class_folders(folder: Path, shown: str, wrapper: str = "") -> None:
    """Refuse loose images with no sub-folder (a zipped folder of photos) by showing the layout to use.

    ``shown`` is the dataset as the user named it; ``wrapper`` the single folder a zip's images
    were found in, which may be the user's only class.
    """
    children = [c for c in folder.iterdir() if not is_ignored_name(c.name)]
    if any(c.is_dir() for c in children) or not any(c.suffix.lower() in IMAGE_EXTENSIONS for c in children):
        return  # class folders to scan, or no images at all: scan_folder says which
    one_folder = f"all its images are in one folder, '{wrapper}/', and a classifier needs at least two classes; " if wrapper else ""
    raise WarmstartError(
        f"No class folders found in '{shown}': {one_folder}put each class's images in its own folder, "
        "e.g. cats/1.jpg, dogs/2.jpg (optionally inside train/ and val/)."
    )
