"""Predict: classify new images with a trained run; one by one with Grad-CAM, or a whole zip as a table."""

from pathlib import Path

import pandas as pd
import streamlit as st

from transfer_core import ImageReadError, WarmstartError, expand_inputs, open_rgb, predictions_table
from ui import insight, state
from ui.charts import top_k_figure
from ui.uploads import save_zip

st.title("Predict")
st.caption("Use a trained model on images it has never seen.")

run = state.choose_run("Model (run)", "predict_run", lambda r: r.checkpoint_file.exists() and r.model_file.exists(),
                       "No trained model yet: train one on the Train page.")
stamp = insight.checkpoint_stamp(run)
try:
    model = insight.predictor(str(run.path), stamp)
except WarmstartError as exc:
    st.error(str(exc))
    st.stop()
top_k = st.slider("Classes to show per image", 1, max(1, min(10, len(model.classes))), min(3, len(model.classes)), key="predict_k")
use_tta = st.toggle("Test-time augmentation", value=state.predict_tta.get(), key=state.PREDICT_TTA_SWITCH, on_change=state.keep_predict_tta,
                    help="Averages the prediction over 6 views of each image (centre, mirror, 4 corners): often a little more "
                         "accurate, 6 times slower; its confidences are averages, so a little lower. Grad-CAM still explains the centre crop.")

single_tab, batch_tab = st.tabs(["Images", "A zip or folder of images"])

with single_tab:
    uploads = st.file_uploader("Images", accept_multiple_files=True, key="predict_files",
                               type=["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"])
    for upload in uploads or []:
        try:
            image = open_rgb(upload.getvalue())
        except ImageReadError as exc:
            st.error(f"'{upload.name}': {exc}.")
            continue
        probabilities = model.probabilities([image], tta=use_tta)[0]
        order = probabilities.argsort()[::-1][:top_k]
        top = [(model.classes[i], float(probabilities[i])) for i in order]
        st.markdown(f"**{upload.name}** → **{top[0][0]}** ({top[0][1]:.0%})")
        picture, cam, bars = st.columns([1, 1, 2])
        picture.image(image, caption="uploaded", width="stretch")
        ranked = [model.classes[i] for i in probabilities.argsort()[::-1]]
        target = bars.selectbox("Grad-CAM for class", ranked, key=f"cam_class_{upload.file_id}",
                                help="Any class: where the image looks most (warm) and least like it.")
        cam.image(insight.grad_cam_for_upload(str(run.path), stamp, image, target), caption=f"Grad-CAM for '{target}'", width="stretch")
        bars.plotly_chart(top_k_figure(top), width="stretch", key=f"topk_{upload.file_id}")

with batch_tab:
    archive = st.file_uploader("Zip of images (folders inside are fine)", type=["zip"], key="predict_zip")
    folder = st.text_input("…or a folder on the server", key="predict_folder", placeholder="/data/new-photos")
    if st.button("Predict all", key="predict_batch", disabled=archive is None and not folder):
        try:
            sources = [save_zip(state.user_root(), archive.name, archive.getvalue())] if archive is not None else []
            if folder:
                if not Path(folder).is_dir():
                    raise WarmstartError(f"Folder '{folder}' does not exist on the server.")
                sources.append(Path(folder))
            files = expand_inputs(sources)
            if not files:
                raise WarmstartError("No image files found in the zip or folder.")
            with st.spinner(f"Predicting {len(files):,} images{' from 6 views each' if use_tta else ''}…"):
                state.batch_table.set(pd.DataFrame(predictions_table(model.predict_files(files, top_k=top_k, tta=use_tta))))
                state.batch_tta.set(use_tta)
        except WarmstartError as exc:
            st.error(str(exc))
    table = state.batch_table.get()
    if table is not None:
        failed = int((table["error"] != "").sum())
        st.caption(f"{len(table):,} images{' (with test-time augmentation)' if state.batch_tta.get() else ''}; {failed} could not "
                   "be read" + (" (see the error column)." if failed else "."))
        st.dataframe(table.assign(file=table["file"].map(lambda p: Path(p).name)), hide_index=True, width="stretch",
                     column_config={"probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.2f")})
        st.download_button("Download as CSV", table.to_csv(index=False).encode("utf-8"), file_name=f"predictions-{run.name}.csv",
                           mime="text/csv", key="download_predictions")
