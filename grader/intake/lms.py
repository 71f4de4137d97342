"""LMS bulk downloads (Canvas, Moodle, Gradescope) as they come: one submission per student.

Instructors grade what the LMS hands them: one zip (or its extracted folder) with every
student's files, named after the student. Unpacking and renaming that by hand loses who is
who, which upload is the latest and which was late, so :func:`discover_lms` reads the layouts
directly and returns :class:`grader.intake.submission.Submission` objects with ``student`` set
(``lms``, ``user_id``, ``name``, ``submission_id``, ``late``, ``email``), keyed by the LMS's
user id so results can be imported back. Layouts (worked examples in docs/lms-ingestion.md):

- Canvas: flat files ``<name>[_LATE]_<user id>_<attachment id>_<file>`` (older Canvas:
  ``_late``, lower case), ``anon_<anonymous id>_<attachment id>_<file>`` under anonymous
  grading; ``spawn-1.py`` is a re-upload of ``spawn.py``. Id ``canvas-<user id>`` or
  ``canvas-anon-<anonymous id>``.
- Moodle: ``<Full Name>_<participant id>_assignsubmission_file_/`` folders (or the same as a
  file-name prefix when not downloaded in folders). Id ``moodle-<participant id>``.
- Gradescope: ``submission_<id>/`` folders and ``submission_metadata.yml``. Id
  ``gradescope-<submission id>`` (a group hands in one submission).

The download itself is hostile input like any submission: member names, symbolic links and
sizes are checked per student with :func:`grader.intake.entries.check_archive` and its caps, and
their files are taken and chosen from as :class:`grader.intake.submission.Collection` does for
any submission, so a bad entry becomes an ``error`` for that student only and the rest of the
class is graded. An entry that belongs to no student is never dropped quietly: it is listed
in ``LmsBatch.unmatched`` and in an ``error`` record of its own (:func:`unmatched_record`).
"""

from __future__ import annotations

import functools
import io
import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from grader.assignment import Assignment
from grader.intake.entries import (
    ARCHIVE_ERRORS,
    MAX_DEPTH,
    MAX_MEMBERS,
    MAX_TOTAL,
    Entry,
    OverBudget,
    Refused,
    archive_entries,
    check_archive,
    folder_entry,
    is_junk,
    overflow_entry,
    printable,
    refusal,
    same_file_key,
    unexpected,
    zip_entries,
)
from grader.intake.submission import Collection, Submission, submission_id

METADATA_MAX = 128 * 1024 * 1024  # Gradescope's metadata carries every autograder output

# canvas-lms lib/content_zipper.rb names a file ``<user name>[_LATE]_<user id>_<attachment id>_
# <display name>`` (see canvas_file): the sortable name as it is, ``_`` allowed in it (older
# Canvas lower-cased it and wrote ``_late``; current Canvas keeps the case and writes ``_LATE``).
# Its sanitize_user_name rewrites every ``_<digits>_`` of the name to ``-<digits>-`` (Canvas
# reads the ids back with ``/_\d+_/`` when graded files are uploaded again), so the *first*
# ``_<digits>_`` is the user id. Found by search, not by one regex: a lazy name in front of
# bounded numbers would slide into a run of 5000 digits and read its tail as the id.
_CANVAS_FIRST_ID = re.compile(r"_(\d+)_")
_CANVAS_ATTACHMENT = re.compile(r"(\d{1,30})_(.+)$", re.DOTALL)
_CANVAS_LATE = re.compile(r"_late$", re.IGNORECASE)
# Anonymous grading: ``anon_<anonymous id>`` stands where the name and the user id were.
CANVAS_ANON = re.compile(r"^anon(?P<late1>_(?i:late))?_(?P<anon>[A-Za-z0-9]{1,30})"
                         r"(?P<late2>_(?i:late))?_(?P<sid>\d{1,30})_(?P<orig>.+)$", re.DOTALL)
# A text entry or URL, saved as HTML (``<user name>_<user id>_text.html``, ``..._link.html``):
# the student's, but no code. Only that shape: anything else of the form is not Canvas's.
_CANVAS_NO_FILE = re.compile(r"_(\d+)(?:_[A-Za-z]{1,20})?\.html?$", re.IGNORECASE)
# Numbers are bounded: int() refuses more than 4300 digits, and a file name is the student's.
RESUBMITTED = re.compile(r"^(?P<stem>.+)-(?P<n>\d{1,9})(?P<ext>\.[^.]+)$")
# Moodle writes ``<Full Name>_<id>_assignsubmission_<plugin>`` and then ``_<file>`` (flat),
# ``_/<path>`` (folders, Moodle 3.x) or ``/<path>`` (folders, 4.1+). It replaces every ``_`` of
# the name with a space, so its own prefix is the *first* ``_<id>_assignsubmission_``: the
# uploaded file's name, which may contain anything, must never be read as the prefix.
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_(?P<plugin>[a-z]+)"
                    r"(?:_(?P<rest>.*))?$", re.DOTALL)
