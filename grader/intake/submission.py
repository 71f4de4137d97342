"""Turning what a student handed in (a folder, a zip, one file) into a submission.

Only the assignment's module files, found by exact name, are taken; everything that could
change how tests run (``conftest.py``, ``pytest.ini``, ``sitecustomize.py``, ``.pth`` files,
symlinks) is ignored and reported. Archives are read defensively: no path leaves the archive,
and member count, sizes and compression ratio are capped, so a hostile zip becomes an
``error`` for that submission and never a problem for the batch.
"""

from __future__ import annotations

import hashlib
import lzma
import re
import stat
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from grader.assignment import Assignment
from grader.intake import notebook

MAX_FILE = 1024 * 1024  # a module larger than this is not a homework answer
MAX_MEMBERS = 2000
MAX_TOTAL = 64 * 1024 * 1024
MAX_RATIO = 200
MAX_DEPTH = 6
DANGEROUS = {"conftest.py", "pytest.ini", "sitecustomize.py", "usercustomize.py", "tox.ini",
             "setup.cfg", "pyproject.toml"}
# Hidden entries of a folder of submissions that are skipped without a word: version control,
# editors and file managers put them there, no student hands them in. Any other name that
# starts with a dot (``..x``, ``.alice``) is skipped *and reported*, so nobody vanishes.
QUIET_HIDDEN = {".git", ".gitignore", ".gitattributes", ".DS_Store", ".venv", ".idea", ".vscode",
                ".ipynb_checkpoints", ".Trash", ".Trashes", ".Spotlight-V100", ".fseventsd"}
SKIP_DIRS = {"__pycache__", "__MACOSX", ".git", ".venv", "venv", "node_modules", ".ipynb_checkpoints"}
# What reading a hostile archive can raise, for every reader of zips (this module and
# grader.intake.lms): ValueError covers a name flagged UTF-8 that is not, zlib.error and LZMAError
# corrupt compressed data, RuntimeError an encrypted member. Any of them is an ``error`` for
# the submission whose archive it is, never an exception out of discovery.
ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError,
                  NotImplementedError, EOFError, ValueError, zlib.error, lzma.LZMAError)


def unexpected(exc: BaseException) -> str:
    """A short, printable account of an exception nobody expected (it becomes an ``error``)."""
    text = f"{type(exc).__name__}: {exc}"
    text = "".join("?" if unicodedata.category(c).startswith("C") else c for c in text)
    return text if len(text) <= 300 else text[:300] + "..."


def ignore_reason(base: str) -> str | None:
    """Why a file named ``base`` is never used (it could change how tests run), or None."""
    if base in DANGEROUS or base.endswith(".pth"):
        return f"{base} could change how tests run; it is never used"
    return None


def member_name(info: zipfile.ZipInfo) -> str:
    """A member's name as unzip and file managers show it: ``/`` separators, UTF-8 repaired.

    Without flag bit 11, zipfile decodes names as cp437, which never fails but garbles the
    names many zip tools write in UTF-8 anyway (``José`` becomes ``Jos├⌐``). If the cp437
    bytes are valid UTF-8 that reading is used; otherwise the cp437 name stays. Backslashes
    are separators, as unzip reads them.
    """
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name.replace("\\", "/")


def same_file_key(name: str) -> str:
    """Names that one file system or another would store as the same file get the same key.

    ``a/./b.py``, ``a//b.py``; case (macOS and Windows); Unicode normalisation (macOS).
    """
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "/")]
    return unicodedata.normalize("NFC", "/".join(parts)).casefold()


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


class OverBudget(Exception):
    """A submission unpacks to more than one student may hand in; the message says what."""


class Budget:
    """What one student's submission may unpack in all, whatever it is made of.

    Members (files and folders) and the bytes actually read are counted across every folder,
    zip, zip inside an LMS download and notebook of that one student, so that many small
    archives or a thousand folders cannot add up to what one large archive may not: every copy
    of a module is held in memory until one is chosen, and this is what bounds it.
    """

    def __init__(self, members: int = MAX_MEMBERS, total: int = MAX_TOTAL) -> None:
        self.members_left = members
        self.bytes_left = total

    def members(self, n: int = 1) -> None:
        self.members_left -= n
        if self.members_left < 0:
            raise OverBudget(f"it has more than {MAX_MEMBERS} files and folders")

    def read(self, n: int) -> None:
        self.bytes_left -= n
        if self.bytes_left < 0:
            raise OverBudget(f"its files unpack to more than {MAX_TOTAL // (1024 * 1024)} MiB")


_SAFE_ID = re.compile(r"[^A-Za-z0-9._@+-]+")


def submission_id(name: str) -> str:
    """A file-name-safe id from a folder or archive name (it names ``<id>.json``)."""
    stem = name[:-4] if name.lower().endswith(".zip") else name
    clean = _SAFE_ID.sub("_", stem).strip("._") or "submission"
    return clean[:120]


