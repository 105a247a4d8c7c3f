"""The Data page's unlabelled pool: add images without classes, let the app propose which to label
next, label them (one click or one key each), and retrain with them.

The pool lives in the project (``uploads/pool/``); labels are written to the labels file beside it
after every click (:class:`transfer_core.PoolLabels`), so a refresh or a closed tab loses nothing,
and every run the project starts trains on them (``TrainConfig.unlabeled``). The proposed batch is
kept in the project too, so a refresh shows the same images.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from transfer_core import (
    POOL_SKIP,
    DatasetIndex,
    PoolLabels,
    RunDir,
    Suggestion,
    WarmstartError,
    display_name,
    load_pool,
    pool_labels_path_for,
    suggest,
)
from transfer_core.training.trainer import resolve_device

from . import busy, labelling, state
from .uploads import save_pool_files

__all__ = ["render"]

POOL_TYPES = ["zip", "jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]


def render(classes: list[str]) -> None:
    """The whole pool section of the Data page, for a dataset with ``classes``."""
    st.subheader("Unlabelled images")
    st.caption("Have more photos than patience to label them? Add them here without classes: the app proposes the "
               "ones worth labelling first, you label them with one click or key each, and the next run trains on them. "
               "Validation stays the dataset's own images, so runs of successive rounds are measured alike.")
    folder = state.pool_folder()
    _add_images(folder)
    if folder is None:
        return
    try:
        pool = load_pool(folder)
        labels = PoolLabels.load(pool_labels_path_for(folder))
    except WarmstartError as exc:
        st.error(str(exc))
        return
    _status(pool, labels, classes)
    latest = _latest_finished_run()
    suggestion = _suggest_controls(pool, labels, latest)
    if suggestion is not None:
        labelling.render(suggestion, labels, classes, pool_labels_path_for(folder))
    _retrain(labels, latest)


def _add_images(folder: Path | None) -> None:
    label = "Add images to the pool" if folder is not None else "Images without classes (files or .zip)"
    uploads = st.file_uploader(label, type=POOL_TYPES, accept_multiple_files=True, key=f"pool_upload_{state.pool_round.get()}")
    if uploads and st.button("Add to the pool", key="add_pool"):
        try:
            target = folder or state.pool_target()
            added, refused = save_pool_files(target, [(f.name, f.getvalue()) for f in uploads])
            if added:
                state.record_pool(target)
        except (WarmstartError, OSError) as exc:
            st.error(f"Could not add the images ({getattr(exc, 'strerror', None) or exc}); the pool keeps what it had.")
            return
        state.pool_round.set(state.pool_round.get() + 1)  # an empty uploader for the next batch
        state.pool_note.set((f"Added {added} image(s) to the pool.", refused))
        st.rerun()
    if note := state.pool_note.take():
        st.success(note[0])
        for reason in note[1][:10]:
            st.error(reason)
        if len(note[1]) > 10:
            st.caption(f"…and {len(note[1]) - 10} more files refused.")


def _status(pool: DatasetIndex, labels: PoolLabels, classes: list[str]) -> None:
    present = {r.path for r in pool.records}
    classed = {p: c for p, c in labels.classed.items() if p in present}
    skipped = sum(1 for p, c in labels.labels.items() if c == POOL_SKIP and p in present)
    cells = st.columns(4)
    cells[0].metric("Images in the pool", f"{len(pool):,}")
    cells[1].metric("Labelled", f"{len(classed):,}")
    cells[2].metric("Skipped (no class)", f"{skipped:,}")
    cells[3].metric("Left to label", f"{len(pool) - len(classed) - skipped:,}")
    if classed:
        counts = {c: sum(1 for v in classed.values() if v == c) for c in classes}
        st.caption("The next run trains on these labelled pool images too: "
                   + ", ".join(f"{c} ({n})" for c, n in counts.items() if n) + ".")
    if pool.skipped:
        with st.expander(f"{len(pool.skipped)} pool files are not usable images"):
            st.dataframe([{"file": s.path, "reason": s.reason} for s in pool.skipped], hide_index=True, width="stretch")


def _latest_finished_run() -> RunDir | None:
    finished = [run for run in state.run_store().runs() if run.status() == "finished" and run.checkpoint_file.exists()]
    return max(finished, key=RunDir.last_activity, default=None)


def _suggest_controls(pool: DatasetIndex, labels: PoolLabels, latest: RunDir | None) -> Suggestion | None:
    """The "label these next" controls; the batch to label (the saved one, or a new one)."""
    st.markdown("**Label these next**")
    left, right = st.columns([1, 3])
    n = left.number_input("How many", 1, 200, 20, key="pool_n", help="How many images to propose in one batch.")
    if latest is None:
        cold = True
        right.caption("No finished run yet, so the first batch is a cold start: typical images that together cover the pool.")
    else:
        cold = right.checkbox(
            f"Cold start anyway: typical and diverse images, ignoring run {display_name(latest)}", key="pool_cold",
            help="By default the app proposes the images the latest finished run is least sure of.",
        )
    if st.button(f"Suggest {n} images to label", key="pool_suggest", type="primary"):
        run = None if cold or latest is None else latest
        try:
            with busy.progress("Choosing images to label (pool features are computed once, then reused)") as on_progress:
                chosen = suggest(pool, labels, int(n), run.path if run else None, state.settings()["backbone"] if run is None else None,
                                 resolve_device("auto").type, on_progress=on_progress)
            state.save_suggestion(chosen, run)
        except (WarmstartError, OSError) as exc:
            st.error(str(exc))
        except RuntimeError as exc:  # out of memory on a GPU or in the runtime: say so instead of a traceback
            st.error(f"Choosing images stopped ({exc}); try a smaller pool or free some memory.")
    saved = state.saved_suggestion({r.path for r in pool.records})
    if saved is not None:
        suggestion, run_name = saved
        st.caption(f"{'Using run ' + run_name + '. ' if run_name else ''}{suggestion.strategy}")
    return saved[0] if saved is not None else None


def _retrain(labels: PoolLabels, latest: RunDir | None) -> None:
    st.markdown("**Retrain with the new labels**")
    pseudo = st.checkbox(
        "Also self-train on the latest run's confident guesses for the rest of the pool (pseudo-labels)",
        key="pool_pseudo", disabled=latest is None,
        help="The latest finished run labels the pool images nobody labelled; only guesses above the threshold join "
             "training, at most the cap per class. Validation still measures real labels only.",
    )
    threshold, cap = 0.9, 20
    if pseudo:
        left, right = st.columns(2)
        threshold = left.slider("Lowest probability of a guess", 0.5, 0.99, 0.9, 0.01, key="pool_threshold")
        cap = int(right.number_input("At most this many guesses per class", 1, 10_000, 20, key="pool_cap"))
    if st.button("Retrain with the new labels", key="pool_retrain", disabled=not labels.classed and not pseudo,
                 help="Starts a run with the current settings on the dataset plus every pool image labelled so far."):
        def config():
            chosen = state.training_config()
            if pseudo and latest is not None:
                chosen = chosen.replace(pseudo_labels_from=str(latest.path), pseudo_threshold=threshold, pseudo_cap=cap)
            return chosen

        state.train_and_follow(config)
