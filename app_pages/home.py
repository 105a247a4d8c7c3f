"""Home: what Warmstart does, the open project's checklist, every project (open, rename, delete), and two ways to begin."""

import time

import streamlit as st

from transfer_core import ProjectStore, WarmstartError, prepare_sample
from ui import auth, state
from ui.wording import ago_text

st.title("Warmstart")
st.markdown(
    "Warmstart turns a folder of labeled photos into an image classifier by starting from a network "
    "that has already learned to see on ImageNet. "
    "It walks you through each choice (what to freeze, how to augment, how to regularize) and explains what each one does. "
    "You watch it train live, inspect its mistakes, and take the trained model away."
)

HINTS = {
    "Data": "choose a sample or upload labeled images",
    "Backbone": "pick the pretrained network and what to fine-tune",
    "Settings": "choose a preset, augmentation and regularization",
    "Train": "watch the curves while it learns",
    "Evaluate": "see which classes get confused and why",
}
opened = state.project()
st.subheader(f"Progress in “{opened.name}”" if opened else "Your progress")
for number, step in enumerate(state.STEPS, start=1):
    done = state.is_done(step)
    icon = ":green[:material/check_circle:]" if done else ":gray[:material/radio_button_unchecked:]"
    st.markdown(f"{icon} **{number}. {step}**: {HINTS[step]}" + (" · done" if done else ""))


def _start_with_sample() -> None:
    """A new project on the digits sample with the Quick recipe, straight to Train."""
    try:
        folder = prepare_sample("digits", state.workspace() / "samples")
        state.set_dataset(state.DatasetChoice("Handwritten digits (sample)", str(folder)), new_project=True)
    except WarmstartError as exc:
        state.home_error.set(str(exc))
        return
    state.apply_preset("Quick")
    state.mark_done("Backbone")
    state.pending_page.set("app_pages/train.py")  # st.switch_page cannot run inside a callback


def _upload_new() -> None:
    state.close_project()  # the Data page starts a new project from what is uploaded
    state.data_tab.set("Upload a zip")
    state.pending_page.set("app_pages/data.py")


st.subheader("Start a new project")
left, right = st.columns(2)
left.button("Try a sample dataset", type="primary", on_click=_start_with_sample, width="stretch",
            help="A new project with 300 handwritten digits and the Quick recipe; training takes well under a minute.")
right.button("Upload my images", width="stretch", on_click=_upload_new,
             help="A new project from your own labeled images (a zip of class folders, images per class, or a CSV).")
if error := state.home_error.take():
    st.error(error)


def _open(slug: str) -> None:
    try:
        state.open_project(state.project_store().get(slug))
    except WarmstartError as exc:
        state.home_error.set(str(exc))


def _project_row(project) -> None:
    """One project: what it holds, how well it did, when it was last touched; open, rename, delete."""
    summary = project.summary()
    is_open = opened is not None and project.slug == opened.slug
    with st.container(border=True):
        name_col, facts_col, open_col, manage_col = st.columns([3, 4, 1.2, 1.2], vertical_alignment="center")
        name_col.markdown(f"**{project.name}**" + (" · :green[open]" if is_open else ""))
        facts = [f"{summary.images:,} images" if summary.images is not None else "no dataset yet"]
        facts += [f"{summary.classes} classes"] if summary.classes is not None else []
        facts += [f"best accuracy {summary.best_accuracy:.1%}" if summary.best_accuracy is not None
                  else f"{summary.runs} run{'s' if summary.runs != 1 else ''}, none finished" if summary.runs else "no runs yet"]
        facts += [f"active {ago_text(time.time() - summary.last_activity)}"]
        facts_col.caption(" · ".join(facts))
        open_col.button("Open", key=f"open_{project.slug}", on_click=_open, args=(project.slug,), disabled=is_open,
                        width="stretch")
        with manage_col.popover("Manage", width="stretch"):
            new_name = st.text_input("Name", value=project.name, key=f"name_{project.slug}")
            if st.button("Rename", key=f"rename_{project.slug}"):
                try:
                    if new_name.strip() != project.name:
                        state.project_store().rename(project.slug, new_name)
                        st.toast(f"Renamed to “{' '.join(new_name.split())}”.")
                    st.rerun()
                except WarmstartError as exc:
                    st.error(str(exc))
            st.divider()
            st.write(f"Delete **{project.name}** with its uploads, corrections and {summary.runs} run"
                     f"{'s' if summary.runs != 1 else ''}? This cannot be undone.")
            if st.button("Yes, delete this project", type="primary", key=f"delete_{project.slug}"):
                try:
                    state.project_store().delete(project.slug)
                    if is_open:
                        state.close_project()
                    st.rerun()
                except WarmstartError as exc:
                    st.error(str(exc))


def _class_overview() -> None:
    """The teacher's view of the class: every student's projects and best result; open one to look inside."""
    room, viewing = auth.classroom(), state.viewed_student_name()
    st.subheader("Your class")
    if viewing:
        st.info(f"You are looking at **{viewing}**'s projects; what you open, train or delete is theirs.")
        st.button("Back to my own projects", on_click=state.view_student, args=(None,), key="view_own")
    students = room.students()
    if not students:
        st.caption("No student has signed in yet. Give them this page's address and the class password.")
    for name, folder in students:
        projects = ProjectStore(folder).projects()
        summaries = [p.summary() for p in projects]
        best = max((s.best_accuracy for s in summaries if s.best_accuracy is not None), default=None)
        last = max((s.last_activity for s in summaries), default=None)
        cells = st.columns([3, 5, 1.4], vertical_alignment="center")
        cells[0].markdown(f"**{name}**")
        facts = [f"{len(projects)} project{'s' if len(projects) != 1 else ''}"]
        facts += [f"best accuracy {best:.1%}"] if best is not None else []
        facts += [f"active {ago_text(time.time() - last)}"] if last is not None else []
        cells[1].caption(" · ".join(facts))
        cells[2].button("View", key=f"view_{folder.name}", on_click=state.view_student, args=(folder,), width="stretch")


who = auth.identity()
if who is not None and who.is_teacher:
    _class_overview()

projects = state.project_store().projects()
viewing = state.viewed_student_name()
st.subheader(f"{viewing}'s projects" if viewing else "Your projects")
if not projects:
    st.caption("None yet. A project keeps one dataset, the recipe you are editing and every run trained on it; "
               "it is saved as you go, so you can close the browser and pick up where you left off.")
for project in projects:
    _project_row(project)

if target := state.pending_page.take():
    st.switch_page(target)