def _choose(assignment: Assignment, candidates: dict[str, list[tuple[str, bytes]]], sub: Submission) -> None:
    """Pick one file per module name: the one in ``exercises/<id>/`` if any, else the shallowest."""
    for name in assignment.submitted_files:
        found = candidates.get(name, [])
        if not found:
            sub.missing.append(name)
            continue
        ex = assignment.exercise_of_file(name)
        layout_dir = ex.id if ex is not None else None
        found.sort(key=lambda item, d=layout_dir: _rank(item[0], d))
        sub.files[name] = found[0][1]
        for rel, _ in found[1:]:
            sub.ignored.append({"path": rel, "reason": f"another {name} was used ({found[0][0]})"})


def _rank(rel: str, layout_dir: str | None) -> tuple[int, int, bool]:
    parts = PurePosixPath(rel).parts
    in_layout = layout_dir is not None and len(parts) >= 2 and parts[-2] == layout_dir
    return (0 if in_layout else 1, len(parts), rel.lower().endswith(".ipynb"))


def _consider(rel: str, size: int, is_link: bool, wanted: set[str], sub: Submission) -> bool:
    """Whether a member should be read; reports the ones that are dangerous or unusable."""
    base = PurePosixPath(rel).name
    if is_link:
        sub.ignored.append({"path": rel, "reason": "symbolic links are never followed"})
        return False
    reason = ignore_reason(base)
    if reason:
        sub.ignored.append({"path": rel, "reason": reason})
        return False
    is_notebook = base.lower().endswith(".ipynb")
    if base not in wanted and not is_notebook:
        return False
    limit = notebook.NOTEBOOK_MAX if is_notebook else MAX_FILE
    if size > limit:
        sub.ignored.append({"path": rel, "reason": f"larger than {limit} bytes"})
        return False
    return True


def _add_candidate(rel: str, data: bytes, assignment: Assignment,
                   candidates: dict[str, list[tuple[str, bytes]]], sub: Submission) -> None:
    """A module file as it is, a notebook as the module it stands for (magics dropped, noted)."""
    name = PurePosixPath(rel).name
    limit = notebook.NOTEBOOK_MAX if name.lower().endswith(".ipynb") else MAX_FILE
    if len(data) > limit:  # it grew after it was listed
        sub.ignored.append({"path": rel, "reason": f"larger than {limit} bytes"})
        return
    if name.lower().endswith(".ipynb"):
        conv = notebook.convert(data, rel, assignment, MAX_FILE)
        sub.ignored.extend(conv.ignored)
        if conv.module is None or conv.source is None:
            return
        name, data = conv.module, conv.source
    candidates.setdefault(name, []).append((rel, data))


def from_folder(path: Path, assignment: Assignment, sub_id: str | None = None) -> Submission:
    sub = Submission(id=sub_id or submission_id(path.name), source=str(path))
    wanted = set(assignment.submitted_files)
    candidates: dict[str, list[tuple[str, bytes]]] = {}
    root = path.resolve()
    budget = Budget()

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        budget.members(len(entries))
        for entry in entries:
            rel = str(entry.relative_to(root))
            if entry.is_symlink():
                _consider(rel, 0, True, wanted, sub)
            elif entry.is_dir():
                if depth < MAX_DEPTH and entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    walk(entry, depth + 1)
            elif entry.is_file():
                st = entry.lstat()
                if _consider(rel, st.st_size, False, wanted, sub):
                    with entry.open("rb") as fh:
                        data = fh.read(_read_limit(rel))
                    budget.read(len(data))
                    _add_candidate(rel, data, assignment, candidates, sub)

    try:
        walk(root, 0)
    except OverBudget as exc:
        return _over_budget(sub, path.name, exc)
    _choose(assignment, candidates, sub)
    return sub


def _read_limit(rel: str) -> int:
    """How much of a member to read: one byte over its cap, so a file that grew is noticed."""
    return (notebook.NOTEBOOK_MAX if rel.lower().endswith(".ipynb") else MAX_FILE) + 1


def _over_budget(sub: Submission, name: str, exc: OverBudget) -> Submission:
    sub.files.clear()
    sub.missing.clear()
    sub.error = f"{name} was rejected: {exc}; a submission holds at most {MAX_MEMBERS} files " \
                f"and {MAX_TOTAL // (1024 * 1024)} MiB of them in all"
    return sub


