"""Compare's "Distil into a smaller model": start a distilled run and compare it with its teacher."""

from __future__ import annotations

from transfer_core import RunDir
from ui import state

from .test_pages import _goto, _no_exception


def test_distil_a_run_then_see_teacher_and_student_side_by_side(app, finished_run):
    app.run()
    at = _goto(app, "compare")
    assert at.selectbox(key="distil_teacher").value == str(finished_run.path)
    student = at.selectbox(key="distil_student")
    assert student.value == "efficientnet_lite0"  # the smallest usable backbone that is not the teacher's
    at.slider(key="distil_temperature").set_value(2.0).run()
    at.button(key="distil_start").click().run()
    _no_exception(at)
    job = state.job_manager().latest()
    config = job.config
    assert config.teacher == str(finished_run.path.resolve()) and config.backbone == "efficientnet_lite0"
    assert config.distill_temperature == 2.0 and config.distill_alpha == 0.5
    job.wait(300)
    assert job.status == "finished", job.error

    at = _goto(at, "compare")
    assert at.selectbox(key="distil_teacher").value == str(finished_run.path)  # the latest student's teacher
    table = at.dataframe[-1].value
    assert list(table["role"]) == ["teacher", "distilled student"]
    assert any("train efficientnet_lite0 without a teacher" in c.value for c in at.caption)
    at.button(key="distil_alone").click().run()  # the same recipe without the teacher, for the comparison
    _no_exception(at)
    alone = state.job_manager().latest()
    assert alone.config == config.replace(teacher=None)
    alone.wait(300)
    assert alone.status == "finished", alone.error

    at = _goto(at, "compare")
    assert list(at.dataframe[-1].value["role"]) == ["teacher", "distilled student", "student trained alone"]
    at.button(key="distil_measure").click().run()
    _no_exception(at)
    table = at.dataframe[-1].value
    assert (table["parameters (M)"] > 0).all() and (table["ms per image, batch 1"] > 0).all()
    assert RunDir(job.run.path).read_config().teacher == config.teacher