GRADESCOPE_DIR = re.compile(r"^submission_(?P<id>\d+)$")
GRADESCOPE_METADATA = "submission_metadata.yml"


@dataclass
class LmsBatch:
    """What an LMS download holds: submissions, messages for what was skipped, warnings.

    Every message starts with the download's path, like the ordinary discovery's messages.

    ``lms`` is ``canvas``, ``moodle`` or ``gradescope``; None means the path looked partly
    like a download but was not recognised, so the ordinary discovery must handle it (the
    warnings say why).

    ``unmatched`` names the entries that belong to no student (sorted): a stray file, a folder
    named in a way the LMS does not write, a Gradescope folder missing from the metadata.
    When there are any, ``submissions`` also holds an ``error`` record listing them (see
    :func:`unmatched_record`), so ``mpgrade grade`` exits non-zero and the results folder
    says so: part of a class must never be graded without a word about the rest.
    """

    lms: str | None
    submissions: list[Submission] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def recognized(self) -> bool:
        return self.lms is not None


# --------------------------------------------------------------------------------------------
# A download as a list of entries, the same for a zip and for a folder


def _listing(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as listing:
            return sorted(listing, key=lambda e: e.name)
    except OSError:
        return []


def _is_folder(entry: os.DirEntry) -> bool:
    return entry.is_dir(follow_symlinks=False) and not entry.is_symlink()


def _empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as listing:
            return next(listing, None) is None
    except OSError:
        return True


def _wrapper_folders(root: Path) -> tuple[str, ...]:
    """The folders an extracted download is wrapped in (``assignment_123_export/``), if any.

    The same rule as :func:`_strip_wrapper`, on names: one folder and nothing else (junk and
    empty folders aside), not named like a student's entry.
    """
    prefix: tuple[str, ...] = ()
    folder = root
    for _ in range(MAX_DEPTH):
        useful = []
        for c in _listing(folder):
            if not is_junk((c.name,)) and not (_is_folder(c) and _empty(Path(c.path))):
                useful.append(c)
                if len(useful) > 1:
                    break
        if len(useful) != 1 or not _is_folder(useful[0]):
            break
        name = useful[0].name
        if canvas_file(name) or MOODLE.match(name) or GRADESCOPE_DIR.match(name):
            break
        prefix, folder = (*prefix, name), Path(useful[0].path)
    return prefix


def _folder_entries(root: Path, max_parts: int = MAX_DEPTH + 2) -> list[Entry]:
    """Every file below ``root``: symlinks listed but never followed, depth capped.

    Caps apply per student, not to the class: below the layout root (wrappers removed) each
    top-level folder is one student's (a Gradescope ``submission_<id>/``, a Moodle folder), and
    a folder with more than MAX_MEMBERS files is not read further. It is one ``overflow``
    entry instead, which makes an ``error`` for its student while every other folder is read
    in full. Top-level files (Canvas, flat Moodle) are one entry each and are counted per
    student when the student's files are checked.
    """
    wrapper = _wrapper_folders(root)
    entries: list[Entry] = []

    def add_file(child: os.DirEntry, parts: tuple[str, ...]) -> None:
        is_link = child.is_symlink()
        if is_link or child.is_file(follow_symlinks=False):
            entries.append(folder_entry(Path(child.path), "/".join((*wrapper, *parts)), parts,
                                        is_link))

    def walk(folder: Path, prefix: tuple[str, ...], budget: int) -> int:
        """Files of ``folder`` into ``entries``; returns the budget left, -1 when exceeded."""
        for child in _listing(folder):
            parts = (*prefix, child.name)
            if _is_folder(child):
                if len(parts) < max_parts and not is_junk((child.name,)):
                    budget = walk(Path(child.path), parts, budget)
            else:
                budget -= 1
                if budget < 0:
                    return -1
                add_file(child, parts)
            if budget < 0:
                return -1
        return budget

    start = root.joinpath(*wrapper)
    for child in _listing(start):
        if _is_folder(child):
            if is_junk((child.name,)) or max_parts < 2:
                continue
            first = len(entries)
            if walk(Path(child.path), (child.name,), MAX_MEMBERS) < 0:
                del entries[first:]  # one marker, not thousands of entries nobody will read
                entries.append(overflow_entry("/".join((*wrapper, child.name)), (child.name, "*")))
        else:
            add_file(child, (child.name,))
    return entries


def _strip_wrapper(entries: list[Entry]) -> list[Entry]:
    """Zips often hold one folder with everything in it (``assignment_123_export/``)."""
    while True:
        useful = [e for e in entries if not is_junk(e.parts)]
        tops = {e.parts[0] for e in useful}
        if len(tops) != 1 or any(len(e.parts) == 1 for e in useful):
            return entries
        (top,) = tops
        if canvas_file(top) or MOODLE.match(top) or GRADESCOPE_DIR.match(top):
            return entries  # a download with a single student, not a wrapper
        entries = [e.below(1) for e in useful]


# --------------------------------------------------------------------------------------------
# Recognising a layout


def _top_items(entries: list[Entry]) -> dict[str, bool]:
    """First path components (not junk) -> whether it is a folder."""
    items: dict[str, bool] = {}
    for e in entries:
        if not is_junk(e.parts[:1]):
            items[e.parts[0]] = items.get(e.parts[0], False) or len(e.parts) > 1
    return items


def _named_like(lms: str, name: str, is_dir: bool) -> bool:
    """Is a top-level item named the way ``lms`` names a student's entry?"""
    if lms == "canvas":
        return not is_dir and (canvas_file(name) or canvas_anonymous_file(name)) is not None
    if lms == "moodle":
        return MOODLE.match(name) is not None
    return is_dir and GRADESCOPE_DIR.match(name) is not None


def _likeliest(entries: list[Entry]) -> tuple[str | None, int, int]:
    """The LMS that names most top-level items its way, how many, and how many items there are."""
    items = _top_items(entries)
    counts = {lms: sum(1 for name, is_dir in items.items() if _named_like(lms, name, is_dir))
              for lms in ("canvas", "moodle", "gradescope")}
    lms, best = max(counts.items(), key=lambda kv: kv[1])
    return (lms if best else None), best, len(items)


def detect(entries: list[Entry]) -> tuple[str | None, list[str]]:
    """Which LMS made this download, and warnings for a layout that only partly matches.

    A layout is recognised when at least half of the top-level items are named the LMS's
    way (an instructor's stray ``notes.txt`` must not hide a class's download); fewer than
    half, but some, is reported and left to the ordinary discovery.
    """
    items = _top_items(entries)
    if not items:
        return None, []
    if GRADESCOPE_METADATA in items and not items[GRADESCOPE_METADATA]:
        return "gradescope", []
    lms, best, total = _likeliest(entries)
    if lms is None:
        return None, []
    if lms == "gradescope":  # without its metadata nobody knows whose folder is whose
        return None, [f"{best} submission_<id>/ folders but no {GRADESCOPE_METADATA}: not read "
                      "as a Gradescope export (extract a zip and grade the folder instead)"]
    if 2 * best >= total:
        return lms, []
    return None, [f"{best} of {total} entries are named like a {lms.capitalize()} "
                  "download, the others are not: not read as an LMS download"]


# --------------------------------------------------------------------------------------------
# Entry points


def discover_lms(path: Path, assignment: Assignment) -> LmsBatch | None:
    """The submissions of an LMS bulk download at ``path`` (a zip or a folder), or None.

    None means "not an LMS download": the ordinary discovery applies (an unreadable zip too,
    so that it becomes that discovery's ``error`` submission). A batch with ``lms=None``
    carries warnings about a layout that only partly matched.
    """
    try:
        if path.is_symlink():
            return None
        if path.is_dir():
            # Most folders are ordinary folders of submissions: look at the top levels first.
            if detect(_strip_wrapper(_folder_entries(path, max_parts=3))) == (None, []):
                return None
            return _from_entries(path, _folder_entries(path), assignment, [])
        if path.is_file() and path.suffix.lower() == ".zip":
            with _open_zip(path) as zf:
                if zf is None:
                    return None
                return _from_entries(path, zip_entries(zf), assignment, [])
    except OSError:
        return None
    except Exception as exc:  # noqa: BLE001 - a download is hostile input: never the batch's end
        return LmsBatch(None, warnings=[f"{path}: could not be read as an LMS download "
                                        f"({unexpected(exc)}); graded as an ordinary submission"])
    return None


@contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile | None]:
    """The download's zip, or None when it cannot be opened.

    There is no cap on the members of the whole download: caps are per student (see
    :func:`_build`), so one student's 100,000 cache files are that student's ``error`` and the
    class is graded. (Its central directory, already read here, is bounded by the file.)
    """
    try:
        zf = zipfile.ZipFile(path)
    except ARCHIVE_ERRORS:
        yield None
        return
    with zf:
        yield zf


