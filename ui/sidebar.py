"""The sidebar shown on every page: project, dataset, backbone, run status."""

from __future__ import annotations

import streamlit as st

from transfer_core import display_name

from . import auth, state
from .progress import summarize_events


def render() -> None:
    with st.sidebar:
        who = auth.identity()
        if who is not None:
            viewing = state.viewed_student_name()
            st.markdown(f"**Signed in:** {who.name}" + (f" · viewing **{viewing}**'s projects" if viewing else ""))
            st.button("Sign out", key="sign_out", on_click=auth.sign_out)
        st.markdown("### Where you are")
        opened = state.project()
        st.markdown(f"**Project:** {opened.name}" if opened else "**Project:** none yet (start one on Home or Data)")
        choice = state.dataset()
        values = state.settings()
        if choice is None:
            st.markdown("**Dataset:** none yet")
        else:
            indexes = state.dataset_indexes(quiet=True)
            size = f" · {len(indexes[0]) + len(indexes[1]):,} images, {len(indexes[0].classes)} classes" if indexes else ""
            st.markdown(f"**Dataset:** {choice.name}{size}")
        backbone = "auto (chosen when training starts)" if state.auto_backbone() else values["backbone"]
        st.markdown(f"**Backbone:** {backbone} · {values['strategy']}")
        st.markdown(f"**Recipe:** {state.preset() or 'custom'} · {values['epochs']} epochs")
        job = state.current_job()
        if job is None:
            st.markdown("**Run:** not started")
        else:
            st.fragment(run_every=2.0 if job.active else None)(_run_status)()


def _run_status() -> None:
    """The latest run's status, refreshed every two seconds while it trains."""
    job = state.current_job()
    progress = summarize_events(job.events())
    st.markdown(f"**Run:** {display_name(job.run)}")
    if job.status == "queued":
        ahead = state.job_manager().runs_ahead(job)
        st.caption(f"Waiting: {ahead} run{'s' if ahead != 1 else ''} ahead")
    else:
        st.caption(progress.text if job.status == "running" else f"Status: {job.status}")
    if job.status == "running":
        st.progress(progress.fraction)
