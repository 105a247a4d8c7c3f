"""Data: choose or upload labeled images, see what was found, set the validation split."""

from pathlib import Path

import pandas as pd
import streamlit as st

from transfer_core import SAMPLES, WarmstartError, health_check, prepare_sample
from ui import busy, label_review, pool, state
from ui.thumbnails import thumbnail
from ui.charts import class_counts_figure
from ui.uploads import discard, new_upload_folder, safe_name, save_files, save_zip
from ui.wording import short_file_name

THUMBS_PER_PAGE = 24

st.title("1 · Data")
st.caption("A dataset is a set of classes, each with example images. Start from a sample or upload your own.")


def _use(name: str, source: str, val_source: str | None = None, upload: Path | None = None) -> None:
    """Make the dataset the project's (or a new project's) if it reads correctly; otherwise say why and
    keep everything as it was (a staged upload that failed is removed)."""
    had_dataset = state.dataset() is not None
    try:
        with st.spinner("Reading the images…"):
            project = state.set_dataset(state.DatasetChoice(name, source, val_source), upload=upload)
    except WarmstartError as exc:
        if upload is not None:
            discard(upload)
        st.error(str(exc))
        return
    if had_dataset:
        state.data_note.set(f"Started a new project, “{project.name}”, for this dataset (a project holds one dataset); "
                            "your earlier project is on Home.")
    st.rerun()


opened = state.project()
if opened is not None and opened.dataset is not None:
    st.caption(f"Project **{opened.name}**. Loading other images below starts a new project; this one stays on Home.")
if note := state.data_note.take():
    st.success(note)

sample_tab, zip_tab, class_tab, csv_tab = st.tabs(["Built-in samples", "Upload a zip", "Images per class", "CSV + images"],
                                                  default=state.data_tab.get())

with sample_tab:
    key = st.radio("Sample", list(SAMPLES), format_func=lambda k: SAMPLES[k].title, key="sample_choice")
    st.caption(SAMPLES[key].description)
    if st.button("Load sample", key="load_sample"):
        with st.spinner("Preparing the sample…"):
            try:
                folder = prepare_sample(key, state.workspace() / "samples")
            except WarmstartError as exc:
                st.error(str(exc))
            else:
                _use(SAMPLES[key].title, str(folder))

with zip_tab:
    st.caption("One folder per class inside the zip, e.g. `cats/1.jpg`, `dogs/7.png`. `train/` and `val/` folders are used as the split.")
    upload = st.file_uploader("Zip of class folders", type=["zip"], key="zip_upload")
    if upload is not None and st.button("Use this zip", key="use_zip"):
        try:
            path = save_zip(state.user_root(), upload.name, upload.getvalue())
        except WarmstartError as exc:
            st.error(str(exc))
        else:
            _use(Path(upload.name).stem, str(path), upload=path.parent)

with class_tab:
    st.caption("Name a class, drop its images, add it; repeat for every class.")
    folder = state.manual_folder.get()
    if folder and not Path(folder).is_dir():
        folder = None  # already moved into a project
        state.manual_folder.clear()
    name = st.text_input("Class name", key="manual_class", placeholder="e.g. healthy leaf")
    files = st.file_uploader(
        "Images of this class", accept_multiple_files=True, key=f"manual_files_{state.manual_round.get()}",
        type=["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"],
    )
    if st.button("Add class", key="add_class", disabled=not (name and files)):
        if folder is None:
            folder = str(new_upload_folder(state.user_root(), "classes"))
            state.manual_folder.set(folder)
        saved, refused = save_files(Path(folder) / safe_name(name), [(f.name, f.getvalue()) for f in files])
        state.manual_round.set(state.manual_round.get() + 1)  # a fresh, empty uploader for the next class
        state.manual_note.set((f"Added {saved} images to '{name}'.", refused))
        st.rerun()
    if note := state.manual_note.take():
        st.success(note[0])
        for reason in note[1]:
            st.error(reason)
    if folder:
        classes = {p.name: len(list(p.iterdir())) for p in sorted(Path(folder).iterdir()) if p.is_dir()}
        st.write(", ".join(f"**{c}** ({n})" for c, n in classes.items()) or "No classes yet.")
        if st.button("Use these classes", key="use_manual", disabled=len(classes) < 2, help="Needs at least two classes."):
            _use("My classes", folder, upload=Path(folder))

with csv_tab:
    st.caption("A CSV with columns `path,label`; `path` is the image's file name as uploaded below.")
    manifest = st.file_uploader("CSV manifest", type=["csv"], key="csv_upload")
    images = st.file_uploader("Images listed in it", accept_multiple_files=True, key="csv_images")
    if manifest is not None and images and st.button("Use this CSV", key="use_csv"):
        target = new_upload_folder(state.user_root(), "csv")
        _, refused = save_files(target, [(f.name, f.getvalue()) for f in images])
        for reason in refused:
            st.error(reason)
        csv_path = target / safe_name(manifest.name)
        csv_path.write_bytes(manifest.getvalue())
        _use(Path(manifest.name).stem, str(csv_path), upload=target)