def _from_entries(path: Path, entries: list[Entry], assignment: Assignment,
                  warnings: list[str]) -> LmsBatch | None:
    entries = _strip_wrapper(entries)
    lms, partial = detect(entries)
    warnings = [f"{path}: {w}" for w in warnings + partial]
    if lms is None:
        if not warnings:
            return None
        batch = LmsBatch(None, warnings=warnings)
        guess = _likeliest(entries)[0]
        if guess is not None and path.suffix.lower() == ".zip" and not path.is_dir():
            # The ordinary discovery grades a zip as ONE submission: a class in a naming
            # mpgrade does not know would become one student, quietly.
            batch.unmatched = sorted(
                e.shown for e in entries
                if not is_junk(e.parts) and (guess == "gradescope" or not _named_like(
                    guess, e.parts[0], len(e.parts) > 1)))
            why = partial[0] if partial else "not read as an LMS download"
            batch.submissions.append(unmatched_record(path, batch.unmatched, why))
        return batch
    batch = LmsBatch(lms, warnings=warnings)
    reader = {"canvas": _canvas, "moodle": _moodle, "gradescope": _gradescope}[lms]
    reader(path, entries, assignment, batch)
    batch.unmatched.sort()
    if batch.unmatched:
        record = unmatched_record(path, batch.unmatched)
        batch.submissions.append(record)
        batch.warnings.append(f"{path}: {record.error} (the {record.id} result is an error, so "
                              "mpgrade grade exits with status 1)")
    batch.submissions.sort(key=lambda s: s.id)
    return batch


