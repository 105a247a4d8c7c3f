"""The Evaluate page's test-time augmentation section: accuracy with and without, and what it changed.

Computing it is the user's choice (six forward passes per validation image), made with a button
and shown under a progress bar; the result is kept for the session per run and checkpoint
(:data:`ui.state.tta_comparison`), so it stays while the user looks around and never shows under
another run or a retrained one.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from transfer_core import TTA_VIEWS, RunDir, TTAChange, TTAComparison, WarmstartError, compare_tta
from ui import busy, insight, state
from ui.thumbnails import thumbnail

__all__ = ["show_tta", "tta_summary"]

SHOWN = 12  # tiles per gallery


def tta_summary(comparison: TTAComparison) -> str:
    """One plain sentence on what TTA did: net gain, and how many predictions it fixed and broke."""
    fixed, broken, moved = comparison.count("fixed"), comparison.count("broken"), comparison.count("still wrong")
    n = len(comparison.paths)
    if not (fixed or broken or moved):
        return f"Test-time augmentation changed no prediction on these {n:,} images."
    net = fixed - broken
    images = f"{abs(net)} image{'s' if abs(net) != 1 else ''}"
    verdict = f"a net gain of {images}" if net > 0 else f"a net loss of {images}" if net < 0 else "no net change"
    text = f"It fixed {fixed} and broke {broken} of {n:,} predictions: {verdict}"
    if moved:
        text += f"; {moved} stayed wrong with another class"
    return text + "."


def _tiles(changes: list[TTAChange], empty: str) -> None:
    """Thumbnails with the true label and both predictions."""
    if not changes:
        st.caption(empty)
        return
    grid = st.columns(6)
    for i, change in enumerate(changes[:SHOWN]):
        with grid[i % 6]:
            picture = thumbnail(change.path, 200)
            if picture is None:
                st.caption(f"{Path(change.path).name} is no longer readable")
                continue
            st.image(picture, width="stretch")
            st.caption(f"true **{change.true}** · without TTA **{change.before}** ({change.before_confidence:.0%}) · "
                       f"with TTA **{change.after}** ({change.after_confidence:.0%})")
    if len(changes) > SHOWN:
        st.caption(f"Showing {SHOWN} of {len(changes)}.")


def show_tta(run: RunDir, stamp: int) -> None:
    """The section: the button, then (for this run and checkpoint) the numbers and both galleries."""
    st.subheader("Test-time augmentation")
    st.caption(f"Predict each validation image from {len(TTA_VIEWS)} views ({', '.join(TTA_VIEWS)}) and average them. "
               f"It takes {len(TTA_VIEWS)} times as long as a plain prediction and needs no training; it can fix "
               "predictions and it can break them, so both are shown.")
    owner = (str(run.path), stamp)
    comparison = state.tta_comparison.get(owner)
    if comparison is None:
        if not st.button("Compare with test-time augmentation", key="tta_compare"):
            return
        try:
            with busy.progress("Predicting with test-time augmentation") as on_progress:
                comparison = compare_tta(run, on_progress=on_progress, predictor=insight.predictor(str(run.path), stamp))
        except WarmstartError as exc:
            st.error(str(exc))
            return
        state.tta_comparison.set(owner, comparison)
    without, with_tta = comparison.accuracy_plain, comparison.accuracy_tta
    a, b, c = st.columns(3)
    a.metric("Accuracy without TTA", f"{without:.1%}", help="The centre crop alone, as everywhere else on this page.")
    b.metric("Accuracy with TTA", f"{with_tta:.1%}", delta=f"{(with_tta - without) * 100:+.1f} points",
             delta_color="normal" if with_tta != without else "off")
    c.metric("Predictions changed", f"{len(comparison.changes):,}", help="Images whose top class differs with and without TTA.")
    st.caption(tta_summary(comparison))
    if comparison.skipped:
        st.caption(f"{len(comparison.skipped)} validation file(s) could not be read and are left out.")
    st.markdown("**Wrong → right: fixed by TTA**")
    _tiles([ch for ch in comparison.changes if ch.kind == "fixed"], "None.")
    st.markdown("**Right → wrong: broken by TTA**")
    _tiles([ch for ch in comparison.changes if ch.kind == "broken"], "None.")
