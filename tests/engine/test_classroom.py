"""Classroom mode's engine: sign-in, private folders, session tokens; passwords never on disk."""

from __future__ import annotations

import pytest

from transfer_core import Classroom, Identity, WarmstartError, classroom_from_env


@pytest.fixture
def room(tmp_path):
    return Classroom("owls-2026", "staffroom", tmp_path)


def test_class_and_teacher_passwords_sign_in_and_wrong_ones_are_refused(room):
    assert room.sign_in("Anna", "owls-2026") == Identity("Anna", "student")
    assert room.sign_in("anything", "staffroom").is_teacher
    for wrong in ("", "owls", "OWLS-2026", "owls-2026 "):
        with pytest.raises(WarmstartError, match="not this class's password"):
            room.sign_in("Anna", wrong)
    with pytest.raises(WarmstartError, match="Type your name"):
        room.sign_in("  ", "owls-2026")


def test_a_name_is_one_private_folder_whatever_its_case(room):
    anna = room.user_root(Identity("Anna", "student"))
    assert room.user_root(Identity(" anna ", "student")) == anna
    assert room.user_root(Identity("Anna B", "student")) != anna
    assert room.user_root(Identity("../../etc", "student")).parent == room.home / "users"
    room.remember(Identity("Anna", "student"))
    room.remember(Identity("Ben", "student"))
    assert [name for name, _ in room.students()] == ["Anna", "Ben"]


def test_passwords_are_never_written_to_disk(room, tmp_path):
    room.remember(room.sign_in("Anna", "owls-2026"))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"owls-2026" not in data and b"staffroom" not in data, path


def test_environment_switches_classroom_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("WARMSTART_CLASSROOM_PASSWORD", raising=False)
    assert classroom_from_env(tmp_path) is None  # single-user, as before
    monkeypatch.setenv("WARMSTART_CLASSROOM_PASSWORD", "owls")
    monkeypatch.setenv("WARMSTART_TEACHER_PASSWORD", "owls")
    with pytest.raises(WarmstartError, match="must differ"):
        classroom_from_env(tmp_path)
    monkeypatch.delenv("WARMSTART_TEACHER_PASSWORD")
    room = classroom_from_env(tmp_path)
    with pytest.raises(WarmstartError):
        room.sign_in("x", "")  # no teacher password set: an empty one is not it