UNMATCHED_LISTED = 50  # entries named in the message; the rest are counted


def unmatched_record(path: Path, unmatched: list[str], why: str | None = None) -> Submission:
    """The ``error`` submission that lists a download's entries that match no student.

    It is a result like a student's (``<download>-unmatched.json``, status ``error``), so it
    is in ``summary.json``, in the final table and in the exit status, where a printed
    "skipped" line alone scrolls away. No LMS id looks like it (they are numbers or
    ``anon-...``), so it never takes a student's place.
    """
    n = len(unmatched)
    listed = ", ".join(printable(u) for u in unmatched[:UNMATCHED_LISTED])
    if n > UNMATCHED_LISTED:
        listed += f" and {n - UNMATCHED_LISTED} more"
    if why is None:
        error = (f"{n} {'entry' if n == 1 else 'entries'} of {path.name} "
                 f"{'matches' if n == 1 else 'match'} no student and "
                 f"{'was' if n == 1 else 'were'} not graded as anyone's: {listed}. Look at the "
                 "download: a file an LMS did not write, or a naming mpgrade does not know "
                 "(then grade those files on their own)")
    else:
        error = (f"{path.name}: {why}, so it was graded as one ordinary submission and its "
                 f"entries match no student: {listed}. If it is an LMS download, some "
                 "students may be missing: extract it and grade the folder")
    return Submission(id=submission_id(path.name)[:100] + "-unmatched", source=str(path),
                      error=error)


# --------------------------------------------------------------------------------------------
# Building one student's submission from the entries that are theirs


@dataclass
class _Item:
    entry: Entry
    inner: str  # the path as the student named it (LMS prefix and -N suffix removed)
    family: str  # the uploaded file it came from, as originally named: re-uploads share it
    version: tuple[int, int] = (0, 0)  # (re-upload number, LMS id): higher is later


class _Rejected(Exception):
    """This student's files cannot be trusted; the message becomes ``Submission.error``."""


def _build(sub_id: str, path: Path, label: str, items: list[_Item], assignment: Assignment,
           student: dict[str, Any] | None) -> Submission:
    """One student's submission; ``label`` names their part of the download in messages."""
    sub = Submission(id=submission_id(sub_id), source=f"{path}:{label}", student=student)
    found = Collection(assignment, sub)  # one budget for all of theirs: files, zips, notebooks
    try:
        for it in items:
            if it.entry.overflow:
                raise _Rejected(f"{path.name}: the files of {label} were rejected: "
                                f"{it.entry.shown} holds more than {MAX_MEMBERS} files")
        problem = check_archive([it.entry.info for it in items])
        if problem:
            raise _Rejected(f"{path.name}: the files of {label} were rejected: {problem}")
        for it in items:
            if it.entry.is_link:
                raise _Rejected(f"{it.entry.shown} is a symbolic link: an LMS download never "
                                "holds one, so this student's files are not trusted")
        _no_two_alike(path, label, items)
        found.budget.members(len(items))
        for it in items:
            _collect(it, found)
        found.candidates.sort(key=lambda c: c.rel)  # among equals, the first by name
        found.choose()
    except _Rejected as exc:
        sub.error = str(exc)
    except OverBudget as exc:
        sub.error = (f"{path.name}: the files of {label} were rejected: {exc} (their zips "
                     f"included); a student hands in at most {MAX_MEMBERS} files and "
                     f"{MAX_TOTAL // (1024 * 1024)} MiB of them in all")
    except Exception as exc:  # noqa: BLE001 - one student's files, never the class's batch
        sub.error = f"{path.name}: the files of {label} could not be read ({unexpected(exc)})"
    if sub.error:
        sub.files.clear()
        sub.missing.clear()
    return sub


