"""Classroom mode in the app: sign-in gate, private projects, no reaching another student's work, the teacher's view."""

from __future__ import annotations

import pytest

from ui import auth, state

from .conftest import new_app
from .test_pages import _goto, _no_exception


@pytest.fixture
def classroom(workspace, monkeypatch):
    monkeypatch.setenv("WARMSTART_CLASSROOM_PASSWORD", "owls-2026")
    monkeypatch.setenv("WARMSTART_TEACHER_PASSWORD", "staffroom")
    auth._classroom_for.clear()
    yield workspace
    auth._classroom_for.clear()


def _sign_in(name: str, password: str, project: str | None = None):
    at = new_app()
    if project:
        at.query_params["project"] = project
    at.run()
    assert at.title[0].value == "Warmstart · classroom"
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click().run()
    _no_exception(at)
    return at


def _start_sample_project(at):
    at.switch_page("app_pages/home.py").run()
    next(b for b in at.button if b.label == "Try a sample dataset").click().run()
    _no_exception(at)
    return at.session_state["project"]


def test_nothing_renders_before_sign_in_and_a_wrong_password_is_refused(classroom):
    at = new_app()
    at.run()
    assert [t.value for t in at.title] == ["Warmstart · classroom"]  # no page, no project list
    refused = _sign_in("Anna", "owls")
    assert any("not this class's password" in e.value for e in refused.error)
    assert "identity" not in refused.session_state


def test_two_students_never_see_each_others_projects_even_by_guessing(classroom):
    anna = _sign_in("Anna", "owls-2026")
    assert anna.title[0].value == "Warmstart"
    slug = _start_sample_project(anna)
    anna_home = _goto(anna, "home")
    assert any(m.value.startswith("**Handwritten digits") for m in anna_home.markdown)

    ben = _sign_in("Ben", "owls-2026")
    _goto(ben, "home")
    assert not any(m.value.startswith("**Handwritten digits") for m in ben.markdown)
    assert any("None yet" in c.value for c in ben.caption)
    # Ben types Anna's project into the address and signs in: it is not one of his, so nothing opens.
    guess = _sign_in("Ben", "owls-2026", project=slug)
    for page in ("data", "evaluate", "compare"):
        _goto(guess, page)
        assert any("No " in i.value for i in guess.info)
    assert "session" not in guess.query_params  # nothing in the address grants access


def test_after_a_refresh_signing_in_again_reopens_the_same_project(classroom):
    anna = _sign_in("Anna", "owls-2026")
    slug = _start_sample_project(anna)
    refreshed = new_app()
    refreshed.query_params["project"] = slug
    refreshed.run()
    assert refreshed.title[0].value == "Warmstart · classroom"  # a refresh is a new session: sign in again
    again = _sign_in("anna", "owls-2026", project=slug)  # the same name in another case is the same person
    _goto(again, "data")
    assert again.subheader[0].value == "Dataset: Handwritten digits (sample)"


def test_the_teacher_sees_every_student_and_can_open_their_projects(classroom):
    anna = _sign_in("Anna", "owls-2026")
    _start_sample_project(anna)
    _sign_in("Ben", "owls-2026")
    teacher = _sign_in("Mrs Kay", "staffroom")
    _goto(teacher, "home")
    assert teacher.session_state["identity"].is_teacher
    assert [m.value for m in teacher.markdown if m.value in ("**Anna**", "**Ben**")] == ["**Anna**", "**Ben**"]
    next(b for b in teacher.button if b.label == "View" and b.key.startswith("view_anna")).click().run()
    _no_exception(teacher)
    assert any("looking at **Anna**'s projects" in i.value for i in teacher.info)
    assert any(m.value.startswith("**Handwritten digits") for m in teacher.markdown)
    next(b for b in teacher.button if b.label == "Open").click().run()
    _goto(teacher, "data")
    assert teacher.subheader[0].value == "Dataset: Handwritten digits (sample)"


def test_single_user_server_has_no_sign_in(workspace, monkeypatch):
    monkeypatch.delenv("WARMSTART_CLASSROOM_PASSWORD", raising=False)
    at = new_app()
    at.run()
    _no_exception(at)
    assert at.title[0].value == "Warmstart" and state.user_root() == workspace


def test_a_student_named_like_the_teacher_never_gets_the_teachers_projects(classroom):
    teacher = _sign_in("Mrs Kay", "staffroom")
    _start_sample_project(teacher)
    student = _sign_in("mrs kay", "owls-2026")
    _goto(student, "home")
    assert not any(m.value.startswith("**Handwritten digits") for m in student.markdown)
    for name in ("Teacher", "teacher"):
        assert not any(m.value.startswith("**Handwritten digits") for m in _goto(_sign_in(name, "owls-2026"), "home").markdown)


def test_signing_out_on_settings_and_in_as_someone_else_shows_the_recipe_not_stale_controls(classroom):
    cara = _sign_in("Cara", "owls-2026")
    _start_sample_project(cara)
    cara = _goto(cara, "settings")
    next(b for b in cara.button if b.label == "Sign out").click().run()
    cara.text_input(key="sign_in_name").input("Dan")
    cara.text_input(key="sign_in_password").input("owls-2026")
    next(b for b in cara.button if b.label == "Sign in").click().run()
    _no_exception(cara)
    dan = _goto(cara, "settings")
    assert dan.number_input(key="w_batch_size").value == dan.session_state["settings"]["batch_size"] == 32
    assert dan.number_input(key="w_epochs").value == 8


def test_the_teacher_viewing_a_student_changes_nothing_of_theirs(classroom):
    anna = _sign_in("Anna", "owls-2026")
    slug = _start_sample_project(anna)
    teacher = _sign_in("Mrs Kay", "staffroom")
    _goto(teacher, "home")
    next(b for b in teacher.button if b.label == "View" and b.key.startswith("view_anna")).click().run()
    folder = next(path for name, path in auth.classroom().students() if name == "Anna")
    project_file = folder / "projects" / slug / "project.json"
    before = project_file.read_bytes()
    next(b for b in teacher.button if b.label == "Open").click().run()
    for page in ("data", "settings", "evaluate", "compare", "home"):
        _goto(teacher, page)
    assert project_file.read_bytes() == before
