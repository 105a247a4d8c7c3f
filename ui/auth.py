"""Sign-in for classroom mode (see transfer_core/classroom.py); a no-op on a single-user server.

The gate runs before navigation, so nothing of the app renders for a visitor who has not signed
in. The sign-in is kept in the browser session only, never in the address: a link copied from a
classmate's screen opens a sign-in form, not their work. After a refresh one signs in again and
the project in the address reopens (it is looked up among the signed-in person's own projects).
"""

from __future__ import annotations

import hashlib
import os
import time

import streamlit as st

from transfer_core import Classroom, Identity, WarmstartError, classroom_from_env, workspace_home

__all__ = ["classroom", "gate", "identity", "sign_out"]


@st.cache_resource
def _classroom_for(home: str, fingerprint: str) -> Classroom | None:
    """One Classroom per workspace and password setting (the digests are made once, at start-up)."""
    return classroom_from_env(workspace_home())


def classroom() -> Classroom | None:
    """The server's classroom, or None when ``WARMSTART_CLASSROOM_PASSWORD`` is not set."""
    settings = (os.environ.get("WARMSTART_CLASSROOM_PASSWORD"), os.environ.get("WARMSTART_TEACHER_PASSWORD"))
    if settings[0] is None:
        return None
    fingerprint = hashlib.sha256(repr(settings).encode("utf-8")).hexdigest()  # a cache key, never stored
    return _classroom_for(str(workspace_home()), fingerprint)


def identity() -> Identity | None:
    """Who is signed in to this session (None on a single-user server or before signing in)."""
    return st.session_state.get("identity")


def gate() -> None:
    """In classroom mode, show the sign-in form and stop until the visitor has signed in."""
    try:
        room = classroom()
    except WarmstartError as exc:
        st.error(str(exc))
        st.stop()
    if room is None or identity() is not None:
        return
    _sign_in_form(room)
    st.stop()


def _signed_in(room: Classroom, who: Identity) -> None:
    st.session_state["identity"] = who
    if not who.is_teacher:
        room.remember(who)


def _sign_in_form(room: Classroom) -> None:
    st.title("Warmstart · classroom")
    st.caption("Sign in with your name and the class password. Your projects are yours: no one else in the class "
               "can see or change them. Use the same name next time to find them again.")
    with st.form("sign_in", clear_on_submit=True):  # the password does not stay in the session
        name = st.text_input("Your name", key="sign_in_name")
        password = st.text_input("Class password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            who = room.sign_in(name, password)
        except WarmstartError as exc:
            time.sleep(0.5)  # slows guessing down a little
            st.error(str(exc))
            return
        _signed_in(room, who)
        st.rerun()


def sign_out() -> None:
    """Forget the sign-in, the open project and what the teacher was viewing (on_click callback)."""
    for key in ("identity", "project", "viewing", "own_job", "selected_run", "settings", "preset", "done"):
        st.session_state.pop(key, None)
    for key in [k for k in st.session_state if str(k).startswith("w_")]:
        del st.session_state[key]  # widgets re-seed from the next person's recipe, not from stale values
    st.query_params.pop("project", None)