def _no_two_alike(path: Path, label: str, items: list[_Item]) -> None:
    """Two of a student's files that are the same file once the LMS's naming is read.

    A Moodle student's ``..._file_/spawn.py`` and ``..._file_spawn.py``, or two Canvas files
    with the same upload id and name: nothing says which is the student's, and a TA who
    unpacks the download sees only one of them. Canvas re-uploads (``spawn-1.py``) differ in
    their version and are not alike.
    """
    seen: dict[tuple[str, tuple[int, int]], str] = {}
    for it in items:
        key = (same_file_key(it.inner), it.version)
        if key in seen:
            raise _Rejected(f"{path.name}: the files of {label} were rejected: {seen[key]} and "
                            f"{it.entry.shown} are both {printable(it.inner)!r}; remove one")
        seen[key] = it.entry.shown


def _collect(it: _Item, found: Collection) -> None:
    """Turn one of a student's files into module candidates (a zip into several)."""
    inner = PurePosixPath(it.inner)
    if is_junk(inner.parts[:-1]) or inner.name.startswith("."):
        return
    rel = it.entry.shown
    if inner.name.lower().endswith(".zip") and refusal(inner.name) is None:
        _collect_zip(_read(it.entry, MAX_TOTAL + 1), it, found)
    else:
        _take(found, it.entry, rel, it.inner, it)


def _take(found: Collection, entry: Entry, rel: str, inner: str, it: _Item) -> None:
    """:meth:`Collection.take`, a file that cannot be read rejecting this student's files."""
    try:
        found.take(entry, rel, inner, it.family, it.version)
    except ARCHIVE_ERRORS as exc:
        raise _Rejected(f"{rel} could not be read ({exc})") from None


def _read(entry: Entry, n: int) -> bytes:
    try:
        return entry.read(n)
    except ARCHIVE_ERRORS as exc:
        raise _Rejected(f"{entry.shown} could not be read ({exc})") from None


def _collect_zip(data: bytes, it: _Item, found: Collection) -> None:
    """A zip the student uploaded: the same checks and caps as any zip a student hands in.

    Only one level: a zip inside it is reported and not opened.
    """
    rel = it.entry.shown
    if len(data) > MAX_TOTAL:
        raise _Rejected(f"{rel} was rejected: it is larger than {MAX_TOTAL // (1024 * 1024)} MiB")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for entry in archive_entries(zf, found.budget):
                shown = f"{rel}/{entry.shown}"
                if entry.parts[-1].lower().endswith(".zip") and not entry.is_link:
                    found.sub.ignored.append({"path": shown, "reason": "a zip inside an uploaded "
                                                                       "zip is not opened"})
                else:
                    _take(found, entry, shown, entry.name, it)
    except Refused as exc:
        raise _Rejected(f"{rel} was rejected: {exc}") from None
    except ARCHIVE_ERRORS as exc:
        raise _Rejected(f"{rel} is not a readable zip archive ({exc})") from None


# --------------------------------------------------------------------------------------------
# Canvas


@dataclass(frozen=True)
class CanvasFile:
    """What a Canvas download's file name says (canvas-lms lib/content_zipper.rb)."""

    name: str  # the user name as Canvas wrote it, or ``anon_<anonymous id>``
    late: bool
    user_id: str | None  # None under anonymous grading
    anonymous_id: str | None
    attachment_id: int
    original: str  # the file as uploaded (Canvas's display name, ``-N`` for a re-upload)


def canvas_file(top: str) -> CanvasFile | None:
    """``DoeJane_LATE_1001_5001_spawn.py`` read the way Canvas wrote it, or None.

    The user id is the first ``_<digits>_`` (Canvas rewrites any in the name, see CANVAS
    above), a ``_LATE``/``_late`` just before it is the late flag, and the attachment id
    follows: ``<name>[_LATE]_<user id>_<attachment id>_<display name>``.
    """
    first = _CANVAS_FIRST_ID.search(top)
    if first is None or len(first[1]) > 30:
        return None
    prefix = top[:first.start()]
    late = _CANVAS_LATE.search(prefix) is not None
    name = prefix[:-5] if late else prefix
    rest = _CANVAS_ATTACHMENT.match(top, first.end())
    if not name or rest is None:
        return None
    return CanvasFile(name, late, first[1], None, int(rest[1]), rest[2])


