"""Turning what a student handed in (a folder, a zip, one file) into a submission.

Only the assignment's module files, found by exact name, are taken; everything that could
change how tests run (``conftest.py``, ``pytest.ini``, ``sitecustomize.py``, ``.pth`` files,
symlinks) is ignored and reported. Archives are read defensively: no path leaves the archive,
and member count, sizes and compression ratio are capped, so a hostile zip becomes an
``error`` for that submission and never a problem for the batch.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from grader.assignment import Assignment
from grader.intake import notebook
from grader.intake.entries import (
    ARCHIVE_ERRORS,
    MAX_DEPTH,
    MAX_FILE,
    MAX_MEMBERS,
    MAX_TOTAL,
    SKIP_DIRS,
    Budget,
    Entry,
    OverBudget,
    Refused,
    archive_entries,
    folder_entry,
    read_nofollow,
    refusal,
)


@dataclass
class Submission:
    id: str
    source: str
    files: dict[str, bytes] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    student: dict[str, Any] | None = None

    @property
    def hash(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode(errors="surrogateescape") + b"\0" + hashlib.sha256(self.files[name]).digest())
        if self.error:
            h.update(b"error\0" + self.error.encode(errors="surrogateescape"))
        return "sha256:" + h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """The ``submission`` object of the result document."""
        return {
            "id": self.id,
            "hash": self.hash,
            "files": sorted(self.files),
            "missing": list(self.missing),
            "ignored": list(self.ignored),
            "source": self.source,
            "student": self.student,
        }


class NotASubmission(ValueError):
    """A path that holds nothing gradable; reported and skipped, never fatal."""


_SAFE_ID = re.compile(r"[^A-Za-z0-9._@+-]+")


def submission_id(name: str) -> str:
    """A file-name-safe id from a folder or archive name (it names ``<id>.json``)."""
    stem = name[:-4] if name.lower().endswith(".zip") else name
    clean = _SAFE_ID.sub("_", stem).strip("._") or "submission"
    return clean[:120]


@dataclass
class Candidate:
    """One copy of a module found among a student's entries (a notebook already converted)."""

    module: str
    rel: str  # where it was found, for messages
    inner: str  # the path as the student laid it out: its folders decide the choice
    data: bytes
    notebook: bool
    family: str = ""  # the uploaded file it came from (LMS): re-uploads of one file share it
    version: tuple[int, int] = (0, 0)  # (re-upload number, LMS id): higher is later


class Collection:
    """The module candidates of one student's submission, from every entry they handed in.

    Folders, zips and LMS downloads all go through :meth:`take` and :meth:`choose`, so which
    files are taken, their caps and which copy is graded are the same however a submission
    came. Every byte read counts against the student's one :class:`Budget`.
    """

    def __init__(self, assignment: Assignment, sub: Submission, budget: Budget | None = None) -> None:
        self.assignment = assignment
        self.sub = sub
        self.budget = budget or Budget()
        self.candidates: list[Candidate] = []

    def take(self, entry: Entry, rel: str, inner: str, family: str = "",
             version: tuple[int, int] = (0, 0)) -> None:
        """A module file as it is, a notebook as the module it stands for; the rest is left.

        ``rel`` names the entry in messages, ``inner`` is its path as the student laid it out.
        What is never used (a symlink, ``conftest.py``...) and what is too large are reported
        in ``ignored``; reading may raise any of ARCHIVE_ERRORS, and OverBudget.
        """
        base = PurePosixPath(inner).name
        reason = refusal(base, entry.is_link)
        if reason:
            self.sub.ignored.append({"path": rel, "reason": reason})
            return
        is_notebook = base.lower().endswith(".ipynb")
        if base not in self.assignment.submitted_files and not is_notebook:
            return
        limit = notebook.NOTEBOOK_MAX if is_notebook else MAX_FILE
        if entry.size > limit:
            self.sub.ignored.append({"path": rel, "reason": f"larger than {limit} bytes"})
            return
        data = entry.read(limit + 1)  # one byte over the cap, so a file that grew is noticed
        self.budget.read(len(data))  # every copy is held until one is chosen: it all counts
        if len(data) > limit:
            self.sub.ignored.append({"path": rel, "reason": f"larger than {limit} bytes"})
            return
        module = base
        if is_notebook:
            conv = notebook.convert(data, rel, self.assignment, MAX_FILE)
            self.sub.ignored.extend(conv.ignored)
            if conv.module is None or conv.source is None:
                return
            module, data = conv.module, conv.source
        self.candidates.append(Candidate(module, rel, inner, data, is_notebook, family, version))

    def choose(self) -> None:
        """One file per module: the latest upload, then the ``exercises/<id>/`` layout, shallowest.

        "Latest" is decided in two steps so that Canvas's re-upload numbers are only compared
        where they mean something: within one uploaded file name (``spawn.py``, ``spawn-1.py``,
        ``spawn-2.py``) the highest number wins; between different uploads (``spawn-1.py`` and
        a later ``work.zip``) the larger LMS id, which the LMS hands out in upload order. A
        module file beats a notebook; among equals the one found first is taken.
        """
        sub = self.sub
        for module in self.assignment.submitted_files:
            found = [c for c in self.candidates if c.module == module]
            if not found:
                sub.missing.append(module)
                continue
            latest: dict[str, tuple[int, int]] = {}
            for c in found:
                latest[c.family] = max(latest.get(c.family, c.version), c.version)
            ex = self.assignment.exercise_of_file(module)
            layout_dir = ex.id if ex is not None else None

            def rank(c: Candidate, d: str | None = layout_dir,
                     latest: dict[str, tuple[int, int]] = latest) -> tuple[Any, ...]:
                parts = PurePosixPath(c.inner).parts
                in_layout = d is not None and len(parts) >= 2 and parts[-2] == d
                return (c.version != latest[c.family], -c.version[1], -c.version[0],
                        not in_layout, len(parts), c.notebook)

            found.sort(key=rank)
            winner = found[0]
            sub.files[module] = winner.data
            for c in found[1:]:
                sub.ignored.append({"path": c.rel, "reason": f"another {module} was used ({winner.rel})"})


