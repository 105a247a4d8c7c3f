"""Evaluate: metrics with intervals, per-class table, confusion matrix, mistakes gallery with Grad-CAM
and corrections, calibrated confidence, test-time augmentation with what it fixed and broke, and the
embedding map of what training did to the feature space."""

from pathlib import Path

import pandas as pd
import streamlit as st

from transfer_core import (
    Corrections,
    RunStore,
    WarmstartError,
    best_epoch_verdict,
    corrections_file_for_run,
    separation_verdict,
    small_sample_warning,
)
from ui import gallery, insight, state, tta
from ui.calibration import show_calibration
from ui.charts import confusion_matrix_figure, embedding_figure
from ui.thumbnails import thumbnail
from ui.wording import duration_text

GALLERY_SIZE = 24

st.title("5 · Evaluate")

run = state.choose_run("Run", "eval_run", lambda r: r.read_report() is not None, "No finished run yet: train one on the Train page.")
try:
    report = run.read_report()
    predictions = run.read_predictions()
except WarmstartError as exc:
    st.error(str(exc))
    st.stop()
classes = report["classes"]

intervals = insight.intervals(str(run.path), insight.report_stamp(run))  # the model card shows the same
a, b, c = st.columns(3)
acc_low, acc_high = intervals["val_accuracy"]
f1_low, f1_high = intervals["macro_f1"]
a.metric("Validation accuracy", f"{report['val_accuracy']:.1%}", help="Share of validation images classified correctly.")
a.caption(f"95 % interval: {acc_low:.1%} – {acc_high:.1%}")
b.metric("Macro-F1", f"{report['macro_f1']:.3f}",
         help="A score from 0 to 1 that counts every class equally: each class's F1 (the balance of precision and "
              "recall, below) averaged, so a small class the model gets wrong pulls it down as much as a large one.")
b.caption(f"95 % interval: {f1_low:.3f} – {f1_high:.3f}")
c.metric("Validation images", f"{report['val_size']:,}")
seconds = insight.total_training_seconds(str(run.path), insight.events_stamp(run))  # every segment of a resumed run
c.caption(f"Best epoch {report['best_epoch']} of {report['epochs_run']}; trained in {duration_text(seconds or report['train_seconds'])}")
if warning := small_sample_warning(report, intervals):
    st.warning(warning)
if verdict := best_epoch_verdict(report, run.read_config().strategy):
    st.info(verdict)

st.subheader("Per class")
per_class = pd.DataFrame(report["per_class"])
bar = lambda label: st.column_config.ProgressColumn(label, min_value=0.0, max_value=1.0, format="%.2f")
st.dataframe(
    per_class,
    hide_index=True,
    width="stretch",
    column_config={"precision": bar("precision"), "recall": bar("recall"), "f1": bar("F1"), "support": st.column_config.NumberColumn("images")},
)
st.caption("Precision: of the images predicted as this class, the share that truly are. Recall: of the images of this class, "
           "the share found. F1: one number balancing the two (1 is perfect).")

st.subheader("Confusion matrix")
normalize = st.toggle("Show shares of each true class", key="cm_normalize", help="Row-normalized: each row sums to 100 %.")
figure = confusion_matrix_figure(report["confusion_matrix"], classes, normalize=normalize)
event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="cm_chart", width="stretch")
st.caption("Click a cell to see those images below.")

selected = None
points = (event.selection.get("points") if event and hasattr(event, "selection") else None) or []
if points:
    point = points[0]
    selected = (str(point["y"]), str(point["x"]))

st.subheader("Mistakes")
options = gallery.filter_options(predictions, classes)
# Apply a chart click once; afterwards the selectbox is the user's to change.
if selected is not None and state.applied_cell.get() != selected:
    state.applied_cell.set(selected)
    if (cell := gallery.cell_filter(*selected)) in options:
        state.gallery_filter.set(cell)
    else:
        st.info(f"No validation image of '{selected[0]}' was predicted as '{selected[1]}'.")
choice = st.selectbox("Show", options, key=state.gallery_filter.key)
shown = gallery.gallery_images(predictions, choice)
st.caption(f"{len(shown)} images, highest loss (most confidently wrong) first.")


config = run.read_config()
fixes_path = corrections_file_for_run(run.path, config.data)


def _save_fix(image_path: str, original: str, box: state.SessionValue[str]) -> None:
    """on_change of a tile's label box: write the choice into the dataset's corrections file."""
    try:
        fixes = Corrections.load(fixes_path)
        gallery.apply_label(fixes, image_path, box.get(), original)
        fixes.save(fixes_path)
    except WarmstartError as exc:
        state.fix_error.set(str(exc))


