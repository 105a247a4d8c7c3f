"""Compare: every run side by side, overlaid curves, per-class F1, transfer vs from scratch; rename, delete, download."""

import pandas as pd
import streamlit as st

from transfer_core import WarmstartError, config_differences, dataset_name, flatten_config, scratch_baseline
from ui import insight, state
from ui.charts import compare_curves_figure, compare_f1_figure
from ui.wording import duration_text, setting_text

st.title("Compare runs")
store = state.run_store()
runs = store.runs()
if not runs:
    st.info("No runs yet: train one on the Train page.")
    st.stop()

SHOWN_SETTINGS = ["backbone", "pretrained", "strategy", "epochs", "lr", "augment", "batch_size", "image_size"]
rows, configs, reports = [], {}, {}
for run in runs:
    try:
        config = run.read_config()
    except WarmstartError:
        continue
    configs[run.name] = config
    report = reports[run.name] = run.read_report() or {}
    flat = flatten_config(config) | {"augment": config.augment.preset_name or "custom"}
    seconds = insight.total_training_seconds(str(run.path), insight.events_stamp(run))
    rows.append({
        "run": run.name, "dataset": dataset_name(config), "status": run.status(),
        "accuracy": f"{report['val_accuracy']:.1%}" if "val_accuracy" in report else "–",
        "macro-F1": f"{report['macro_f1']:.3f}" if "macro_f1" in report else "–",
        "training time": duration_text(seconds) if seconds is not None else "–",
        **{k: setting_text(k, flat.get(k)) for k in SHOWN_SETTINGS},
    })
differing = set(config_differences(list(configs.values())))
differing |= {"augment"} if any(k.startswith("augment.") for k in differing) else set()
highlight = [c for c in SHOWN_SETTINGS if c in differing]
shared = [c for c in SHOWN_SETTINGS if c not in differing]
# Only the settings that differ get a column (the table fits the page); the rest are said once.
table = pd.DataFrame(rows).drop(columns=shared) if rows else pd.DataFrame()
said = ", ".join(f"{name.replace('_', ' ')} {rows[0][name]}" for name in shared) if rows else ""
notes = ["Settings that differ between runs are highlighted."] if highlight else []
notes += [f"{'All runs share' if len(rows) > 1 else 'Settings:'} {said}."] if said else []
if notes:
    st.caption(" ".join(notes))
styled = table.style.apply(lambda column: ["background-color: #fef3c7" if column.name in highlight else "" for _ in column])
st.dataframe(styled, hide_index=True, width="stretch", column_config={
    "run": st.column_config.TextColumn(width="medium", pinned=True),  # long names are cut short, so the table fits
    "accuracy": st.column_config.TextColumn(help="Share of validation images classified correctly."),
    "macro-F1": st.column_config.TextColumn(help="A score from 0 to 1 that counts every class equally, so a class "
                                                 "the model ignores pulls it down even when that class is small."),
    "training time": st.column_config.TextColumn(help="All of a run's training, across stops and resumes."),
})

finished = [name for name, report in reports.items() if "val_accuracy" in report]
chosen = st.multiselect("Runs to overlay", finished, default=finished[:2], key="compare_runs")
if chosen:
    histories = {name: pd.DataFrame(store.get(name).read_report()["history"]) for name in chosen}
    left, right = st.columns(2)
    left.plotly_chart(compare_curves_figure(histories, "val_accuracy"), width="stretch", key="cmp_acc")
    right.plotly_chart(compare_curves_figure(histories, "val_loss"), width="stretch", key="cmp_loss")
    per_class = pd.DataFrame([{"run": name, "class": c["class"], "f1": c["f1"]}
                              for name in chosen for c in store.get(name).read_report()["per_class"]])
    st.plotly_chart(compare_f1_figure(per_class), width="stretch", key="cmp_f1")

st.subheader("Transfer learning vs training from scratch")
st.caption("Trains the same architecture from random weights on the same data, epochs and seed, every layer learning, "
           "so the gain from pretrained weights shows in the curves and the final accuracy above. For a like-for-like "
           "view, compare it with a pretrained run that also trains every layer (strategy full); a frozen run "
           "learns far less per epoch.")
pretrained_runs = [name for name in finished if configs[name].pretrained]
if pretrained_runs:
    base = st.selectbox("Pretrained run", pretrained_runs, key="scratch_base")
    if st.button("Train the from-scratch baseline", key="train_scratch"):
        try:
            job = state.job_manager().start(scratch_baseline(configs[base]), label=f"{base}-scratch")
            state.adopt_job(job)
            st.switch_page("pages/train.py")
        except WarmstartError as exc:
            st.error(str(exc))
else:
    st.caption("Finish a run with pretrained weights first.")

st.subheader("Manage runs")
name = st.selectbox("Run", [r["run"] for r in rows], key=state.managed_run.key)
target = store.get(name)
rename_col, download_col, delete_col = st.columns([3, 1, 1])
with rename_col:
    new_name = st.text_input("New name", value=name, key=f"rename_{name}")
    if st.button("Rename", key="do_rename", disabled=new_name.strip() in ("", name)):
        try:
            store.rename(name, new_name)
            state.managed_run.clear()
            st.rerun()
        except WarmstartError as exc:
            st.error(str(exc))
with download_col:
    st.write("")
    st.download_button("Download", lambda: store.zip_bytes(target), file_name=f"{name}.zip", mime="application/zip", key="download_run")
with delete_col:
    st.write("")
    with st.popover("Delete…"):
        st.write(f"Delete **{name}** and all its files? This cannot be undone.")
        if st.button("Yes, delete it", type="primary", key="confirm_delete"):
            try:
                store.delete(name)
                state.managed_run.clear()
                st.rerun()
            except WarmstartError as exc:
                st.error(str(exc))
