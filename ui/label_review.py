"""The Data page's review list of doubtful labels: thumbnail, evidence, and the relabel / exclude box of each image.

Choices go through the same corrections file and label box as the Evaluate page's mistakes gallery
(:mod:`ui.gallery`), so a correction made here shows there, applies to the dataset at once, and the
next run (or "Retrain with these corrections") trains on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from transfer_core import Corrections, HealthReport, WarmstartError, label_error_evidence, mislabel_evidence

from . import gallery, state
from .thumbnails import thumbnail
from .wording import short_file_name

__all__ = ["PAGE_SIZE", "corrections_summary", "evidence", "render"]

PAGE_SIZE = 12


def evidence(item: dict) -> str:
    """What speaks against an entry's label: the held-out model's probabilities and the neighbour vote's evidence."""
    parts = []
    if item["label_probability"] is not None:
        parts.append(label_error_evidence(item))
    if item["neighbours"] is not None:
        parts.append(mislabel_evidence(item["neighbours"]))
    return " ".join(parts)


def _save(path: str, label: str, box: state.SessionValue[str]) -> None:
    """on_change of a label box: record the choice in the project's corrections file."""
    target = state.corrections_file()
    try:
        if target is None:
            raise WarmstartError("Open a project with a dataset before correcting labels.")
        fixes = Corrections.load(target)
        # A report made after an earlier correction shows the corrected label; the correction compares with the file's own.
        original = (state.original_label(path) or label) if path in fixes.relabel else label
        gallery.apply_label(fixes, path, box.get(), original)
        fixes.save(target)
    except WarmstartError as exc:
        state.fix_error.set(str(exc))


def render(report: HealthReport, classes: Sequence[str]) -> None:
    """The review list (a page of it at a time) with a label box per image."""
    listed = report.labels_to_check
    if report.labels_note:
        st.info(f"{report.labels_note} Until then only the neighbour vote judges the labels.")
    if listed:
        with st.expander(f"Labels to check, most doubtful first: {len(listed)}", expanded=True):
            st.caption("A model trained without each image (confident learning) or the image's nearest neighbours doubt "
                       "these labels; images both doubt come first. Keep the label, pick the right class, or leave the "
                       "image out of training.")
            pages = -(-len(listed) // PAGE_SIZE)
            page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="review_page") if pages > 1 else 1
            fixes = Corrections.load(state.corrections_file())
            for item in listed[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]:
                path, label = item["path"], item["label"]
                picture, words, choice = st.columns([1, 4, 2])
                thumb = thumbnail(path, 140)
                if thumb is not None:
                    picture.image(thumb, caption=short_file_name(Path(path).name, 24), width=120)
                words.markdown(f"Labelled **{label}** · suggested **{item['suggested']}**")
                words.caption(evidence(item))
                box = state.relabel_box(path)
                box.setdefault(gallery.current_label(fixes, path, label))
                choice.selectbox("Label", gallery.label_options(label, classes), key=box.key, label_visibility="collapsed",
                                 on_change=_save, args=(path, label, box), help="Relabel this image or leave it out of training.")
    if error := state.fix_error.take():
        st.error(error)


def corrections_summary() -> None:
    """How many corrections the project holds, and a retrain of the current recipe once a run exists."""
    target = state.corrections_file()
    fixes = Corrections.load(target)
    if not len(fixes):
        return
    st.info(f"{len(fixes.relabel)} relabelled and {len(fixes.exclude)} excluded image(s), kept with the project (your "
            "images are not changed); the counts and images above already use them, and so does the next training run.")
    if state.run_store().runs() and st.button("Retrain with these corrections", type="primary", key="retrain_from_data"):
        state.train_and_follow(state.config, label="corrected")
