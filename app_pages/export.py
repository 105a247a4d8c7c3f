"""Export: TorchScript, ONNX, safetensors + model.json and a model card in one zip, checked against the engine."""

import streamlit as st

from transfer_core import EXPORT_FORMATS, EXPORT_TOLERANCE, ONNX_OPSET, WarmstartError, export_run, export_zip, verify_export
from ui import busy, state

st.title("Export")
st.caption("Take the trained model away: files for PyTorch, ONNX runtimes and Warmstart, with a model card.")

run = state.choose_run("Run", "export_run", lambda r: r.read_report() is not None, "No finished run yet: train one on the Train page.")

LABELS = {
    "torchscript": "TorchScript (PyTorch without Warmstart)",
    "onnx": "ONNX (ONNX Runtime, TensorRT, OpenVINO)",
    "safetensors": "safetensors + model.json (reload in Warmstart)",
    "card": "Model card (Markdown + confusion matrix)",
}
formats = st.multiselect("Formats", list(EXPORT_FORMATS), default=list(EXPORT_FORMATS), format_func=LABELS.get, key="export_formats",
                         help=f"ONNX files use operator set (opset) {ONNX_OPSET}: the runtime that loads them must "
                              "support it. TorchScript needs PyTorch but not Warmstart.")
folder = run.path / "export"

if st.button("Export and check", type="primary", disabled=not formats, key="do_export"):
    try:
        with busy.progress("Exporting, then re-running the exported models on the validation images") as on_progress:
            folder = export_run(run, tuple(formats), on_progress=on_progress)
            state.export_check.set(str(run.path), verify_export(run, folder, on_progress=on_progress))
    except WarmstartError as exc:
        st.error(str(exc))

results = state.export_check.get(str(run.path))
if results is not None and folder.exists():
    for result in results:
        if result.error:
            st.error(f"{result.format}: could not be checked ({result.error}).")
        elif result.ok:
            st.success(f"{result.format}: agrees with the app on all {result.images} validation images "
                       f"(top-1 agreement {result.agreement:.0%}, largest probability difference {result.max_difference:.1e}).")
        else:
            st.error(f"{result.format}: DISAGREES with the app: top-1 agreement {result.agreement:.1%} on {result.images} images, "
                     f"largest probability difference {result.max_difference:.1e} (allowed {EXPORT_TOLERANCE:.0e}). Do not deploy this file.")
    if not results:
        st.caption("No ONNX or TorchScript file in this export, so there was nothing to re-run.")
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