choice = state.dataset()
if choice is None:
    st.info("No dataset yet: load a sample or upload images above.")
    st.stop()

st.divider()
st.subheader(f"Dataset: {choice.name}")
indexes = state.dataset_indexes()
if indexes is None:
    st.stop()
train, val = indexes
summary = state.dataset_summary()
for warning in summary.warnings:
    st.warning(warning)

left, right = st.columns([3, 2])
with left:
    st.plotly_chart(class_counts_figure(train.counts(), val.counts()), width="stretch")
with right:
    st.markdown("**Validation split**")
    if choice.val_source or (train.source != val.source):
        st.caption("Validation images come from a separate folder (`val/`), so the split below does not apply.")
    st.slider(
        "Share held out for validation", 0.05, 0.5, step=0.05, key=state.widget_key("val_split"),
        on_change=state.sync_widget, args=("val_split",),
        help="More validation images give a more trustworthy score but leave fewer to learn from.",
    )
    st.number_input(
        "Split seed", min_value=0, step=1, key=state.widget_key("seed"), on_change=state.sync_widget, args=("seed",),
        help="The same seed always gives the same split and the same training run.",
    )
    st.metric("Training images", f"{len(train):,}")
    st.metric("Validation images", f"{len(val):,}")

if train.skipped:
    with st.expander(f"{len(train.skipped)} files skipped", expanded=len(train.skipped) <= 10):
        st.dataframe(pd.DataFrame([{"file": s.path, "reason": s.reason} for s in train.skipped]), hide_index=True, width="stretch")


st.subheader("Health check")
st.caption("Uses the chosen backbone's pretrained features to find the same picture twice, the same picture in training "
           "and validation (which inflates the score), and labels to check: images that look far more like another class "
           "than like their own, ranked by confident learning, to relabel or leave out right here.")
if st.button("Run the health check", key="run_health"):
    try:
        with busy.progress("Checking the images (features are computed once; later checks and runs reuse them)") as on_progress:
            state.health_report.set(choice.source, health_check(train, val, backbone=state.settings()["backbone"], on_progress=on_progress))
    except WarmstartError as exc:
        st.error(str(exc))
report = state.health_report.get(choice.source)
if report is not None:
    (st.warning if not report.clean else st.info if report.labels_to_check else st.success)(report.summary)
    typical = "" if report.neighbour_agreement is None else (
        f" On average {report.neighbour_agreement:.0%} of an image's nearest neighbours share its label here; a label is "
        "questioned only when the image sits as deep inside another class as that class's own images do.")
    st.caption(f"Two images count as the same picture above {report.duplicate_threshold:.3f} feature similarity "
               f"(set from how alike this dataset's images are).{typical}")
    sections = [
        ("Same image in training and validation", report.leakage, lambda d: (d["train"], d["val"]), lambda d: f"similarity {d['similarity']:.3f}"),
        ("Near-duplicates", report.near_duplicates, lambda d: (d["a"], d["b"]), lambda d: f"{' / '.join(d['labels'])} · similarity {d['similarity']:.3f}"),
    ]
    for title, found, files, describe in sections:
        if not found:
            continue
        with st.expander(f"{title}: {len(found)}", expanded=True):
            for item in found[:12]:
                cells = st.columns([1, 1, 4])
                for cell, path in zip(cells, files(item)):
                    thumb = thumbnail(path, 140)
                    if thumb is not None:
                        cell.image(thumb, caption=short_file_name(Path(path).name, 24), width=120)
                cells[2].caption(describe(item))
            if len(found) > 12:
                st.caption(f"…and {len(found) - 12} more.")
    label_review.render(report, train.classes)
label_review.corrections_summary()

pool.render(train.classes)

st.subheader("Images")
label = st.selectbox("Class", train.classes, key="thumb_class")
members = [r.path for r in train.records + val.records if r.label == label]
pages = max(1, -(-len(members) // THUMBS_PER_PAGE))
page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="thumb_page") if pages > 1 else 1
shown = members[(page - 1) * THUMBS_PER_PAGE : page * THUMBS_PER_PAGE]
columns = st.columns(8)
for i, path in enumerate(shown):
    thumb = thumbnail(path, 160)
    if thumb is not None:
        columns[i % 8].image(thumb, caption=short_file_name(Path(path).name, 18), width="stretch")
st.caption(f"{len(members)} images of '{label}'; showing {len(shown)}.")
state.mark_done("Data")