def from_folder(path: Path, assignment: Assignment, sub_id: str | None = None,
                skip: frozenset[str] = frozenset()) -> Submission:
    """A student's folder: its module files (flat or ``exercises/NN/``), to MAX_DEPTH levels;
    subfolders named in ``skip`` (at any depth) are not looked into."""
    sub = Submission(id=sub_id or submission_id(path.name), source=str(path))
    found = Collection(assignment, sub)
    root = path.resolve()

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(folder.iterdir())
        except OSError:
            return
        found.budget.members(len(children))
        for child in children:
            rel = str(child.relative_to(root))
            is_link = child.is_symlink()
            if not is_link and child.is_dir():
                if depth < MAX_DEPTH and child.name not in SKIP_DIRS and child.name not in skip \
                        and not child.name.startswith("."):
                    walk(child, depth + 1)
            elif is_link or child.is_file():
                found.take(folder_entry(child, rel, PurePosixPath(rel).parts, is_link), rel, rel)

    try:
        walk(root, 0)
    except OverBudget as exc:
        return _over_budget(sub, path.name, exc)
    found.choose()
    return sub


def _over_budget(sub: Submission, name: str, exc: OverBudget) -> Submission:
    sub.files.clear()
    sub.missing.clear()
    sub.error = f"{name} was rejected: {exc}; a submission holds at most {MAX_MEMBERS} files " \
                f"and {MAX_TOTAL // (1024 * 1024)} MiB of them in all"
    return sub


def from_zip(path: Path, assignment: Assignment, sub_id: str | None = None) -> Submission:
    """A student's zip, vetted as a whole first: a hostile one is that submission's error."""
    sub = Submission(id=sub_id or submission_id(path.name), source=str(path))
    found = Collection(assignment, sub)
    try:
        with zipfile.ZipFile(path) as zf:
            for entry in archive_entries(zf, found.budget):
                found.take(entry, entry.name, entry.name)
    except Refused as exc:
        sub.error = f"{path.name} was rejected: {exc}"
        return sub
    except OverBudget as exc:
        return _over_budget(sub, path.name, exc)
    except ARCHIVE_ERRORS as exc:
        sub.error = f"{path.name} is not a readable zip archive ({exc})"
        return sub
    found.choose()
    return sub


def from_file(path: Path, assignment: Assignment) -> Submission:
    """A lone module file, e.g. ``spawn.py``, or notebook; the id is the file's name."""
    if path.suffix.lower() == ".ipynb":
        return from_notebook(path, assignment)
    if path.name not in assignment.submitted_files:
        raise NotASubmission(f"{path}: not one of the files of this assignment ({', '.join(assignment.submitted_files)})")
    return from_folder_files(path, assignment)


def from_folder_files(path: Path, assignment: Assignment) -> Submission:
    """A lone module file as a submission of that one file (the others are missing)."""
    sub = Submission(id=submission_id(path.stem), source=str(path))
    if path.is_symlink():
        sub.error = f"{path.name} is a symbolic link"
        return sub
    data = read_nofollow(path, MAX_FILE + 1)
    if len(data) > MAX_FILE:
        sub.error = f"{path.name} is larger than {MAX_FILE} bytes"
        return sub
    sub.files[path.name] = data
    sub.missing = [f for f in assignment.submitted_files if f != path.name]
    return sub


def from_notebook(path: Path, assignment: Assignment) -> Submission:
    """A lone notebook (``01_spawn.ipynb``): the module it stands for, extracted."""
    sub = Submission(id=submission_id(path.stem), source=str(path))
    if path.is_symlink():
        sub.error = f"{path.name} is a symbolic link"
        return sub
    data = read_nofollow(path, notebook.NOTEBOOK_MAX + 1)
    module = notebook.module_name_for(data, path.name, assignment)
    if module is None:
        raise NotASubmission(f"{path}: a notebook that names no module of this assignment")
    conv = notebook.convert(data, path.name, assignment, MAX_FILE)
    sub.ignored = conv.ignored
    if conv.module is None or conv.source is None:
        sub.error = conv.ignored[-1]["reason"]
        return sub
    sub.files[conv.module] = conv.source
    sub.missing = [f for f in assignment.submitted_files if f != conv.module]
    return sub
