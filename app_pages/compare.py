"""Compare: the project's runs side by side (or every project's), overlaid curves, per-class F1,
transfer vs from scratch; rename, delete, download. Runs are keyed by folder: names repeat across projects."""

from pathlib import Path

import pandas as pd
import streamlit as st

from transfer_core import (
    RunDir, RunStore, WarmstartError, config_differences, dataset_name, flatten_config, learning_curve, scratch_baseline,
)
from ui import distill, insight, state
from ui.charts import compare_curves_figure, compare_f1_figure, learning_curve_figure
from ui.wording import duration_text, setting_text

st.title("Compare runs")
every = st.toggle("All projects", key="compare_all", help="Show the runs of every project, not only this one's.")
entries = state.listed_runs(every)
if not entries:
    st.info("No runs yet: train one on the Train page." + ("" if every else " Switch on \"All projects\" to see other projects' runs."))
    st.stop()

SHOWN_SETTINGS = ["backbone", "pretrained", "strategy", "epochs", "lr", "optimizer", "augment", "batch_size", "image_size"]
rows, configs, reports, labels, class_sets = [], {}, {}, {}, {}
for entry in entries:
    run, key = entry.run, str(entry.run.path)
    try:
        config = run.read_config()
    except WarmstartError:
        continue
    configs[key] = config
    report = reports[key] = run.read_report() or {}
    labels[key] = f"{entry.project} · {entry.label}" if every else entry.label
    class_sets[key] = tuple(c["class"] for c in report.get("per_class", []))
    flat = flatten_config(config) | {"augment": config.augment.preset_name or "custom"}
    seconds = insight.total_training_seconds(key, insight.events_stamp(run))
    rows.append({
        "run": labels[key], "dataset": entry.dataset or dataset_name(config), "status": run.status(),
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

finished = [key for key, report in reports.items() if "val_accuracy" in report]
# Curves of runs trained on different classes are not comparable: by default overlay the newest runs of one class set.
same_classes = [key for key in finished if class_sets[key] == class_sets[finished[0]]] if finished else []
chosen = st.multiselect("Runs to overlay", finished, default=same_classes[:2], key="compare_runs", format_func=labels.get)
if len({class_sets[key] for key in chosen}) > 1:
    st.warning("These runs were trained on different classes, so their accuracies and curves do not measure the same task.")
if chosen:
    histories = {labels[key]: pd.DataFrame(reports[key]["history"]) for key in chosen}
    left, right = st.columns(2)
    left.plotly_chart(compare_curves_figure(histories, "val_accuracy"), width="stretch", key="cmp_acc")
    right.plotly_chart(compare_curves_figure(histories, "val_loss"), width="stretch", key="cmp_loss")
    per_class = pd.DataFrame([{"run": labels[key], "class": c["class"], "f1": c["f1"]}
                              for key in chosen for c in reports[key]["per_class"]])
    st.plotly_chart(compare_f1_figure(per_class), width="stretch", key="cmp_f1")

st.subheader("Learning curve: what more labels bought")
curve = learning_curve([entry.run for entry in state.listed_runs(False)])  # this project's rounds
if curve.drawable:
    left_out = f" {curve.left_out} run(s) with other settings are left out." if curve.left_out else ""
    st.caption("Each point is a finished run, placed by the images it trained on with a real label (the dataset plus "
               "the pool images labelled by then); runs that also used pseudo-labels form their own line. All share the "
               f"same settings and validation images, so only the labels differ.{left_out}")
    st.plotly_chart(learning_curve_figure(pd.DataFrame(curve.points)), width="stretch", key="cmp_learning")
else:
    st.caption("Label pool images on the Data page and retrain: each round's run adds a point here, accuracy against "
               "the number of labelled images.")

st.subheader("Transfer learning vs training from scratch")
st.caption("Trains the same architecture from random weights on the same data, epochs and seed, every layer learning, "
           "so the gain from pretrained weights shows in the curves and the final accuracy above. For a like-for-like "
           "view, compare it with a pretrained run that also trains every layer (strategy full); a frozen run "
           "learns far less per epoch.")
pretrained_runs = [key for key in finished if configs[key].pretrained]
if pretrained_runs:
    base = st.selectbox("Pretrained run", pretrained_runs, key="scratch_base", format_func=labels.get)
    if st.button("Train the from-scratch baseline", key="train_scratch"):
        state.train_and_follow(lambda: scratch_baseline(configs[base]), label="scratch", store=RunStore(Path(base).parent))
else:
    st.caption("Finish a run with pretrained weights first.")

distill.render([entry.run for entry in state.listed_runs(False)])

st.subheader("Manage runs")
managed = st.selectbox("Run", list(configs), key=state.managed_run.key, format_func=labels.get)
target = RunDir(managed)
store, name = RunStore(target.path.parent), target.name
rename_col, download_col, delete_col = st.columns([3, 1, 1])
with rename_col:
    new_name = st.text_input("New name", value=name, key=f"rename_{name}",
                             help="Renames the run's folder; the list then shows your name first.")
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
        st.write(f"Delete **{labels[managed]}** and all its files? This cannot be undone.")
        if st.button("Yes, delete it", type="primary", key="confirm_delete"):
            try:
                store.delete(name)
                state.managed_run.clear()
                st.rerun()
            except WarmstartError as exc:
                st.error(str(exc))
