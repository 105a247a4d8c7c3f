"""Train: start, queue, stop and resume; live progress, curves and log from the run's worker process."""

import streamlit as st

from transfer_core import RunDir, WarmstartError, display_name
from ui import state
from ui.charts import epoch_curves_figure, lr_figure, step_loss_figure
from ui.progress import RunProgress, summarize_events
from ui.wording import recipe_text

st.title("4 · Train")

manager = state.job_manager()
job = state.current_job()

try:
    config = state.training_config()
except WarmstartError as exc:
    config = None
    st.error(str(exc))

if state.dataset() is None:
    st.info("Choose a dataset on the Data page first.")


def _start(config) -> None:
    try:
        state.start_training(config)
        st.rerun()
    except WarmstartError as exc:
        st.error(str(exc))


busy = bool(manager.active())  # any run of the server: they share one machine
following = job is not None and job.active  # this page's run is training or waiting
cannot_start = config is None or state.dataset() is None
left, middle, right, _ = st.columns([1, 1, 1, 2])
if following:
    # The main button shows what is happening; queueing more is a separate, deliberate choice.
    left.button("Training…" if job.status == "running" else "Waiting in the queue…", type="primary", disabled=True,
                width="stretch", key="start_training")
    same = config is not None and config == job.config
    if right.button("Queue another run", disabled=cannot_start or same, width="stretch", key="queue_another",
                    help="This recipe is already training: change a setting to queue a different run." if same
                    else "Trains the current settings after the runs already waiting."):
        _start(config)
else:
    start_label = "Queue training" if busy else "Start training"
    start_help = "Another run is training; this one will wait its turn and start on its own." if busy else None
    if left.button(start_label, type="primary", disabled=cannot_start, width="stretch", help=start_help, key="start_training"):
        _start(config)
if middle.button("Stop" if job is None or job.status != "queued" else "Cancel", disabled=job is None or not job.active,
                 width="stretch", help="Stops after the current batch; the best model so far is kept."):
    manager.cancel(job)
    st.toast("Stopping after the current batch…" if job.status == "running" else "Removed from the queue.")

if config is not None and not (job is not None and job.active):
    st.caption(recipe_text(config), help="Change any of it on the Backbone and Settings pages.")


def _render_progress(progress: RunProgress) -> None:
    st.progress(progress.fraction, text=progress.text)
    if progress.cache_summary:
        st.caption(progress.cache_summary)
    if progress.backbone_choice:
        st.info(progress.backbone_choice, icon=":material/recommend:")


def _render_charts(progress: RunProgress, key: str) -> None:
    if not (progress.epochs_table.empty and progress.steps_table.empty):
        a, b = st.columns(2)
        if not progress.epochs_table.empty:
            a.plotly_chart(epoch_curves_figure(progress.epochs_table, "loss"), width="stretch", key=f"{key}_curve_loss")
            b.plotly_chart(epoch_curves_figure(progress.epochs_table, "accuracy"), width="stretch", key=f"{key}_curve_acc")
        if not progress.steps_table.empty:
            c, d = st.columns(2)
            c.plotly_chart(step_loss_figure(progress.steps_table), width="stretch", key=f"{key}_curve_steps")
            d.plotly_chart(lr_figure(progress.steps_table), width="stretch", key=f"{key}_curve_lr")


def _render_log(progress: RunProgress) -> None:
    with st.expander("Event log", expanded=True):
        st.code("\n".join(progress.log[-200:]) or "No events yet.", language=None, wrap_lines=True)


def _render(records: list[dict], key: str = "current") -> None:
    progress = summarize_events(records)
    _render_progress(progress)
    _render_charts(progress, key)
    _render_log(progress)


def _unsaved_results(current) -> None:
    """When the run folder refused writes: say so, offer a retry and a download from memory."""
    if not current.unsaved:
        return
    st.error(
        f"The run folder could not be written ({current.unsaved_reason or 'unknown error'}); "
        f"{', '.join(current.unsaved)} are kept in memory. Free some disk space and retry, or download them now."
    )
    retry, download, _ = st.columns([1, 1, 3])
    if retry.button("Retry saving", key="retry_save"):
        left_over = current.retry_saving()
        st.toast("Saved." if not left_over else "Still cannot write: " + ", ".join(left_over))
        st.rerun()
    download.download_button(
        "Download results", current.results_bundle, file_name=f"{current.run.name}.zip",
        mime="application/zip", key="download_unsaved",
    )


@st.fragment(run_every=1.0)
def live_view() -> None:
    """Polls the background job once a second (progress and log); reruns the page when the run ends."""
    current = state.current_job()
    if current is None:
        return
    st.subheader(f"Run {display_name(current.run)}")
    if current.status == "queued":
        ahead = manager.runs_ahead(current)
        st.info(f"Waiting: {ahead} run{'s' if ahead != 1 else ''} ahead. It starts on its own when a slot frees up.")
    _unsaved_results(current)
    _render_progress(summarize_events(current.events()))
    if current.error:
        st.error(current.error)
    if not current.active:
        st.rerun(scope="app")


@st.fragment(run_every=4.0)
def live_charts() -> None:
    """The curves, redrawn every few seconds: building and drawing four charts each second would take
    CPU from the training itself on a small machine."""
    current = state.current_job()
    if current is not None:
        progress = summarize_events(current.events())
        _render_charts(progress, "current")
        _render_log(progress)


def _resume_button(run: RunDir, key: str) -> None:
    st.caption("This run ended before its last epoch. Resuming continues from its last complete epoch and ends "
               "where an uninterrupted run would.")
    if st.button("Resume this run", key=key):
        try:
            state.adopt_job(manager.resume(run))
            st.rerun()
        except WarmstartError as exc:
            st.error(str(exc))


def _past_runs(shown: str | None) -> None:
    """Earlier runs from the store (not ``shown``, drawn above); stopped or interrupted ones can be resumed."""
    runs = [r for r in state.run_store().runs() if str(r.path) != shown and r.status() in ("finished", "stopped", "interrupted")]
    if not runs:
        return
    st.subheader("Earlier runs of this project")
    names = {str(r.path): display_name(r) for r in runs}
    path = st.selectbox("Show run", list(names), key="train_past_run", format_func=names.get)
    run = RunDir(path)
    if run.status() in ("stopped", "interrupted"):
        _resume_button(run, "resume_run")
    _render(run.read_events(), key="past")


if job is not None and job.active:
    live_view()
    live_charts()
else:
    if job is not None:
        st.subheader(f"Run {display_name(job.run)}")
        _unsaved_results(job)
        if job.error:
            st.error(job.error)
        elif job.status == "finished":
            state.mark_done("Train")
            st.success("Training finished. Open Evaluate to see where the model is right and wrong.")
            if st.button("Evaluate this run", type="primary"):
                state.select_run(job.run)
                st.switch_page("app_pages/evaluate.py")
        elif job.status == "stopped":
            st.warning("This run was stopped; its best checkpoint is kept and can be evaluated or resumed.")
            _resume_button(job.run, "resume_current")
        elif job.status == "interrupted":
            st.warning("The training process of this run ended unexpectedly (killed, or out of memory); its last "
                       "checkpoint is kept and the other runs were not affected.")
            _resume_button(job.run, "resume_current")
        elif job.status == "cancelled":
            st.info("This run was removed from the queue before it started.")
        _render(job.events())
    _past_runs(shown=str(job.run.path) if job is not None else None)