def canvas_anonymous_file(top: str) -> CanvasFile | None:
    """``anon_<anonymous id>[_LATE]_<attachment id>_<display name>`` (also ``anon_LATE_...``).

    Under anonymous grading Canvas writes the submission's anonymous id where the user name
    and id were: the download names nobody, and the anonymous id is the identity.
    """
    m = CANVAS_ANON.match(top)
    if m is None:
        return None
    return CanvasFile(f"anon_{m['anon']}", bool(m["late1"] or m["late2"]), None, m["anon"],
                      int(m["sid"]), m["orig"])


def _canvas_no_file(top: str) -> tuple[str, str] | None:
    """(name, user id) of a text entry or URL (``<name>_<user id>_text.html``...), or None."""
    first = top.find("_")  # the user id is the first number after an ``_``
    while first >= 0 and not top[first + 1:first + 2].isdigit():
        first = top.find("_", first + 1)
    m = _CANVAS_NO_FILE.match(top, first) if first > 0 else None
    if m is None or len(m[1]) > 30 or m.start() == 0:
        return None
    return top[:m.start()], m[1]


def _canvas(path: Path, entries: list[Entry], assignment: Assignment, batch: LmsBatch) -> None:
    files = [e for e in entries if not is_junk(e.parts) and len(e.parts) == 1]
    # Anonymous grading is per assignment: a download is anonymous when every file Canvas
    # named is in the anonymous form (an anonymous id may be all digits, ``anon_12345_...``,
    # which also reads as a student named "anon").
    anonymous = (any(canvas_anonymous_file(e.parts[0]) for e in files)
                 and not any(canvas_file(e.parts[0]) and not canvas_anonymous_file(e.parts[0])
                             for e in files))
    read = canvas_anonymous_file if anonymous else canvas_file
    groups: dict[str, list[_Item]] = {}
    people: dict[str, dict[str, Any]] = {}
    for e in entries:
        if is_junk(e.parts):
            continue
        top = e.parts[0]
        f = read(top) if len(e.parts) == 1 else None
        if f is None:
            loose = _canvas_no_file(top) if len(e.parts) == 1 and not anonymous else None
            if loose is not None:
                batch.skipped.append(f"{path}: {e.shown}: a Canvas entry without an uploaded "
                                     "file (text entry or URL?), skipped")
                continue
            batch.unmatched.append(e.shown)
            batch.skipped.append(f"{path}: {e.shown}: not named like a Canvas download file "
                                 "(<name>[_LATE]_<user id>_<id>_<file>), matches no student")
            continue
        key = f.user_id if f.user_id is not None else f"anon-{f.anonymous_id}"
        orig, number = _canvas_original(f.original)
        groups.setdefault(key, []).append(_Item(e, orig, orig, (number, f.attachment_id)))
        person = people.setdefault(key, {"lms": "canvas", "user_id": f.user_id, "name": f.name,
                                         "submission_id": None, "late": False, "email": None})
        if f.anonymous_id is not None:
            person["anonymous_id"] = f.anonymous_id
        person["late"] = person["late"] or f.late
        if person["submission_id"] is None or f.attachment_id > int(person["submission_id"]):
            person["submission_id"] = str(f.attachment_id)
    for key, items in groups.items():
        label = people[key]["name"] if anonymous else f"{people[key]['name']}_{key}"
        batch.submissions.append(_build(f"canvas-{key}", path, label, items, assignment,
                                        people[key]))


def _canvas_original(name: str) -> tuple[str, int]:
    """``spawn-2.py`` -> (``spawn.py``, 2): Canvas numbers a file uploaded again."""
    m = RESUBMITTED.match(name)
    if m is None:
        return name, 0
    return f"{m['stem']}{m['ext']}", int(m["n"])


# --------------------------------------------------------------------------------------------
# Moodle