def from_zip(path: Path, assignment: Assignment, sub_id: str | None = None) -> Submission:
    sub = Submission(id=sub_id or submission_id(path.name), source=str(path))
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            problem = check_archive(infos)
            if problem:
                sub.error = f"{path.name} was rejected: {problem}"
                return sub
            wanted = set(assignment.submitted_files)
            candidates: dict[str, list[tuple[str, bytes]]] = {}
            budget = Budget()
            budget.members(len(infos))
            for info in infos:
                if info.is_dir():
                    continue
                name = member_name(info)
                parts = PurePosixPath(name).parts
                if any(p in SKIP_DIRS or p.startswith(".") for p in parts[:-1]):
                    continue
                is_link = stat.S_ISLNK(info.external_attr >> 16)
                if _consider(name, info.file_size, is_link, wanted, sub):
                    with zf.open(info) as member:
                        data = member.read(_read_limit(name))
                    budget.read(len(data))
                    _add_candidate(name, data, assignment, candidates, sub)
    except OverBudget as exc:
        return _over_budget(sub, path.name, exc)
    except ARCHIVE_ERRORS as exc:
        sub.error = f"{path.name} is not a readable zip archive ({exc})"
        return sub
    _choose(assignment, candidates, sub)
    return sub


def check_archive(infos: list[zipfile.ZipInfo]) -> str | None:
    """Why an archive must not be opened (traversal, bomb, too many members, a name twice), or None.

    A name that is in the archive twice (``a/spawn.py`` and ``a/spawn.py``, or ``a\\spawn.py``,
    ``a/./spawn.py``, ``A/Spawn.py``: the same file once unpacked somewhere) is refused rather
    than one copy picked: a reader may take the first, unzip and file managers keep the last,
    so the code graded would not be the code a TA or a similarity check sees.
    """
    if len(infos) > MAX_MEMBERS:
        return f"it has {len(infos)} members (at most {MAX_MEMBERS})"
    total = 0
    seen: dict[str, str] = {}
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in PurePosixPath(name.replace("\\", "/")).parts:
            return f"member {name!r} points outside the archive"
        if not info.is_dir():
            shown = member_name(info)
            key = same_file_key(shown)
            if key in seen:
                also = "" if seen[key] == shown else f" (as {seen[key]!r} and {shown!r})"
                return (f"member {shown!r} is in it twice{also}: unzip keeps the last copy, "
                        "so which one would be graded is not what you see; remove one")
            seen[key] = shown
        total += info.file_size
        if total > MAX_TOTAL:
            return f"it unpacks to more than {MAX_TOTAL // (1024 * 1024)} MiB"
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1024 * 1024:
            return f"member {name!r} has a compression ratio above {MAX_RATIO} (zip bomb?)"
    # The whole archive too: sixty members of exactly 1 MiB each pass the check above.
    packed = sum(info.compress_size for info in infos)
    if total > 1024 * 1024 and packed and total / packed > MAX_RATIO:
        return f"it has a compression ratio above {MAX_RATIO} (zip bomb?)"
    return None


def from_file(path: Path, assignment: Assignment) -> Submission:
    """A lone module file, e.g. ``spawn.py``, or notebook; the id is the file's name."""
    if path.suffix.lower() == ".ipynb":
        return from_notebook(path, assignment)
    if path.name not in assignment.submitted_files:
        raise NotASubmission(f"{path}: not one of the files of this assignment ({', '.join(assignment.submitted_files)})")
    return from_folder_files(path, assignment)


def from_folder_files(path: Path, assignment: Assignment) -> Submission:
    sub = Submission(id=submission_id(path.stem), source=str(path))
    if path.is_symlink():
        sub.error = f"{path.name} is a symbolic link"
        return sub
    data = path.read_bytes()
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
    with path.open("rb") as fh:
        data = fh.read(notebook.NOTEBOOK_MAX + 1)
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


def discover(paths: list[Path], assignment: Assignment) -> tuple[list[Submission], list[str]]:
    """Every submission under the given paths, and a message for each thing that is not one.

    An LMS bulk download is recognised only at a path given here, never inside a folder of
    submissions: there every entry is one student's submission named after itself, whatever
    it holds. Otherwise a student's zip laid out like a Gradescope export (a
    ``submission_metadata.yml`` naming other students) would be read as many students and
    could hand in work under a classmate's identity while its own name vanished.
    """
    from grader.intake.lms import discover_lms  # grader.intake.lms builds on this module

    found: list[Submission] = []
    skipped: list[str] = []

    def lms_download(path: Path) -> bool:
        """Take an LMS bulk download (many students) whole; its warnings are reported."""
        batch = discover_lms(path, assignment)
        if batch is None:
            return False
        skipped.extend(batch.warnings)
        if not batch.recognized:
            return False
        found.extend(batch.submissions)
        skipped.extend(batch.skipped)
        return True

    def add(entry: Path) -> None:
        try:
            if entry.is_symlink():
                skipped.append(f"{entry}: symbolic link, skipped")
            elif entry.is_dir():
                found.append(from_folder(entry, assignment))
            elif entry.suffix.lower() == ".zip":
                found.append(from_zip(entry, assignment))
            elif entry.suffix == ".py" or entry.suffix.lower() == ".ipynb":
                found.append(from_file(entry, assignment))
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
