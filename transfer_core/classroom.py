"""Classroom mode: one server for a class, each visitor with their own projects, a teacher who sees all.

Switched on by ``WARMSTART_CLASSROOM_PASSWORD`` (the class password; ``WARMSTART_TEACHER_PASSWORD``
is the teacher's). A visitor signs in with a name and the class password; a name is the
identity (the same name, in any letter case, reaches the same projects on another day), as a
class register would have it. Without the variable the server stays single-user.

Passwords are kept only as salted scrypt digests made at start-up and compared in constant
time (``hmac.compare_digest``); they are never written to disk or logs. The sign-in lives in
the browser session only: nothing in a page's address grants access, so a link shared in class
opens nothing of its owner's (after a refresh one signs in again and the same project reopens).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .errors import WarmstartError

__all__ = ["Classroom", "Identity", "classroom_from_env"]

@dataclass(frozen=True)
class Identity:
    """Who is signed in: a student (by name) or the teacher."""

    name: str
    role: str  # "student" or "teacher"

    @property
    def is_teacher(self) -> bool:
        return self.role == "teacher"


def _digest(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32)


def normal_name(name: str) -> str:
    """The name as identity: Unicode-normalised, spaces collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


class Classroom:
    """Checks sign-ins and issues session tokens; maps each student to a private folder.

    Args:
        class_password: what every student types.
        teacher_password: what the teacher types (None: nobody can sign in as teacher).
        home: the workspace; students' folders go under ``home/users``.
    """

    def __init__(self, class_password: str, teacher_password: str | None, home: Path) -> None:
        if not class_password:
            raise WarmstartError("WARMSTART_CLASSROOM_PASSWORD is empty; set a class password or unset the variable.")
        if teacher_password == class_password:
            raise WarmstartError("WARMSTART_TEACHER_PASSWORD must differ from the class password, or every student would be the teacher.")
        self.home = Path(home)
        self._salt = secrets.token_bytes(16)
        self._class = _digest(class_password, self._salt)
        self._teacher = _digest(teacher_password, self._salt) if teacher_password else None

    def sign_in(self, name: str, password: str) -> Identity:
        """The identity for a name and password.

        Raises:
            WarmstartError: an empty name, or a password that matches neither (the same sentence
                for both passwords, so a wrong guess says nothing about which exists).
        """
        offered = _digest(password or "", self._salt)
        is_class = hmac.compare_digest(offered, self._class)
        is_teacher = self._teacher is not None and hmac.compare_digest(offered, self._teacher)
        if not (is_class or is_teacher):
            raise WarmstartError("That password is not this class's password.")
        clean = " ".join(str(name).split())[:60]
        if is_teacher:
            return Identity(name=clean or "Teacher", role="teacher")
        if not any(ch.isalnum() for ch in clean):
            raise WarmstartError("Type your name (at least one letter or digit) so your projects can be kept for you.")
        return Identity(name=clean, role="student")

    def user_root(self, identity: Identity) -> Path:
        """A student's private folder: a readable prefix plus a digest of the normalised name,
        so two spellings of one name meet and different names never collide. The teacher's own
        projects live apart (``home/teacher``), so no student name reaches them."""
        if identity.is_teacher:
            return self.home / "teacher"
        key = normal_name(identity.name)
        readable = re.sub(r"[^a-z0-9]+", "-", key).strip("-")[:24] or "student"
        return self.home / "users" / f"{readable}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:10]}"

    def students(self) -> list[tuple[str, Path]]:
        """(name, folder) of every student who has signed in, by name."""
        found = []
        for folder in sorted((self.home / "users").glob("*")):
            try:
                found.append((json.loads((folder / "student.json").read_text(encoding="utf-8"))["name"], folder))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(found, key=lambda item: normal_name(item[0]))

    def remember(self, identity: Identity) -> Path:
        """Create the student's folder on first sign-in (with their name, for the teacher's list)."""
        root = self.user_root(identity)
        root.mkdir(parents=True, exist_ok=True)
        record = root / "student.json"
        if not record.exists():  # the name as first typed stays the one the teacher sees
            record.write_text(json.dumps({"name": identity.name}, ensure_ascii=False), encoding="utf-8")
        return root

def classroom_from_env(home: Path) -> Classroom | None:
    """The classroom configured by the environment, or None on a single-user server."""
    password = os.environ.get("WARMSTART_CLASSROOM_PASSWORD")
    if password is None:
        return None
    return Classroom(password, os.environ.get("WARMSTART_TEACHER_PASSWORD") or None, home)

