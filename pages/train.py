"""Train: start and stop; live progress, curves and log from the background job."""

import streamlit as st

from transfer_core import RunDir, WarmstartError
from ui import state
from ui.charts import epoch_curves_figure, lr_figure, step_loss_figure
from ui.progress import summarize_events

st.title("4 · Train")

manager = state.job_manager()
job = manager.latest()

try:
    config = state.config()
except WarmstartError as exc:
    config = None
    st.error(str(exc))

if state.dataset() is None:
    st.info("Choose a dataset on the Data page first.")

left, middle, _ = st.columns([1, 1, 3])
running = job is not None and job.active
if left.button("Start training", type="primary", disabled=running or config is None or state.dataset() is None, width="stretch"):
    try:
        job = manager.start(config)
        state.select_run(job.run.name)
        st.rerun()
    except WarmstartError as exc:
        st.error(str(exc))
if middle.button("Stop", disabled=not running, width="stretch", help="Stops after the current batch; the best model so far is kept."):
    job.stop()
    st.toast("Stopping after the current batch…")

if config is not None and not running:
    st.caption(
        f"Recipe: {config.backbone}, {config.strategy.value}, {config.epochs} epochs, batch {config.batch_size}, "
        f"augmentation {config.augment.preset_name or 'custom'}, {config.optimizer.value} + {config.schedule.value}."
    )


def _render(records: list[dict]) -> None:
    progress = summarize_events(records)
    st.progress(progress.fraction, text=progress.text)
    if progress.cache_summary:
        st.caption(progress.cache_summary)
    if not (progress.epochs_table.empty and progress.steps_table.empty):
        a, b = st.columns(2)
        if not progress.epochs_table.empty:
            a.plotly_chart(epoch_curves_figure(progress.epochs_table, "loss"), width="stretch", key="curve_loss")
            b.plotly_chart(epoch_curves_figure(progress.epochs_table, "accuracy"), width="stretch", key="curve_acc")
        if not progress.steps_table.empty:
            c, d = st.columns(2)
            c.plotly_chart(step_loss_figure(progress.steps_table), width="stretch", key="curve_steps")
            d.plotly_chart(lr_figure(progress.steps_table), width="stretch", key="curve_lr")
    with st.expander("Event log", expanded=True):
        st.code("\n".join(progress.log[-200:]) or "No events yet.", language=None)


@st.fragment(run_every=1.0)
def live_view() -> None:
    """Polls the background job once a second; reruns the page when the run ends."""
    current = manager.latest()
    if current is None:
        return
    st.subheader(f"Run {current.run.name}")
    _render(current.events())
    if current.error:
        st.error(current.error)
    if not current.active:
        st.rerun(scope="app")


if running:
    live_view()
elif job is not None:
    st.subheader(f"Run {job.run.name}")
    if job.error:
        st.error(job.error)
    elif job.status == "finished":
        state.mark_done("Train")
        st.success("Training finished. Open Evaluate to see where the model is right and wrong.")
        if st.button("Evaluate this run", type="primary"):
            state.select_run(job.run.name)
            st.switch_page("pages/evaluate.py")
    elif job.status == "stopped":
        st.warning("This run was stopped; its best checkpoint is kept and can be evaluated.")
    _render(job.events())
else:
    runs = [r for r in state.run_store().runs() if r.status() in ("finished", "stopped")]
    if runs:
        st.subheader("Earlier runs")
        name = st.selectbox("Show run", [r.name for r in runs], key="train_past_run")
        _render(RunDir(state.run_store().root / name).read_events())
