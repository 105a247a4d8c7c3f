"""Export: TorchScript, ONNX (float and int8), safetensors + model.json and a model card in one zip, checked
against the engine and timed on this machine."""

import pandas as pd
import streamlit as st

from transfer_core import (
    EXPORT_FORMATS, INT8_ACCURACY_DROP, ONNX_OPSET, WarmstartError, export_run, export_zip, measure_export, read_latency, verify_export,
)
from transfer_core.deploy.verify import describe
from ui import busy, state
from ui.wording import size_text

st.title("Export")
st.caption("Take the trained model away: files for PyTorch, ONNX runtimes and Warmstart, with a model card.")

run = state.choose_run("Run", "export_run", lambda r: r.read_report() is not None, "No finished run yet: train one on the Train page.")

LABELS = {
    "torchscript": "TorchScript (PyTorch without Warmstart)",
    "onnx": "ONNX (ONNX Runtime, TensorRT, OpenVINO)",
    "onnx-int8": "ONNX int8 (about 4x smaller, usually faster on CPUs)",
    "safetensors": "safetensors + model.json (reload in Warmstart)",
    "card": "Model card (Markdown + confusion matrix)",
}
formats = st.multiselect("Formats", list(EXPORT_FORMATS), default=list(EXPORT_FORMATS), format_func=LABELS.get, key="export_formats",
                         help=f"ONNX files use operator set (opset) {ONNX_OPSET}: the runtime that loads them must "
                              "support it. TorchScript needs PyTorch but not Warmstart. The int8 file stores weights in "
                              "8 bits, calibrated on training images; it is checked for the accuracy it keeps on the "
                              f"validation images (at most {INT8_ACCURACY_DROP:.0%} lost to be recommended).")
folder = run.path / "export"

if st.button("Export and check", type="primary", disabled=not formats, key="do_export"):
    try:
        with busy.progress("Exporting, then re-running the exported models on the validation images") as on_progress:
            folder = export_run(run, tuple(formats), on_progress=on_progress)
            checks = verify_export(run, folder, on_progress=on_progress)
        with st.spinner("Timing each file on this machine (batch 1 and batch 32)…"):
            measure_export(folder, checks)
        state.export_check.set(str(run.path), checks)
    except WarmstartError as exc:
        st.error(str(exc))

results = state.export_check.get(str(run.path))
if results is not None and folder.exists():
    for result in results:
        show = st.error if result.error or not (result.ok or result.quantized) else st.success if result.ok else st.warning
        show(describe(result))
    if not results:
        st.caption("No ONNX or TorchScript file in this export, so there was nothing to re-run.")
    costs = read_latency(folder)
    if costs:
        st.markdown("**What each file costs on this machine**")
        st.dataframe(pd.DataFrame([{"format": c.format, "file": c.file, "size": size_text(c.megabytes),
                                    "ms per image, batch 1": c.ms_per_image_batch1, "ms per image, batch 32": c.ms_per_image_batch32}
                                   for c in costs]), hide_index=True, width="stretch",
                     column_config={name: st.column_config.NumberColumn(format="%.1f")
                                    for name in ("ms per image, batch 1", "ms per image, batch 32")})
        st.caption("Measured when exported, on this machine's CPU (ONNX files in ONNX Runtime, the others in PyTorch): "
                   "batch 1 is one photo at a time (a camera, a phone); batch 32 a folder of photos.")
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    st.write("Files: " + ", ".join(f"`{name}`" for name in files))
    st.download_button("Download the export (zip)", lambda: export_zip(folder), file_name=f"{run.name}-export.zip",
                       mime="application/zip", type="primary", key="download_export")
    card = folder / "MODEL_CARD.md"
    if card.exists():
        with st.expander("Model card", expanded=False):
            head, _, tail = card.read_text(encoding="utf-8").partition("![Confusion matrix](confusion_matrix.png)")
            st.markdown(head)
            st.image(str(folder / "confusion_matrix.png"))
            st.markdown(tail)
elif folder.exists():
    st.caption("An earlier export of this run exists; export again to check it and download it.")
