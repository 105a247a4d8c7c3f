"""The labelling grid of a proposed batch: the next image large with a button (and key) per class,
skip and undo, and every image of the batch with its label, changeable with one click.

Each click writes the pool's labels file at once (atomically), so nothing is lost on a refresh.
Keys: 1–9 choose the first nine classes (or, when every class is one letter or digit, that letter or
digit), S skips ("not any class"), U undoes the last label.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from transfer_core import POOL_SKIP, PoolLabels, Suggestion, WarmstartError

from . import state
from .thumbnails import square_thumbnail, thumbnail
from .wording import short_file_name

__all__ = ["SKIP_TEXT", "class_keys", "render"]

SKIP_TEXT = "Skip: not any class"
GRID_COLUMNS = 4


def class_keys(classes: list[str]) -> list[str | None]:
    """The key that gives each class: the class's own name when every name is one letter or digit
    (digits: press 3 for "3"), else 1–9 for the first nine classes. C and R are Streamlit's, S and U ours."""
    own = [c.upper() for c in classes]
    if all(len(c) == 1 and c.isalnum() and c.isascii() for c in own) and len(set(own)) == len(own) and not set(own) & set("CRSU"):
        return list(classes)
    return [str(i + 1) if i < 9 else None for i in range(len(classes))]


def _key(path: str) -> str:
    return f"pool_pick_{hashlib.sha256(path.encode()).hexdigest()[:16]}"


_WRITING = threading.Lock()  # every session of this server labels through here: two tabs never overwrite each other's click


def _change(labels_file: Path, action) -> None:
    """Load the labels, apply ``action(labels)``, save; a failure is shown once, after the rerun."""
    try:
        with _WRITING:
            labels = PoolLabels.load(labels_file)
            action(labels)
            labels.save(labels_file)
    except WarmstartError as exc:
        state.pool_error.set(str(exc))


def _give(labels_file: Path, path: str, label: str) -> None:
    _change(labels_file, lambda labels: labels.set(path, label))


def _give_next(labels_file: Path, batch: tuple[str, ...], label: str) -> None:
    """on_click of a class or skip button: ``label`` goes to the batch's first image without one *now*.

    A key pressed while the page still redraws after the previous label runs the callback with the
    arguments of the run before, so the arguments name the batch, never the image shown: naming the image
    would overwrite the label just given."""
    def label_next(labels: PoolLabels) -> None:
        if pending := _unlabelled(batch, labels):
            labels.set(pending[0], label)
    _change(labels_file, label_next)


def _unlabelled(paths: Sequence[str], labels: PoolLabels) -> list[str]:
    """The images of ``paths`` without a label (or skip), in order: the first is the one shown and labelled next."""
    return [p for p in paths if p not in labels.labels]


def _undo(labels_file: Path) -> None:
    _change(labels_file, lambda labels: labels.undo())


def _picked(labels_file: Path, path: str) -> None:
    """on_change of an image's class pills: a class, skip, or (clicked again) no label."""
    value = st.session_state[_key(path)]
    if value is None:
        _change(labels_file, lambda labels: labels.remove(path))
    else:
        _give(labels_file, path, POOL_SKIP if value == SKIP_TEXT else value)


def render(batch: Suggestion, labels: PoolLabels, classes: list[str], labels_file: Path) -> None:
    """Progress through ``batch``, the next image with its class buttons, undo, and the whole batch's grid."""
    if error := state.pool_error.take():
        st.error(error)
    if not batch.paths:
        st.info("Every proposed image has left the pool; suggest a new batch.")
        return
    pending = _unlabelled(batch.paths, labels)
    done = len(batch.paths) - len(pending)
    st.progress(done / len(batch.paths), text=f"{done} of {len(batch.paths)} images of this batch labelled")
    if pending:
        _next_image(pending[0], tuple(batch.paths), classes, labels_file, len(batch.paths) - len(pending) + 1)
    else:
        st.success("This batch is labelled. Retrain below, or suggest the next batch.")
    if labels.history:
        st.button("Undo the last label (U)", key="pool_undo", shortcut="U", on_click=_undo, args=(labels_file,))
    _grid(batch.paths, labels, classes, labels_file, pending[0] if pending else None)


def _next_image(path: str, batch: tuple[str, ...], classes: list[str], labels_file: Path, number: int) -> None:
    """The next unlabelled image, large, with one button per class (keys 1–9) and skip (S)."""
    picture, choices = st.columns([2, 3])
    thumb = thumbnail(path, 420)
    if thumb is not None:
        picture.image(thumb, caption=f"Image {number} of {len(batch)}: {short_file_name(Path(path).name, 40)}", width="stretch")
    else:
        picture.warning(f"{Path(path).name} cannot be read any more; skip it.")
    with choices:
        st.markdown("**Which class is this?**")
        keys = class_keys(classes)
        st.caption("Click a class, or press the key shown before it. S skips an image that belongs to no class.")
        for i, (name, key) in enumerate(zip(classes, keys)):
            st.button(f"{key} · {name}" if key and key != name else name, key=f"pool_give_{i}", shortcut=key, width="stretch",
                      on_click=_give_next, args=(labels_file, batch, name))
        st.button("S · Skip: not any class", key="pool_skip", shortcut="S", width="stretch",
                  on_click=_give_next, args=(labels_file, batch, POOL_SKIP))


def _grid(paths: list[str], labels: PoolLabels, classes: list[str], labels_file: Path, next_path: str | None) -> None:
    """Every image of the batch with its label; one click gives or changes it, a second click on the chosen class clears it."""
    with st.expander("The whole batch", expanded=True):
        columns = st.columns(GRID_COLUMNS)
        for i, path in enumerate(paths):
            label = labels.labels.get(path)
            st.session_state[_key(path)] = SKIP_TEXT if label == POOL_SKIP else label  # the file is the truth (undo, another tab)
            with columns[i % GRID_COLUMNS]:
                thumb = square_thumbnail(path, 240)  # square, so the rows of the grid line up
                name = short_file_name(Path(path).name, 28)
                if thumb is not None:
                    st.image(thumb, caption=f"{name} (next)" if path == next_path else name, width="stretch")
                st.pills("Class", [*classes, SKIP_TEXT], key=_key(path), on_change=_picked, args=(labels_file, path),
                         label_visibility="collapsed", wrap=True)
