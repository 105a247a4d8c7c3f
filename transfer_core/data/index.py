"""Find, validate and index labeled images; split them; summarise them.

A dataset arrives as a folder of ``class/image`` sub-folders, a ``.zip`` of the same, or a CSV
manifest of ``path,label`` rows. Whatever the form, the result is a :class:`DatasetIndex`:
a list of (file, label) records plus the files that were skipped and why, so that one bad
file never stops an upload and is never silently ignored either.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import shutil
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import WarmstartError
from .images import IMAGE_EXTENSIONS, ImageReadError, read_image_size
from ..limits import InputLimits, input_limits
from ..workspace import extraction_dir

__all__ = [
    "DatasetIndex",
    "DatasetSummary",
    "ImageRecord",
    "SkippedFile",
    "duplicate_groups",
    "dataset_root",
    "extract_zip",
    "load_dataset",
    "load_run_split",
    "load_train_val",
    "scan_csv",
    "scan_folder",
    "split_train_val",
    "summarize",
]

_IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
_VAL_FOLDER_NAMES = ("val", "valid", "validation", "test")


@dataclass(frozen=True)
class ImageRecord:
    path: str
    label: str


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class DatasetIndex:
    """Labeled image files found in one source, plus what was skipped and why."""

    records: list[ImageRecord]
    skipped: list[SkippedFile] = field(default_factory=list)
    source: str = ""
    notes: list[str] = field(default_factory=list)  # things the user should know that skipped no file

    @property
    def classes(self) -> list[str]:
        return sorted({record.label for record in self.records})

    def counts(self) -> dict[str, int]:
        counter = Counter(record.label for record in self.records)
        return {label: counter[label] for label in self.classes}

    def __len__(self) -> int:
        return len(self.records)


def is_ignored_name(part: str) -> bool:
    """Hidden files and OS debris (``__MACOSX``, ``Thumbs.db``): never user data."""
    return part.startswith(".") or part in _IGNORED_NAMES


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


def extract_zip(
    archive: str | Path, dest_root: str | Path | None = None, limits: InputLimits | None = None
) -> tuple[Path, list[SkippedFile]]:
    """Safely extract the image files of a zip into a folder keyed by the archive's content.

    ``dest_root`` defaults to the workspace's extraction folder (:func:`transfer_core.workspace.extraction_dir`),
    the one place every part of Warmstart looks, so a zip is extracted once and its files have one path.

    Absolute paths, ``..`` components, symlinks and nested archives are skipped and reported;
    archives above ``limits`` (default: the configured ones) are refused before anything is
    written, and extraction stops if the bytes actually written exceed the declared total.

    Returns:
        The extraction folder and the skipped entries.
    """
    archive = Path(archive)
    limits = limits or input_limits()
    digest = hashlib.sha256()
    try:
        with archive.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WarmstartError(f"'{archive.name}' is not a readable zip file ({exc}).") from None
    dest = Path(dest_root or extraction_dir()) / digest.hexdigest()[:16]
    skipped: list[SkippedFile] = []
    with zf:
        entries = [info for info in zf.infolist() if not info.is_dir()]
        if len(entries) > limits.max_archive_files:
            raise WarmstartError(
                f"'{archive.name}' holds {len(entries):,} files, above the limit of {limits.max_archive_files:,} "
                "(WARMSTART_MAX_ARCHIVE_FILES)."
            )
        total = sum(info.file_size for info in entries)
        if total > limits.max_archive_bytes:
            raise WarmstartError(
                f"'{archive.name}' would extract to {total / 1024**2:,.0f} MB, above the limit of "
                f"{limits.max_archive_bytes / 1024**2:,.0f} MB (WARMSTART_MAX_ARCHIVE_MB)."
            )
        if (dest / ".complete").exists():
            return dest, _read_skipped(dest)
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        written = 0
        for info in entries:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                skipped.append(SkippedFile(name, "unsafe path in archive (absolute or '..')"))
                continue
            if any(is_ignored_name(part) for part in parts):
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                skipped.append(SkippedFile(name, "symbolic links inside archives are not followed"))
                continue
            suffix = PurePosixPath(name).suffix.lower()
            if suffix == ".zip":
                skipped.append(SkippedFile(name, "nested archives are not extracted"))
                continue
            if suffix not in IMAGE_EXTENSIONS and suffix != ".csv":
                skipped.append(SkippedFile(name, f"not an image type ({suffix or 'no extension'})"))
                continue
            if info.compress_size and info.file_size / info.compress_size > limits.max_compression_ratio:
                skipped.append(SkippedFile(name, "compression ratio is suspiciously high (zip bomb?)"))
                continue
            target = staging.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                written += _copy_entry(zf, info, target, limits.max_archive_bytes - written)
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
                target.unlink(missing_ok=True)
                skipped.append(SkippedFile(name, f"damaged entry in the archive ({exc})"))
            except OverflowError:
                shutil.rmtree(staging, ignore_errors=True)
                raise WarmstartError(
                    f"'{archive.name}' extracts to more than its declared size and the limit of "
                    f"{limits.max_archive_bytes / 1024**2:,.0f} MB; refused (zip bomb?)."
                ) from None
        (staging / ".skipped.csv").write_text(
            "".join(f"{s.path}\t{s.reason}\n" for s in skipped), encoding="utf-8"
        )
        (staging / ".complete").touch()
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    return dest, skipped


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Copy one entry in chunks; OverflowError once more than ``budget`` bytes come out."""
    written = 0
    with zf.open(info) as src, target.open("wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            written += len(chunk)
            if written > budget:
                raise OverflowError
            out.write(chunk)
    return written


def _read_skipped(folder: Path) -> list[SkippedFile]:
    listing = folder / ".skipped.csv"
    if not listing.exists():
        return []
    lines = listing.read_text(encoding="utf-8").splitlines()
    return [SkippedFile(*line.split("\t", 1)) for line in lines if "\t" in line]


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
    train, _ = _load(source, extract_dir)
    return train


def _load(source: str | Path, extract_dir: str | Path | None) -> tuple[DatasetIndex, DatasetIndex | None]:
    path = Path(source)
    if not path.exists():
        raise WarmstartError(f"Dataset '{source}' does not exist; give a folder, a .zip or a .csv manifest.")
    skipped: list[SkippedFile] = []
    if path.is_file() and path.suffix.lower() == ".zip":
        path, skipped = extract_zip(path, extract_dir)
        csvs = [c for c in path.iterdir() if c.suffix.lower() == ".csv"]
        if len(csvs) == 1 and not any(c.is_dir() for c in path.iterdir() if not is_ignored_name(c.name)):
            index = scan_csv(csvs[0])
            index.skipped[:0] = skipped
            return index, None
        path = dataset_root(path)
    elif path.is_file() and path.suffix.lower() == ".csv":
        return scan_csv(path), None
    elif path.is_file():
        raise WarmstartError(f"'{path.name}' is neither a folder, a .zip nor a .csv manifest.")
    layout = _split_layout(path)
    if layout:
        train, val = scan_folder(layout[0]), scan_folder(layout[1])
        train.skipped[:0] = skipped
        return train, val
    index = scan_folder(path)
    index.skipped[:0] = skipped
    return index, None


def split_train_val(index: DatasetIndex, val_fraction: float, seed: int = 0) -> tuple[DatasetIndex, DatasetIndex]:
    """Stratified, seeded split: each class contributes ``val_fraction`` of its images to validation.

    Every class keeps at least one training image; classes with two or more images give at
    least one to validation, so every class is measured.
    """
    if not 0.0 < val_fraction < 1.0:
        raise WarmstartError(f"Validation fraction must be between 0 and 1, got {val_fraction}.")
    rng = random.Random(seed)
    train: list[ImageRecord] = []
    val: list[ImageRecord] = []
    for label in index.classes:
        members = [r for r in index.records if r.label == label]
        rng.shuffle(members)
        n_val = round(len(members) * val_fraction)
        n_val = min(max(n_val, 1 if len(members) >= 2 else 0), len(members) - 1)
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    train.sort(key=lambda r: (r.label, r.path))
    val.sort(key=lambda r: (r.label, r.path))
    return DatasetIndex(train, index.skipped, index.source, index.notes), DatasetIndex(val, [], index.source)


def load_run_split(config) -> tuple[DatasetIndex, DatasetIndex]:
    """The training and validation indexes a :class:`~transfer_core.config.TrainConfig` trains on
    (its data, validation data or split, seed and corrections), so every tool sees the run's own split."""
    return load_train_val(config.data, config.val_data, config.val_split, config.seed, corrections=config.corrections)


def load_train_val(
    source: str | Path,
    val_source: str | Path | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    extract_dir: str | Path | None = None,
    corrections: str | Path | None = None,
) -> tuple[DatasetIndex, DatasetIndex]:
    """Training and validation indexes from one source (split or ``train/``+``val/`` layout) or two.

    ``corrections`` names a corrections file (see :mod:`transfer_core.corrections`) applied
    before the split.

    Raises:
        WarmstartError: when validation has classes that training lacks, or nothing to validate on.
    """
    train, val = _load(source, extract_dir)
    if val_source is not None:
        val = load_dataset(val_source, extract_dir)
    if corrections is not None:
        from .corrections import Corrections  # corrections build on this module

        fixes = Corrections.load(corrections)
        train = fixes.apply(train)
        val = fixes.apply(val) if val is not None else None
    if val is None:
        train, val = split_train_val(train, val_fraction, seed)
    unknown = sorted(set(val.classes) - set(train.classes))
    if unknown:
        raise WarmstartError(
            f"Validation set has classes with no training images: {', '.join(unknown)}."
        )
    if len(val) == 0:
        raise WarmstartError("Every class has a single image, so nothing is left for validation; add images.")
    return train, val


@dataclass(frozen=True)
class DatasetSummary:
    counts: dict[str, int]
    total: int
    skipped: int
    warnings: list[str]


def duplicate_groups(records: list[ImageRecord]) -> list[list[ImageRecord]]:
    """Groups of byte-identical files (compared by size first, then by content hash)."""
    by_size: dict[int, list[ImageRecord]] = {}
    for record in records:
        try:
            by_size.setdefault(os.path.getsize(record.path), []).append(record)
        except OSError:
            continue
    groups: list[list[ImageRecord]] = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_hash: dict[str, list[ImageRecord]] = {}
        for record in same_size:
            with open(record.path, "rb") as handle:
                by_hash.setdefault(hashlib.file_digest(handle, "sha1").hexdigest(), []).append(record)
        groups.extend(group for group in by_hash.values() if len(group) > 1)
    return groups


def _duplicate_warnings(index: DatasetIndex) -> list[str]:
    groups = duplicate_groups(index.records)
    conflicting = [g for g in groups if len({r.label for r in g}) > 1]
    out = []
    if conflicting:
        first = conflicting[0]
        shown = " and ".join(f"'{Path(r.path).name}' ({r.label})" for r in first[:2])
        out.append(
            f"{len(conflicting)} image(s) appear as identical files in more than one class, e.g. {shown}; "
            "remove the wrong copy, or the model is taught two answers for one picture."
        )
    same_class = sum(len(g) - 1 for g in groups if len({r.label for r in g}) == 1)
    if same_class:
        out.append(f"{same_class} file(s) are exact copies of another image in the same class; they count twice in training.")
    return out


def summarize(index: DatasetIndex, min_per_class: int = 5, max_imbalance: float = 5.0) -> DatasetSummary:
    """Counts per class plus plain-language warnings about what will hurt training."""
    counts = index.counts()
    warnings: list[str] = list(index.notes)
    if len(counts) == 1:
        warnings.append(
            f"Only one class ('{next(iter(counts))}') was found; a classifier needs at least two."
        )
    small = [f"{label} ({n})" for label, n in counts.items() if n < min_per_class]
    if small:
        warnings.append(
            f"Classes with fewer than {min_per_class} images will be learned poorly: {', '.join(small)}."
        )
    if len(counts) >= 2:
        largest, smallest = max(counts.values()), min(counts.values())
        if smallest and largest / smallest > max_imbalance:
            warnings.append(
                f"Classes are imbalanced {largest / smallest:.0f}:1; consider class weights or a balanced sampler."
            )
    warnings += _duplicate_warnings(index)
    return DatasetSummary(counts, len(index), len(index.skipped), warnings)
