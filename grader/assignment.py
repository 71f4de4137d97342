"""An assignment is data: ``assignment.toml`` plus exercise folders.

The bottom layer of the package: everything else asks this module which exercises exist, which
files a student submits, where the public and hidden tests are and what the limits are. Nothing
about multiprocessing is hard-coded anywhere in the grader.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "assignment.toml"
# The start methods of ``multiprocessing`` an assignment may pin; the one list every layer uses.
START_METHODS = ("fork", "spawn", "forkserver")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MODULE_FILE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\.py$")


class AssignmentError(ValueError):
    """The manifest or the exercise folders are not usable; the message says what to fix."""


@dataclass(frozen=True)
class Limits:
    call_timeout: float = 8.0
    test_timeout: float = 60.0
    submission_timeout: float = 600.0
    output_limit: int = 8 * 1024 * 1024

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    files: tuple[str, ...]
    points: float
    public_dir: Path
    hidden_dir: Path

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(f[:-3] for f in self.files)

    def public_tests(self) -> list[Path]:
        return sorted(self.public_dir.glob("test_*.py"))

    def hidden_tests(self) -> list[Path]:
        return sorted(self.hidden_dir.glob("test_*.py")) if self.hidden_dir.is_dir() else []


@dataclass(frozen=True)
class Assignment:
    root: Path
    name: str
    version: str
    title: str
    start_method: str
    limits: Limits
    exercises: tuple[Exercise, ...]
    sandbox: dict[str, Any] = field(default_factory=dict)

    def exercise(self, ex_id: str) -> Exercise:
        for ex in self.exercises:
            if ex.id == ex_id:
                return ex
        known = ", ".join(e.id for e in self.exercises)
        raise AssignmentError(f"no exercise {ex_id!r} in {self.name} (exercises: {known})")

    def exercise_of_file(self, filename: str) -> Exercise | None:
        for ex in self.exercises:
            if filename in ex.files:
                return ex
        return None

    @property
    def max_score(self) -> float:
        return sum(ex.points for ex in self.exercises)

    @property
    def submitted_files(self) -> tuple[str, ...]:
        return tuple(f for ex in self.exercises for f in ex.files)

    def fingerprint(self) -> str:
        """Hash of the manifest and every test file: a changed test means results must be redone."""
        h = hashlib.sha256()
        h.update((self.root / MANIFEST).read_bytes())
        for ex in self.exercises:
            for path in ex.public_tests() + ex.hidden_tests():
                h.update(str(path.relative_to(self.root)).encode() + b"\0" + path.read_bytes())
        return h.hexdigest()[:16]


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds an ``assignment.toml``."""
    start = start.resolve()
    for folder in [start, *start.parents]:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def load(root: Path) -> Assignment:
    """Read and check the manifest; every problem is one AssignmentError with the fix in it."""
    root = Path(root).resolve()
    path = root / MANIFEST
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AssignmentError(f"{path} not found: an assignment folder needs an {MANIFEST}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AssignmentError(f"{path}: {exc}") from None
    meta = data.get("assignment", {})
    for key in ("name", "version"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise AssignmentError(f"{path}: [assignment] needs a string {key!r}")
    start_method = meta.get("start_method", "fork")
    if start_method not in START_METHODS:
        raise AssignmentError(f"{path}: start_method must be fork, spawn or forkserver")
    raw_limits = data.get("limits", {})
    unknown = set(raw_limits) - set(Limits.__dataclass_fields__)
    if unknown:
        raise AssignmentError(f"{path}: unknown limits {sorted(unknown)}")
    try:
        limits = Limits(**{k: type(getattr(Limits, k))(v) for k, v in raw_limits.items()})
    except (TypeError, ValueError) as exc:
        raise AssignmentError(f"{path}: bad [limits]: {exc}") from None
    exercises = []
    seen_files: set[str] = set()
    for i, ex in enumerate(data.get("exercise", [])):
        ex_id = ex.get("id")
        if not isinstance(ex_id, str) or not _ID.match(ex_id):
            raise AssignmentError(f"{path}: exercise #{i + 1} needs an id like '01_spawn'")
        files = ex.get("files")
        if not files or not all(isinstance(f, str) and _MODULE_FILE.match(f) for f in files):
            raise AssignmentError(f"{path}: exercise {ex_id} needs files = ['module.py', ...]")
        clash = seen_files & set(files)
        if clash:
            raise AssignmentError(f"{path}: {sorted(clash)} belong to two exercises")
        seen_files |= set(files)
        exercises.append(Exercise(
            id=ex_id, title=str(ex.get("title", ex_id)), files=tuple(files),
            points=float(ex.get("points", 0)),
            public_dir=root / "exercises" / ex_id, hidden_dir=root / "solutions" / ex_id,
        ))
    if not exercises:
        raise AssignmentError(f"{path}: no [[exercise]] tables")
    return Assignment(
        root=root, name=meta["name"], version=meta["version"], title=str(meta.get("title", meta["name"])),
        start_method=start_method, limits=limits, exercises=tuple(exercises),
        sandbox=dict(data.get("sandbox", {})),
    )
