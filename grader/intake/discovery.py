"""Finding the submissions under the paths an instructor names: the top of the intake.

It decides what each path is (an LMS bulk download, a folder of submissions, one student's
folder, zip, module or notebook) and hands it to :mod:`grader.intake.lms` or
:mod:`grader.intake.submission`; whatever goes wrong with one entry is that entry's ``error``
or a message, never the batch's end. The intake imports one way only, so that each module can
be read and tested on its own: entries <- submission <- lms <- discovery.
"""

from __future__ import annotations

from pathlib import Path

from grader.assignment import Assignment
from grader.intake import lms, submission
from grader.intake.entries import SKIP_DIRS, unexpected
from grader.intake.submission import NotASubmission, Submission, submission_id

# Hidden entries of a folder of submissions that are skipped without a word: version control,
# editors and file managers put them there, no student hands them in. Any other name that
# starts with a dot (``..x``, ``.alice``) is skipped *and reported*, so nobody vanishes.
QUIET_HIDDEN = {".git", ".gitignore", ".gitattributes", ".DS_Store", ".venv", ".idea", ".vscode",
                ".ipynb_checkpoints", ".Trash", ".Trashes", ".Spotlight-V100", ".fseventsd"}


def looks_like_submission(folder: Path, assignment: Assignment) -> bool:
    """Does this folder hold module files itself (flat or ``exercises/NN/``) rather than submissions?"""
    wanted = set(assignment.submitted_files)
    for entry in folder.iterdir():
        if entry.is_file() and entry.name in wanted:
            return True
    exercises = folder / "exercises"
    if exercises.is_dir():
        return any((exercises / ex.id / f).is_file() for ex in assignment.exercises for f in ex.files)
    return False


# In an assignment's references folder (``solutions/``): the mutants, each a copy of a module
# with one mistake, are never part of the references' submission.
REFERENCE_SKIP = frozenset({"mutants"})


def looks_like_references(folder: Path, assignment: Assignment) -> bool:
    """Is this folder laid out as the assignment's references (``solutions/``): every module
    in a subfolder named after its exercise (``01_spawn/spawn.py``)? Then it is one
    submission, the way an author grades the references (``mpgrade grade course/solutions``),
    not a folder of one submission per exercise. Every exercise must be there: a folder of
    students, one of whom is named like an exercise, stays a folder of students."""
    return bool(assignment.exercises) and all(
        (folder / ex.id / name).is_file() and not (folder / ex.id / name).is_symlink()
        for ex in assignment.exercises for name in ex.files)


def discover(paths: list[Path], assignment: Assignment) -> tuple[list[Submission], list[str]]:
    """Every submission under the given paths, and a message for each thing that is not one.

    An LMS bulk download is recognised only at a path given here, never inside a folder of
    submissions: there every entry is one student's submission named after itself, whatever
    it holds. Otherwise a student's zip laid out like a Gradescope export (a
    ``submission_metadata.yml`` naming other students) would be read as many students and
    could hand in work under a classmate's identity while its own name vanished.
    """
    found: list[Submission] = []
    skipped: list[str] = []

    def lms_download(path: Path) -> bool:
        """Take an LMS bulk download (many students) whole; its warnings are reported."""
        batch = lms.discover_lms(path, assignment)
        if batch is None:
            return False
        skipped.extend(batch.warnings)
        if not batch.recognized:
            found.extend(batch.submissions)  # an error record when a zip is a class, perhaps
            return False
        found.extend(batch.submissions)
        skipped.extend(batch.skipped)
        return True

    def add(entry: Path) -> None:
        try:
            if entry.is_symlink():
                skipped.append(f"{entry}: symbolic link, skipped")
            elif entry.is_dir():
                found.append(submission.from_folder(entry, assignment))
            elif entry.suffix.lower() == ".zip":
                found.append(submission.from_zip(entry, assignment))
            elif entry.suffix == ".py" or entry.suffix.lower() == ".ipynb":
                found.append(submission.from_file(entry, assignment))
            else:
                skipped.append(f"{entry}: not a folder, .zip, .py or .ipynb file, skipped")
        except NotASubmission as exc:
            skipped.append(str(exc))
        except OSError as exc:  # unreadable: that submission's error, never the whole batch's
            found.append(error_submission(entry, f"could not be read: {exc.strerror or exc}"))
        except Exception as exc:  # noqa: BLE001 - whatever a student hands in, never the batch's
            found.append(error_submission(entry, f"could not be read ({unexpected(exc)})"))

    for path in paths:
        try:
            if not path.exists():
                skipped.append(f"{path}: does not exist")
            elif not path.is_symlink() and lms_download(path):
                continue
            elif path.is_dir() and not path.is_symlink() and looks_like_references(path, assignment):
                found.append(submission.from_folder(path, assignment, skip=REFERENCE_SKIP))
            elif path.is_dir() and not looks_like_submission(path, assignment):
                for entry in sorted(path.iterdir()):
                    if entry.name in SKIP_DIRS or entry.name in QUIET_HIDDEN \
                            or entry.name.startswith("._"):
                        continue  # what tools leave next to submissions: expected, not news
                    if entry.name.startswith("."):
                        skipped.append(f"{entry}: its name starts with a dot (hidden), skipped; "
                                       "rename it to grade it")
                        continue
                    add(entry)
            else:
                add(path)
        except Exception as exc:  # noqa: BLE001 - a folder listing that fails midway, say
            found.append(error_submission(path, f"could not be read ({unexpected(exc)})"))
    unique_ids(found)
    return found, skipped


def error_submission(entry: Path, why: str) -> Submission:
    """The ``error`` submission standing for an entry that could not be read at all."""
    return Submission(id=submission_id(entry.stem if entry.suffix else entry.name),
                      source=str(entry), error=f"{entry.name} {why}")


def unique_ids(subs: list[Submission]) -> None:
    """Make every id unique, ignoring case: ``alice/`` and ``alice.zip``, ``Alice/`` and
    ``alice/``, ``a b/`` and ``a_b/`` must not write the same ``<id>.json`` (case-insensitive
    file systems: macOS, Windows, a results folder copied there). Later ones get ``-2``, ``-3``,
    never an id that is already taken (a folder may itself be named ``alice-2``)."""
    taken = {sub.id.casefold() for sub in subs}
    used: set[str] = set()
    for sub in subs:
        if sub.id.casefold() not in used:
            used.add(sub.id.casefold())
            continue
        n = 2
        while f"{sub.id}-{n}".casefold() in taken or f"{sub.id}-{n}".casefold() in used:
            n += 1
        sub.id = f"{sub.id}-{n}"
        used.add(sub.id.casefold())
