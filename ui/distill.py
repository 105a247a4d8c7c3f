"""Compare's "Distil into a smaller model": start a run that learns from a finished one, and show the
teacher, the student trained alone and the distilled student side by side (accuracy, size, CPU time).

The distilled run is an ordinary run of the project (curves, evaluation, export); its config names
its teacher, which is how the table finds it again.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from transfer_core import RunDir, WarmstartError, display_name, distillation_config, list_backbones, measure_run
from transfer_core.models.backbone import Availability, WeightsSource

from . import state

__all__ = ["render", "side_by_side"]

ROLES = {"teacher": "teacher", "distilled": "distilled student", "alone": "student trained alone"}


def _usable_backbones() -> list:
    """Backbones a run can start with here and now (weights bundled or already downloaded)."""
    return [s for s in list_backbones() if s.source is not WeightsSource.LOCAL and s.availability() is not Availability.DOWNLOAD]


def side_by_side(teacher: RunDir, runs: list[RunDir]) -> list[tuple[str, RunDir]]:
    """``(role, run)`` for the teacher, the finished runs distilled from it, and the finished runs of those
    students' backbones trained without a teacher on the same data (what distillation is measured against)."""
    teacher_path = str(teacher.path.resolve())
    data = teacher.read_config().data
    configs = {}
    for run in runs:
        try:
            if run.read_report() is not None:
                configs[run] = run.read_config()
        except WarmstartError:
            continue
    distilled = [run for run, config in configs.items() if config.teacher == teacher_path]
    students = {configs[run].backbone for run in distilled}
    alone = [run for run, config in configs.items() if config.teacher is None and config.backbone in students
             and config.data == data and run.path != teacher.path]
    return [("teacher", teacher), *(("distilled", run) for run in distilled), *(("alone", run) for run in alone)]


def _default_teacher(finished: list[RunDir]) -> str:
    """The teacher of the most recent distilled run (so its comparison shows), else the most accurate run."""
    by_resolved = {str(run.path.resolve()): str(run.path) for run in finished}
    for run in sorted(finished, key=RunDir.last_activity, reverse=True):
        teacher = run.read_config().teacher
        if teacher in by_resolved:
            return by_resolved[teacher]
    return str(max(finished, key=RunDir.final_accuracy).path)


def render(runs: list[RunDir]) -> None:
    """The section: teacher, student and settings, the button, and the comparison for the chosen teacher."""
    st.subheader("Distil into a smaller model")
    st.caption("A finished run (the teacher) trains a new model (the student), usually a smaller, faster backbone: the "
               "student learns from the labels and from how the teacher spreads its confidence over the classes. "
               "Same data, split and recipe as the teacher.")
    finished = [run for run in runs if run.final_accuracy() is not None and run.checkpoint_file.exists()]
    if not finished:
        st.caption("Finish a run first: it becomes the teacher.")
        return
    by_path = {str(run.path): run for run in finished}
    chosen = st.selectbox("Teacher", list(by_path), format_func=lambda path: display_name(by_path[path]), key="distil_teacher",
                          index=list(by_path).index(_default_teacher(finished)),
                          help="Any finished run; by default the teacher of the latest distilled run, else the most accurate run.")
    teacher = by_path[chosen]
    teacher_backbone = teacher.read_config().backbone
    specs = sorted(_usable_backbones(), key=lambda s: s.params or 0)
    names = [s.name for s in specs]
    default = next((i for i, s in enumerate(specs) if s.name != teacher_backbone), 0)
    left, middle, right = st.columns(3)
    student = left.selectbox("Student backbone", names, index=default, key="distil_student",
                             help="Usually smaller than the teacher's: the point is a model that is cheaper to run.")
    temperature = middle.slider("Temperature T", 1.0, 10.0, 4.0, 0.5, key="distil_temperature",
                                help="Higher softens both models' outputs, so the student sees more of how the teacher "
                                     "ranks the wrong classes.")
    alpha = right.slider("Weight of the teacher (alpha)", 0.0, 1.0, 0.5, 0.05, key="distil_alpha",
                         help="0 learns from the labels only, 1 from the teacher only.")
    if st.button(f"Distil {display_name(teacher)} into {student}", key="distil_start", type="primary"):
        state.train_and_follow(lambda: distillation_config(teacher.path, student, distill_alpha=alpha, distill_temperature=temperature),
                               label="distilled")
    rows = side_by_side(teacher, runs)
    if len(rows) < 2:
        st.caption("No finished distilled student of this teacher yet.")
        return
    _comparison(rows)


def _comparison(rows: list[tuple[str, RunDir]]) -> None:
    owner = tuple((str(run.path), run.checkpoint_file.stat().st_mtime_ns) for _, run in rows)
    costs = state.distil_costs.get(owner)
    table = pd.DataFrame([{
        "role": ROLES[role], "run": display_name(run), "backbone": run.read_config().backbone, "accuracy": run.final_accuracy(),
        **({"parameters (M)": costs[i].parameters / 1e6, "ms per image, batch 1": costs[i].ms_per_image_batch1,
            "ms per image, batch 32": costs[i].ms_per_image_batch32} if costs else {}),
    } for i, (role, run) in enumerate(rows)])
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "parameters (M)": st.column_config.NumberColumn(format="%.2f"),
        "ms per image, batch 1": st.column_config.NumberColumn(format="%.1f"),
        "ms per image, batch 32": st.column_config.NumberColumn(format="%.1f"),
    })
    if costs is None and st.button("Measure size and CPU time", key="distil_measure",
                                   help="Loads each model and times it on this machine's CPU (a few seconds per model)."):
        try:
            with st.spinner("Timing each model on this CPU…"):
                state.distil_costs.set(owner, [measure_run(run) for _, run in rows])
        except WarmstartError as exc:
            st.error(str(exc))
        st.rerun()
    if not any(role == "alone" for role, _ in rows):
        student = next(run for role, run in rows if role == "distilled")
        backbone = student.read_config().backbone
        st.caption(f"To see what the teacher added, train {backbone} without a teacher on this data: it then appears "
                   "here as the student trained alone.")
        if st.button(f"Train {backbone} alone", key="distil_alone", help="The distilled student's exact recipe, without the teacher."):
            state.train_and_follow(lambda: student.read_config().replace(teacher=None), label="alone")