def _moodle(path: Path, entries: list[Entry], assignment: Assignment, batch: LmsBatch) -> None:
    groups: dict[str, list[_Item]] = {}
    people: dict[str, dict[str, Any]] = {}
    text_only: dict[str, str] = {}
    for e in entries:
        if is_junk(e.parts):
            continue
        m = MOODLE.match(e.parts[0])
        if m is None:
            batch.unmatched.append(e.shown)
            batch.skipped.append(f"{path}: {e.shown}: not named like a Moodle download "
                                 "(<Full Name>_<id>_assignsubmission_file), matches no student")
            continue
        pid, name = m["pid"], printable(m["name"])
        if m["plugin"] != "file":
            text_only.setdefault(pid, name)  # online text is HTML, not code
            continue
        folder = len(e.parts) > 1
        if folder and m["rest"]:
            batch.unmatched.append(e.shown)
            batch.skipped.append(f"{path}: {e.shown}: in a folder named like a Moodle file, not "
                                 "a Moodle folder (<Full Name>_<id>_assignsubmission_file), skipped")
            continue
        inner = "/".join(e.parts[1:]) if folder else m["rest"]
        if not inner:
            continue
        groups.setdefault(pid, []).append(_Item(e, inner, inner))
        people.setdefault(pid, {"lms": "moodle", "user_id": pid, "name": name,
                                "submission_id": None, "late": False, "email": None})
    for pid, name in sorted(text_only.items()):
        if pid not in groups:
            batch.skipped.append(f"{path}: {name} ({pid}) handed in online text only, nothing "
                                 "to grade")
    for pid, items in groups.items():
        folder = f"{people[pid]['name']}_{pid}_assignsubmission_file_"
        batch.submissions.append(_build(f"moodle-{pid}", path, folder, items, assignment,
                                        people[pid]))


# --------------------------------------------------------------------------------------------
# Gradescope


def _gradescope(path: Path, entries: list[Entry], assignment: Assignment,
                batch: LmsBatch) -> None:
    meta: dict[str, dict[str, Any]] = {}
    meta_entry = next(e for e in entries if e.parts == (GRADESCOPE_METADATA,))
    if meta_entry.is_link or meta_entry.size > METADATA_MAX:
        batch.warnings.append(f"{path}: {GRADESCOPE_METADATA} is a symbolic link or too large; "
                              "not read, students are unknown")
    else:
        try:
            text = meta_entry.read(METADATA_MAX).decode("utf-8", errors="replace")
            meta = parse_gradescope_metadata(text)
        except ARCHIVE_ERRORS as exc:
            batch.warnings.append(f"{path}: {GRADESCOPE_METADATA} could not be read ({exc})")
    groups: dict[str, list[_Item]] = {}
    for e in entries:
        if is_junk(e.parts) or e.parts == (GRADESCOPE_METADATA,):
            continue
        m = GRADESCOPE_DIR.match(e.parts[0])
        if m is None or len(e.parts) < 2:
            batch.unmatched.append(e.shown)
            batch.skipped.append(f"{path}: {e.shown}: not in a submission_<id>/ folder, "
                                 "matches no student")
            continue
        inner = "/".join(e.parts[1:])
        groups.setdefault(e.parts[0], []).append(_Item(e, inner, inner))
    for folder, items in groups.items():
        record = meta.get(folder)
        if record is None:
            batch.unmatched.append(folder)
            batch.warnings.append(f"{path}: {folder} is not in {GRADESCOPE_METADATA}: graded, "
                                  "but it names no student")
        batch.submissions.append(_build(f"gradescope-{folder.split('_', 1)[1]}", path, folder,
                                        items, assignment, _gradescope_student(folder, record)))
    for folder, record in sorted(meta.items()):
        if folder not in groups:
            who = ", ".join(p.get("name") or p.get("sid") or "?" for p in record["submitters"])
            batch.skipped.append(f"{path}: {folder} ({who}) has no files in the export")


