"""Per-course bearer tokens: who may submit to and read which assignments.

The tokens file (JSON, written by ``mpgrade token add``) holds, per token, its course, the
assignments that course may use and the SHA-256 of the token, never the token itself: a
leaked tokens file does not let anyone call the API. Every job belongs to the course of the
token that created it, and a token sees only its course's jobs and results.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from grader.atomic import write_atomic

_COURSE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TokensError(ValueError):
    """The tokens file is missing or unusable; the message says what to fix."""


@dataclass(frozen=True)
class Course:
    """The identity behind a token."""

    name: str
    assignments: frozenset[str]

    def may_use(self, assignment: str) -> bool:
        return assignment in self.assignments


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenEntry(NamedTuple):
    """One line of the tokens file: the hash a presented token must match, and its course."""

    sha256: str  # hex digest of the token; the token itself is never stored
    course: Course


@dataclass(frozen=True)
class Tokens:
    entries: tuple[TokenEntry, ...]

    @classmethod
    def load(cls, path: Path) -> Tokens:
        try:
            data = json.loads(Path(path).read_text())
            entries = tuple(
                TokenEntry(str(t["sha256"]), Course(str(t["course"]), frozenset(map(str, t["assignments"]))))
                for t in data["tokens"])
        except FileNotFoundError:
            raise TokensError(f"no tokens file {path}; create one with `mpgrade token add COURSE "
                              f"--assignment NAME --tokens {path}`") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokensError(f"{path} is not a tokens file ({type(exc).__name__}: {exc})") from None
        return cls(entries)

    def course_for(self, token: str) -> Course | None:
        """The course of a presented token, comparing every entry in constant time."""
        presented = digest(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, presented):
                found = entry.course
        return found


def add_token(path: Path, course: str, assignments: list[str]) -> str:
    """A new random token for ``course``; only its hash is written to the tokens file."""
    if not _COURSE.fullmatch(course):
        raise TokensError(f"course name {course!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    if not assignments:
        raise TokensError("name at least one assignment the course may use (--assignment NAME)")
    path = Path(path)
    data: dict = {"tokens": []}
    if path.exists():
        try:
            data = json.loads(path.read_text())
            data.setdefault("tokens", [])
        except (OSError, ValueError) as exc:
            raise TokensError(f"{path} is not a tokens file ({exc})") from None
    token = "mpg_" + secrets.token_urlsafe(32)
    data["tokens"].append({"course": course, "assignments": sorted(set(assignments)), "sha256": digest(token)})
    write_atomic(path, json.dumps(data, indent=2).encode() + b"\n")
    path.chmod(0o600)
    return token