cam_left, cam_right = st.columns([2, 3])
show_cam = cam_left.toggle("Grad-CAM: show where the model looked", key="gallery_cam",
                           help="Warm colours mark the regions that pushed the model toward the class explained.")
explain = cam_right.radio("Explain", ["predicted", "true"], horizontal=True, key="gallery_explain", disabled=not show_cam,
                          format_func={"predicted": "its predicted class", "true": "its true class"}.get,
                          help="For a mistake, the true class's map shows what the model missed.")
fixes = Corrections.load(fixes_path)
stamp = insight.checkpoint_stamp(run)
grid = st.columns(6)
for i, p in enumerate(shown[:GALLERY_SIZE]):
    with grid[i % 6]:
        picture = insight.grad_cam_image(str(run.path), stamp, p["path"], p[explain]) if show_cam else thumbnail(p["path"], 200)
        if picture is None:
            st.caption(f"{Path(p['path']).name} is no longer readable")
            continue
        st.image(picture, width="stretch")
        missed = "" if p["correct"] else f"; only {p['true_probability']:.0%} for **{p['true']}**"
        st.caption(f"true **{p['true']}** · predicted **{p['predicted']}** ({p['confidence']:.0%} sure){missed}")
        box = state.relabel_box(p["path"])
        box.setdefault(gallery.current_label(fixes, p["path"], p["true"]))
        st.selectbox("Label", gallery.label_options(p["true"], classes), key=box.key, label_visibility="collapsed",
                     on_change=_save_fix, args=(p["path"], p["true"], box), help="Relabel this image or leave it out of training.")
if len(shown) > GALLERY_SIZE:
    st.caption(f"Showing the first {GALLERY_SIZE}.")
if error := state.fix_error.take():
    st.error(error)
fixes = Corrections.load(fixes_path)
if len(fixes):
    st.info(f"{len(fixes.relabel)} relabelled and {len(fixes.exclude)} excluded image(s), kept with the "
            "project (your images are not changed).")
    if st.button("Retrain with these corrections", type="primary", key="retrain_fixed"):
        state.train_and_follow(lambda: config.replace(corrections=str(fixes_path)), label="corrected", store=RunStore(run.path.parent))

show_calibration(report)
tta.show_tta(run, stamp)

st.subheader("Embedding map")
st.caption("Each dot is a validation image, placed by its backbone features (projected to 2-D). Before training, pretrained "
           "features; after, the fine-tuned ones. Tighter, separate colour clusters mean the classes became easier to tell apart.")
if st.button("Show the embedding map", key="show_map") or state.embedding_map_open.get(str(run.path)):
    state.embedding_map_open.set(str(run.path), True)
    method_col, thumbs_col = st.columns([2, 3])
    method = method_col.radio("Projection", ["pca", "tsne"], horizontal=True, key="map_method",
                              format_func={"pca": "Overall layout (PCA)", "tsne": "Neighbourhoods (t-SNE)"}.get,
                              help="How the features are flattened to 2-D. Overall layout (PCA) keeps large distances "
                                   "true; neighbourhoods (t-SNE) keeps each image near its most similar ones, so "
                                   "clusters stand out more but distances between them mean little.")
    show_thumbs = thumbs_col.toggle("Draw the images on the map", key="map_thumbs", help="Up to 300 images.")
    try:
        points, before, after = insight.embedding_points(str(run.path), stamp, method)
    except WarmstartError as exc:
        st.error(str(exc))
    else:
        if config.strategy.value == "frozen":
            st.info("This run kept the backbone frozen, so its features did not move and both maps are the same: only the "
                    "new head learned, drawing boundaries between these clusters. Fine-tune (partial or full) to see "
                    "training reshape the feature space.")
        left, right = st.columns(2)
        picked = []
        thumbs = [insight.thumbnail_data_uri(p) for p in points["path"][:300]] + [None] * max(0, len(points) - 300) if show_thumbs else None
        for column, when, score in ((left, "before", before), (right, "after", after)):
            event = column.plotly_chart(embedding_figure(points, when, score, thumbs), on_select="rerun", selection_mode="points",
                                        key=f"map_{when}", width="stretch")
            picked += (event.selection.get("points") if event and hasattr(event, "selection") else None) or []
        if verdict := separation_verdict(before, after):
            st.caption(verdict)
        if picked:
            row = points.iloc[int(picked[0]["customdata"][0])]
            image, text = st.columns([1, 4])
            thumb = thumbnail(row["path"], 200)
            if thumb is not None:
                image.image(thumb, width="stretch")
            text.markdown(f"**{Path(row['path']).name}**  \ntrue **{row['label']}** · predicted **{row['predicted']}** ({row['confidence']:.0%})")
        else:
            st.caption("Click a dot to see its image.")
state.mark_done("Evaluate")
