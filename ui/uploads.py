"""Save browser uploads into the workspace (never modifying what the user sent).

Each upload is staged in a folder of its own (``uploads/<kind>-<random>``) under the user's
root, so files keep the names the user gave them; once the dataset reads correctly the whole
folder moves into its project, and a failed one is removed (it never replaces working data).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from transfer_core import IMAGE_EXTENSIONS, WarmstartError, extract_zip, input_limits

__all__ = ["discard", "new_upload_folder", "safe_name", "save_files", "save_pool_files", "save_zip"]


def safe_name(name: str) -> str:
    """A file or folder name without path separators or leading dots (unicode is kept)."""
    name = Path(name.replace("\\", "/")).name
    name = re.sub(r"[\x00-\x1f/]", "_", name).strip().lstrip(".")
    return name or "unnamed"


def new_upload_folder(root: Path, kind: str) -> Path:
    folder = root / "uploads" / f"{kind}-{uuid.uuid4().hex[:10]}"
    folder.mkdir(parents=True)
    return folder


def save_zip(root: Path, name: str, data: bytes) -> Path:
    """Stage an uploaded zip, under the name it was uploaded with, in a new upload folder.

    Raises:
        WarmstartError: naming the file, when it is above the configured upload limit.
    """
    input_limits().check_upload(name, len(data))
    target = new_upload_folder(root, "zip") / safe_name(name)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.rename(target)
    return target


def discard(folder: Path) -> None:
    """Remove a staged upload that did not make a usable dataset."""
    shutil.rmtree(folder, ignore_errors=True)


def save_files(folder: Path, files: Iterable[tuple[str, bytes]]) -> tuple[int, list[str]]:
    """Write uploaded image files into ``folder``.

    Returns:
        (files saved, one sentence per refused file: not an image type, or above the upload limit).
    """
    folder.mkdir(parents=True, exist_ok=True)
    limits = input_limits()
    saved, refused = 0, []
    for name, data in files:
        clean = safe_name(name)
        if Path(clean).suffix.lower() not in IMAGE_EXTENSIONS:
            refused.append(f"'{name}' is not an image type ({Path(clean).suffix or 'no extension'}).")
            continue
        try:
            limits.check_upload(name, len(data))
        except WarmstartError as exc:
            refused.append(str(exc))
            continue
        target = folder / clean
        stem, suffix, n = target.stem, target.suffix, 1
        while target.exists():
            target = folder / f"{stem}-{n}{suffix}"
            n += 1
        target.write_bytes(data)
        saved += 1
    return saved, refused


def save_pool_files(folder: Path, files: Iterable[tuple[str, bytes]]) -> tuple[int, list[str]]:
    """Add uploaded images, and the images inside uploaded zips, to the unlabelled pool ``folder``.

    A zip is extracted with the engine's safe extraction (no path escapes, no bombs) and its images
    land in a sub-folder named after it; images already in the pool are never overwritten, and a
    file already there with the same name and bytes is not added twice.

    Returns:
        (images added, one sentence per refused file or zip entry).
    """
    folder.mkdir(parents=True, exist_ok=True)
    images, refused = [], []
    added = 0
    for name, data in files:
        if Path(name).suffix.lower() != ".zip":
            images.append((name, data))
            continue
        try:
            input_limits().check_upload(name, len(data))
            staged = folder.parent / f".{uuid.uuid4().hex[:10]}.zip"
            staged.write_bytes(data)
            try:
                top, skipped = extract_zip(staged, folder.parent / ".extract")
            finally:
                staged.unlink(missing_ok=True)
        except WarmstartError as exc:
            refused.append(str(exc))
            continue
        refused += [f"'{name}': {s.path}: {s.reason}" for s in skipped]
        inside = [(p.relative_to(top).as_posix().replace("/", "_"), p.read_bytes()) for p in sorted(top.rglob("*")) if p.is_file()]
        count, why = save_files(folder / safe_name(Path(name).stem), _new_to(folder / safe_name(Path(name).stem), inside))
        shutil.rmtree(top, ignore_errors=True)
        added += count
        refused += why
    count, why = save_files(folder, _new_to(folder, images))
    return added + count, refused + why


def _new_to(folder: Path, files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The files not already in ``folder`` under their name with the same bytes: uploading a batch twice adds nothing."""
    return [(name, data) for name, data in files
            if not ((folder / safe_name(name)).is_file() and (folder / safe_name(name)).read_bytes() == data)]
