"""What a submission is read from, a member of a zip or a file of a folder, as one kind of entry.

Every reader of student input (:mod:`grader.intake.submission` for folders and zips,
:mod:`grader.intake.lms` for LMS downloads and the zips inside them) goes through this module,
so each rule that keeps hostile input harmless exists once: which names are never used
(:func:`refusal`), what reading an archive can raise (:data:`ARCHIVE_ERRORS`), when an archive
must not be opened at all (:func:`check_archive`), how a file is opened without following a
symbolic link (:func:`read_nofollow`), and what one student may unpack in all (:class:`Budget`).
A rule spelled twice drifts: a corrupt LZMA member was once caught by one list of zip errors
and not by the other.
"""

from __future__ import annotations

import lzma
import os
import re
import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_FILE = 1024 * 1024  # a module larger than this is not a homework answer
MAX_MEMBERS = 2000
MAX_TOTAL = 64 * 1024 * 1024
MAX_RATIO = 200
MAX_DEPTH = 6
DANGEROUS = {"conftest.py", "pytest.ini", "sitecustomize.py", "usercustomize.py", "tox.ini",
             "setup.cfg", "pyproject.toml"}
SKIP_DIRS = {"__pycache__", "__MACOSX", ".git", ".venv", "venv", "node_modules", ".ipynb_checkpoints"}
# What reading a hostile archive can raise, for every reader of zips: ValueError covers a name
# flagged UTF-8 that is not, zlib.error and LZMAError corrupt compressed data, RuntimeError an
# encrypted member. Any of them is an ``error`` for the submission whose archive it is, never
# an exception out of discovery.
ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError,
                  NotImplementedError, EOFError, ValueError, zlib.error, lzma.LZMAError)


def unexpected(exc: BaseException) -> str:
    """A short, printable account of an exception nobody expected (it becomes an ``error``)."""
    text = printable(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= 300 else text[:300] + "..."


def printable(name: str) -> str:
    """A name safe to print: control characters (newlines, terminal escapes) become '?'."""
    return "".join("?" if unicodedata.category(c).startswith("C") else c for c in name)


def refusal(base: str, is_link: bool = False) -> str | None:
    """Why an entry named ``base`` is never used, or None: the one check of names.

    A symbolic link is never followed (it could point at the grader's own files); a file that
    could change how tests run (``conftest.py``, ``pytest.ini``, a ``.pth``...) is never used.
    """
    if is_link:
        return "symbolic links are never followed"
    if base in DANGEROUS or base.endswith(".pth"):
        return f"{base} could change how tests run; it is never used"
    return None


def is_junk(parts: tuple[str, ...]) -> bool:
    """Whether a path goes through what tools leave, not students (``__MACOSX``, ``.git``...)."""
    return any(p in SKIP_DIRS or p.startswith(".") for p in parts)


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


class Refused(Exception):
    """An archive that must not be opened; the message is :func:`check_archive`'s reason."""


def read_nofollow(path: Path, n: int) -> bytes:
    """At most ``n`` bytes of the regular file at ``path``, never through a symbolic link.

    Listing a folder and reading a file are two steps, and the student's files can change in
    between: O_NOFOLLOW refuses a file swapped for a symlink, O_NONBLOCK and the check that
    the file is regular refuse a FIFO (whose open or read would wait forever). Either is an
    OSError, which every caller reports as that submission's error.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        return fh.read(n)


@dataclass
class Entry:
    """One file a submission is read from: a zip member or a file of a folder, alike.

    Readers decide on ``parts``, ``size`` and ``is_link`` without reading anything; ``read``
    takes at most n bytes and may raise any of :data:`ARCHIVE_ERRORS`. ``info`` is the zip
    member, or a stand-in for a folder's file, so that :func:`check_archive` applies to the
    files of an extracted download too.
    """

    parts: tuple[str, ...]  # path below the layout root (a wrapper folder removed)
    name: str  # the path as it is in the archive or folder, ``/``-separated
    size: int
    is_link: bool
    info: zipfile.ZipInfo
    read: Callable[[int], bytes]  # at most n bytes
    overflow: bool = False  # stands for a folder with more files than one student may have

    @property
    def shown(self) -> str:
        """The path, printable: a name with newlines or escapes cannot forge a message."""
        return printable(self.name)

    def below(self, n: int) -> Entry:
        """The same entry with the first ``n`` parts of its path removed (a wrapper folder)."""
        return Entry(self.parts[n:], self.name, self.size, self.is_link, self.info, self.read,
                     self.overflow)


def _nothing(n: int) -> bytes:
    return b""


def zip_entries(zf: zipfile.ZipFile) -> list[Entry]:
    """Every file member of a zip as an entry, folders left out; nothing is checked here.

    ``..`` and ``/`` are left out of the parts only to say where a member belongs;
    :func:`check_archive`, which sees the real name, rejects it.
    """
    entries = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        name = member_name(info)
        parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "/", ".", ".."))
        if not parts:
            continue

        def read(n: int, info: zipfile.ZipInfo = info) -> bytes:
            with zf.open(info) as member:
                return member.read(n)

        entries.append(Entry(parts, name, info.file_size, stat.S_ISLNK(info.external_attr >> 16),
                             info, read))
    return entries


def archive_entries(zf: zipfile.ZipFile, budget: Budget) -> list[Entry]:
    """The files of a zip one student handed in, once the archive as a whole is safe to read.

    Raises :class:`Refused` with :func:`check_archive`'s reason, and OverBudget when its
    members are more than the student has left. Members in what tools leave (``__MACOSX/``,
    ``.git/``) are left out.
    """
    infos = zf.infolist()
    problem = check_archive(infos)
    if problem:
        raise Refused(problem)
    budget.members(len(infos))
    return [e for e in zip_entries(zf) if not is_junk(e.parts[:-1])]


def folder_entry(path: Path, name: str, parts: tuple[str, ...], is_link: bool) -> Entry:
    """A file of a folder as an entry, read with :func:`read_nofollow`; a link is never read."""
    info = zipfile.ZipInfo(name)
    info.flag_bits |= 0x800  # a real name, not cp437 bytes to repair
    if is_link:
        return Entry(parts, name, 0, True, info, _nothing)
    info.file_size = path.lstat().st_size
    return Entry(parts, name, info.file_size, False, info,
                 lambda n: read_nofollow(path, n))


def overflow_entry(name: str, parts: tuple[str, ...]) -> Entry:
    """Stands for a folder with more files than one student may hand in; it is never read."""
    return Entry(parts, name, 0, False, zipfile.ZipInfo(name + "/*"), _nothing, overflow=True)
