"""Extract uploaded zips safely, once, into the workspace.

An archive is untrusted input: unsafe paths, links, nested archives and zip bombs are refused
or skipped and reported. Its folder is named by its content, so a re-upload reuses it and
every part of Warmstart sees its images under one path.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import WarmstartError
from ..limits import InputLimits, input_limits
from ..workspace import extraction_dir
from .images import IMAGE_EXTENSIONS
from .records import SkippedFile, is_ignored_name

__all__ = ["extract_zip"]

# The extractor's record of skipped entries, kept beside the files so a re-upload reports them too.
# A dot name, so every source treats it like any hidden file: never a user's image or CSV manifest.
_SKIPPED_LISTING = ".skipped.csv"


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
        (staging / _SKIPPED_LISTING).write_text(
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
    listing = folder / _SKIPPED_LISTING
    if not listing.exists():
        return []
    lines = listing.read_text(encoding="utf-8").splitlines()
    return [SkippedFile(*line.split("\t", 1)) for line in lines if "\t" in line]