def _gradescope_student(folder: str, record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    people = record["submitters"]
    first = people[0] if people else {}
    student: dict[str, Any] = {
        "lms": "gradescope",
        "user_id": first.get("sid") or first.get("email") or "",
        "name": first.get("name") or "",
        "submission_id": folder.split("_", 1)[1],
        "late": bool(record.get("late")),
        "email": first.get("email"),
    }
    if record.get("created_at"):
        student["submitted_at"] = record["created_at"]
    if len(people) > 1:
        student["members"] = [{"user_id": p.get("sid") or p.get("email") or "",
                               "name": p.get("name") or "", "email": p.get("email")}
                              for p in people]
    return student


_TOP_KEY = re.compile(r"^(?P<key>[^\s'\"#-][^:]*):(\s|$)")
_KEY_VALUE = re.compile(r"^(?P<key>:?[A-Za-z_][\w?]*):(?:\s+(?P<value>.*))?$")
_LATE_KEY = re.compile(r"^:?late(ness)?\??$|^:?late_", re.IGNORECASE)


def parse_gradescope_metadata(text: str) -> dict[str, dict[str, Any]]:
    """``submission_<id>`` -> submitters (name, sid, email), ``created_at``, ``late``.

    Not a YAML parser on purpose: it reads only the few keys mpgrade needs from the shape
    Gradescope writes (Ruby's Psych, symbol keys)::

        submission_123456:
          :submitters:
          - :name: Jane Doe
            :sid: '2021001'
            :email: jane@example.edu
          :created_at: 2024-03-01 23:58:12.345678000 -08:00
          :score: 10.0
          :results: {...every autograder output...}

    and skips everything else by indentation. That is sturdier than a general parser here:
    the huge ``:results:`` block is where real exports break strict YAML parsers (Psych puts
    the closing quote of a multi-line string at column 0 and can split the file with ``...``),
    and none of it is needed; it also keeps PyYAML out of the dependencies. Gradescope's
    export has no documented lateness field; a ``:late?:``/``:lateness:``-style key is read
    if present (true, or a non-zero amount), otherwise ``late`` is False and ``created_at``
    lets the instructor compare with the due date.
    """
    result: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    key_indent = 2
    in_submitters = False
    person: dict[str, Any] | None = None
    person_indent = -1
    pos = 0
    while pos < len(text):
        # Lazily, line by line (up to METADATA_MAX of tiny lines: a list of them is gigabytes),
        # and past what is never read at C speed: outside a wanted record only a top-level key
        # matters, inside one past its submitters only a key at the record's indentation.
        if pos > 0 and (current is None or (key_indent >= 0 and not in_submitters)):
            jump = _next_key(key_indent if current is not None else -1).search(text, pos - 1)
            if jump is None:
                break
            pos = jump.start() + 1
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end].rstrip()
        pos = end + 1
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if indent == 0:
            top = _TOP_KEY.match(line)
            if top is not None:  # a new top-level key; quote closers and --- / ... are not
                name = top["key"].strip()
                wanted = GRADESCOPE_DIR.match(name) and (name in result or
                                                         len(result) < METADATA_RECORDS)
                current = result.setdefault(name, {"submitters": []}) if wanted else None
                in_submitters, person, key_indent = False, None, -1
            continue
        if current is None:
            continue
        if key_indent < 0 and not stripped.startswith("- "):
            key_indent = indent
        if in_submitters and len(current["submitters"]) >= METADATA_SUBMITTERS:
            in_submitters, person = False, None  # a group is a few students, not thousands
        if in_submitters and stripped.startswith("- ") and indent <= key_indent + 2:
            person = {}
            current["submitters"].append(person)
            person_indent = indent + 2
            stripped, indent = stripped[2:].lstrip(), person_indent
        if in_submitters and person is not None and indent == person_indent:
            kv = _KEY_VALUE.match(stripped)
            if kv is not None:
                field_name = kv["key"].lstrip(":")
                if field_name in ("name", "sid", "email"):
                    person[field_name] = _scalar(kv["value"])
            continue
        if indent == key_indent:
            kv = _KEY_VALUE.match(stripped)
            in_submitters, person = False, None
            if kv is None:
                continue
            key, value = kv["key"], _scalar(kv["value"])
            if key.lstrip(":") == "submitters":
                in_submitters = True
            elif key.lstrip(":") == "created_at" and value:
                current["created_at"] = value
            elif _LATE_KEY.match(key):
                current["late"] = _is_late(value)
    return result


METADATA_RECORDS = 100_000  # submissions in one export, far above any class
METADATA_SUBMITTERS = 100  # students in one group submission


@functools.lru_cache(maxsize=32)
def _next_key(indent: int) -> re.Pattern[str]:
    """The next line that can matter: a top-level key, or a key indented ``indent`` spaces."""
    top = r"[^\s'\"#-][^:\n]*:(?:[ \t\r\n]|$)"
    # Searched from the newline before a line: a literal first character is scanned for fast.
    if indent < 0:
        return re.compile(rf"\n{top}")
    return re.compile(rf"\n(?:{top}| {{{indent}}}:?[A-Za-z_][\w?]*:(?:[ \t\r\n]|$))")


def _scalar(value: str | None) -> str | None:
    """A plain or quoted YAML scalar on one line; anything fancier is kept as text."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("!"):  # a type tag: !ruby/object:BigDecimal 18:0.1e1
        value = value.split(" ", 1)[1] if " " in value else ""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if value in ("", "~", "null"):
        return None
    return value


def _is_late(value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "yes"):
        return True
    if value.lower() in ("false", "no"):
        return False
    try:
        return any(float(word) > 0 for word in value.split()[:1])
    except ValueError:
        return any(ch in "123456789" for ch in value)  # "00:12:03" (hours:minutes:seconds)
