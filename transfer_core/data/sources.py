"""Find and validate labeled images in a folder, a zip or a CSV manifest.

A dataset arrives as a folder of ``class/image`` sub-folders (optionally split into ``train/``
and ``val/``), a ``.zip`` of the same, or a CSV manifest of ``path,label`` rows. Each image is
header-checked here, once, so later steps can trust every record they are given.
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from ..errors import WarmstartError
from ..limits import input_limits
from ..reporting import OnProgress, phase
from .archives import extract_zip
from .index_cache import FileVerdicts
from .images import IMAGE_EXTENSIONS, ImageReadError, read_image_size
from .records import DatasetIndex, ImageRecord, SkippedFile, is_ignored_name

__all__ = ["dataset_root", "load_dataset", "load_source", "scan_csv", "scan_folder", "unusable_reasons"]

_VAL_FOLDER_NAMES = ("val", "valid", "validation", "test")


def _known_verdict(path: str, key: str, verdicts: FileVerdicts) -> str | os.stat_result:
    """Why ``path`` is not a usable image ("" when it is) as far as its name, its ``lstat`` and the
    stored verdicts tell; the stat result when only its header can tell (a new or changed file)."""
    if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
        return f"not an image type ({os.path.splitext(path)[1] or 'no extension'})"
    try:
        info = os.lstat(path)
    except OSError:
        return "file cannot be read (it vanished or access is denied)"
    if stat.S_ISLNK(info.st_mode):
        return "symbolic links are not followed"
    if info.st_size == 0:
        return "empty file"
    known = verdicts.get(key, info.st_size, info.st_mtime_ns)
    return info if known is None else known


def _header_verdict(path: str, key: str, info: os.stat_result, verdicts: FileVerdicts) -> str:
    """Read the header of a new or changed file and remember the verdict."""
    try:
        read_image_size(path)
        reason = ""
    except ImageReadError as exc:
        reason = str(exc)
    verdicts.put(key, info.st_size, info.st_mtime_ns, reason)
    return reason


def _verdicts_of(files: Sequence[tuple[str, str]], verdicts: FileVerdicts, on_progress: OnProgress | None) -> list[str]:
    """Why each ``(path, key)`` is not a usable image ("" when it is), with progress ("checking image files").

    Files whose size and time match a stored verdict are settled here, one ``lstat`` each (a re-scan of
    50,000 unchanged files takes about a second); only new or changed files have their header read,
    by a few threads, since opening files waits on the disk and releases the GIL.
    """
    told = phase(on_progress, len(files), "checking image files")
    reasons: list[str | os.stat_result] = [_known_verdict(path, key, verdicts) for path, key in files]
    unread = [i for i, reason in enumerate(reasons) if isinstance(reason, os.stat_result)]
    done = len(files) - len(unread)
    told(done)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for i, reason in zip(unread, pool.map(lambda i: _header_verdict(*files[i], reasons[i], verdicts), unread)):
            reasons[i] = reason
            done += 1
            told(done)
    verdicts.save()
    return reasons  # type: ignore[return-value]  (every stat result was replaced by a verdict)


def _rules() -> str:
    """What a verdict depends on besides the file itself: the pixel limit."""
    return f"max_pixels={input_limits().max_image_pixels}"


def unusable_reasons(files: Sequence[tuple[str, str]], cache_key: str | Path, on_progress: OnProgress | None = None) -> list[str]:
    """Why each ``(path, shown name)`` is not a usable image ("" when it is): header checks, remembered
    per file under ``cache_key`` (the folder, zip or manifest the files came from) until the file changes."""
    return _verdicts_of(files, FileVerdicts(cache_key, _rules()), on_progress)


class _ClassFiles(NamedTuple):
    """One class folder's files: positions ``start:stop`` of the scan's file list."""

    label: str
    folder: str
    start: int
    stop: int


def scan_folder(root: str | Path, on_progress: OnProgress | None = None) -> DatasetIndex:
    """Index ``root/<class>/**/<image>``; each sub-folder of ``root`` is one class.

    Each file's header is checked once; a later scan reuses the verdict of every file whose size
    and modification time are unchanged (see :mod:`transfer_core.data.index_cache`).

    Args:
        on_progress: ``(done, total, what)`` (see :mod:`transfer_core.reporting`): files checked.

    Raises:
        WarmstartError: if ``root`` does not exist or holds no class folder with an image.
    """
    root = Path(root)
    if not root.is_dir():
        raise WarmstartError(f"Dataset folder '{root}' does not exist.")
    # List first (cheap), check after (the slow part, with progress), then assemble in listing order.
    plan: list[SkippedFile | _ClassFiles] = []
    files: list[tuple[Path, str]] = []
    for entry in sorted(root.iterdir()):
        if is_ignored_name(entry.name):
            continue
        if entry.is_file():
            plan.append(SkippedFile(entry.name, "file is not inside a class folder"))
            continue
        if not entry.is_dir() or entry.is_symlink():
            continue
        start = len(files)
        for dirpath, dirnames, filenames in os.walk(entry):
            dirnames[:] = sorted(d for d in dirnames if not is_ignored_name(d))
            shown = os.path.relpath(dirpath, root).replace(os.sep, "/")  # once per folder: relpath is slow
            for name in sorted(filenames):
                if not is_ignored_name(name):  # strings: Path objects cost seconds at 50,000 files
                    files.append((os.path.join(dirpath, name), f"{shown}/{name}"))
        plan.append(_ClassFiles(entry.name.strip(), entry.name, start, len(files)))
    reasons = unusable_reasons(files, root, on_progress)
    records: list[ImageRecord] = []
    skipped: list[SkippedFile] = []
    for step in plan:
        if isinstance(step, SkippedFile):
            skipped.append(step)
            continue
        before = len(records)
        for (path, shown_as), reason in zip(files[step.start:step.stop], reasons[step.start:step.stop]):
            if reason:
                skipped.append(SkippedFile(shown_as, reason))
            else:
                records.append(ImageRecord(str(path), step.label))
        if len(records) == before:
            skipped.append(SkippedFile(step.folder + "/", "class folder contains no usable images"))
    if not records:
        raise WarmstartError(
            f"No images found in '{root}'. Expected one folder of images per class, e.g. {root}/cat/1.jpg."
        )
    return DatasetIndex(records, skipped, str(root))


def scan_csv(manifest: str | Path, on_progress: OnProgress | None = None) -> DatasetIndex:
    """Index a CSV manifest with ``path`` and ``label`` columns; paths are relative to the CSV.

    Files are checked as in :func:`scan_folder` (verdicts reused, ``on_progress`` told of files checked).
    """
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
    plan: list[SkippedFile | tuple[Path, str, str]] = []  # a skipped row, or (file, as listed, label) to check
    for line, row in enumerate(rows, start=2):
        rel, label = row.get("path", ""), row.get("label", "")
        if not rel or not label:
            plan.append(SkippedFile(f"{manifest.name}:{line}", "row has an empty path or label"))
            continue
        path = (base / rel).resolve()
        if not path.is_relative_to(base.resolve()):
            plan.append(SkippedFile(rel, "path points outside the manifest's folder"))
            continue
        if not path.exists():
            plan.append(SkippedFile(rel, "file listed in the manifest does not exist"))
            continue
        plan.append((path, rel, label))
    listed = [step for step in plan if not isinstance(step, SkippedFile)]
    reasons = iter(unusable_reasons([(str(path), str(path)) for path, _, _ in listed], manifest, on_progress))
    records: list[ImageRecord] = []
    skipped: list[SkippedFile] = []
    for step in plan:
        if isinstance(step, SkippedFile):
            skipped.append(step)
        elif reason := next(reasons):
            skipped.append(SkippedFile(step[1], reason))
        else:
            records.append(ImageRecord(str(step[0]), step[2]))
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


def load_dataset(source: str | Path, extract_dir: str | Path | None = None, on_progress: OnProgress | None = None) -> DatasetIndex:
    """Index a folder, a zip or a CSV manifest (see :func:`load_train_val` for split layouts)."""
    train, _ = load_source(source, extract_dir, on_progress)
    return train


def load_source(
    source: str | Path, extract_dir: str | Path | None = None, on_progress: OnProgress | None = None
) -> tuple[DatasetIndex, DatasetIndex | None]:
    """Index a folder, a zip or a CSV manifest, keeping a ``train/`` + ``val/`` layout's own split.

    Args:
        source: the dataset as given by the user.
        extract_dir: where a zip is extracted; by default the workspace's one extraction folder.
        on_progress: ``(done, total, what)``: files checked (see :func:`scan_folder`).

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
            index = scan_csv(csvs[0], on_progress)
            index.skipped[:0] = skipped
            return index, None
        path = dataset_root(top)
    elif path.is_file() and path.suffix.lower() == ".csv":
        return scan_csv(path, on_progress), None
    elif path.is_file():
        raise WarmstartError(f"'{path.name}' is neither a folder, a .zip nor a .csv manifest.")
    layout = _split_layout(path)
    if layout:
        for part in layout:
            _require_class_folders(part, f"{name}/{part.relative_to(top).as_posix()}")
        train, val = scan_folder(layout[0], on_progress), scan_folder(layout[1], on_progress)
        train.skipped[:0] = skipped
        return train, val
    _require_class_folders(path, name, path.relative_to(top).as_posix() if path != top else "")
    index = scan_folder(path, on_progress)
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
