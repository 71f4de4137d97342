"""What hidden and public tests import (besides the ``student`` fixture)."""

from __future__ import annotations

import os
import stat


class Mistake(AssertionError):
    """A failed expectation with a hint chosen at run time, for when one marker hint is not enough.

    ``raise Mistake(f"expected {n} results, got {len(got)}", hint="did you ...?")``
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def check_clean(call, what: str, *, hint: str) -> None:
    """Fail with ``hint`` if workers of a call are still running or were never joined.

    ``call`` is ``student.last``; ``what`` names the call in the message ("ping_pong(3)").
    """
    if call.leftover:
        raise Mistake(f"expected no process still running after {what} returned, got "
                      f"{len(call.leftover)} still running", hint=hint)
    if call.zombies:
        raise Mistake(f"expected every child of {what} to be joined, got {len(call.zombies)} "
                      "never joined (zombies)", hint=hint)


MAX_STUDENT_FILE = 1024 * 1024  # bytes read_student_file reads unless told otherwise


def read_student_file(path: str | os.PathLike[str], *, limit: int = MAX_STUDENT_FILE) -> bytes:
    """The bytes of a file student code wrote (in ``tmp_path``), read without trusting it.

    Student code chose what is at that path, and the test reads as the grader's user, who can
    read the hidden tests: a link to them, quoted back in the test's message, would show them
    to the student. So this reads only a regular file reached through no link (not the file
    itself, nor a folder on the way: the opened file's real path must be ``path``), with one
    name (not a hard link to another file), at most ``limit`` bytes; a FIFO cannot block it.
    Anything else fails the test with a :class:`Mistake` that quotes nothing of the file.
    ``path`` as pytest gives it (``tmp_path / "out.txt"``: absolute, without links).
    """
    where = os.path.abspath(os.fspath(path))
    name = os.path.basename(where)
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise Mistake(f"expected a file {name}, found none") from None
    except OSError as exc:  # ELOOP: the name is a link
        raise Mistake(f"expected {name} to be a plain file, but it cannot be opened as one "
                      f"({exc.strerror or type(exc).__name__})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Mistake(f"expected {name} to be a plain file, got another kind of file")
        if st.st_nlink != 1:
            raise Mistake(f"expected {name} to be a plain file, got a hard link to another file")
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc: the link checks above are what is left
            real = where
        if real != where:
            raise Mistake(f"expected {name} to be a plain file, got one reached through a link")
        if st.st_size > limit:
            raise Mistake(f"expected {name} to hold at most {limit} bytes, got {st.st_size}")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # it grew while being read
        raise Mistake(f"expected {name} to hold at most {limit} bytes, got more")
    return data


def read_student_text(path: str | os.PathLike[str], *, limit: int = MAX_STUDENT_FILE,
                      encoding: str = "utf-8") -> str:
    """:func:`read_student_file` decoded (undecodable bytes replaced, never an exception)."""
    return read_student_file(path, limit=limit).decode(encoding, errors="replace")
