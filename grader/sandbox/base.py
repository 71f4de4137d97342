"""The one narrow interface between "what to grade" and "where it runs".

A sandbox takes a :class:`Job` (files, a command, limits: plain data) and returns an
:class:`Outcome` (exit status, captured stdout bytes, stats: plain data). Nothing above this
line knows whether a container or a child process did the work, and nothing below it knows
about assignments, pytest or scores. Results cross as bytes; parsing them is the caller's job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Self

# The command's argv[0] may be this word: each sandbox replaces it with its own Python, the
# one that has the grader installed (the image's venv, or the host's interpreter).
PYTHON = "python"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one job. Defaults live here, and only here; see README "Sandbox limits".

    An assignment may override any of them in ``[sandbox]`` of its manifest.
    """

    wall_timeout: float = 600.0  # seconds for the whole job, enforced from the host
    memory: int = 1024 * 1024 * 1024  # bytes of RAM, no swap
    cpus: float = 2.0  # CPU cores the container may use
    pids: int = 256  # processes + threads at once (fork bombs stop here)
    tmpfs: int = 256 * 1024 * 1024  # bytes of scratch space for student code (/tmp)
    shm: int = 128 * 1024 * 1024  # bytes of /dev/shm (Queue, Lock, Value and shared memory use it)
    nofile: int = 1024  # open files per process
    fsize: int = 128 * 1024 * 1024  # largest file a process may write
    output: int = 8 * 1024 * 1024  # bytes of the job's stdout kept; the rest is dropped

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Limits:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown sandbox limits: {', '.join(sorted(unknown))}")
        base = cls()
        return replace(base, **{k: type(getattr(base, k))(v) for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Job:
    """Work for a sandbox: files to lay out (read-only for the job), a command, limits.

    ``files`` maps relative paths to contents and modes are chosen by the sandbox (owner-only).
    ``env`` is passed to the command only; ``secret_env`` too, but is never logged or stored.
    """

    files: Mapping[str, bytes]
    command: tuple[str, ...]
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)
    name: str = "job"


@dataclass(frozen=True)
class Outcome:
    """What came back: never anything but bytes and numbers."""

    exit_status: int | None  # None when the job was killed from outside (timeout, cancel)
    stdout: bytes
    stderr_tail: bytes = b""
    timed_out: bool = False
    oom_killed: bool = False
    cancelled: bool = False
    stats: Mapping[str, float] = field(default_factory=dict)


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run anything here (no engine, no image); the message says what to do."""


class Sandbox(Protocol):
    """Where jobs run. Used as ``with DockerSandbox(...) as box:``, it is closed on the way out,
    so neither a finished nor an interrupted caller leaves its containers or processes behind.
    Implementations subclass it for the context manager below."""

    name: str

    def run(self, job: Job) -> Outcome:
        """Run the job to completion or to its wall-clock limit; never raise for the job's faults."""
        ...

    def close(self) -> None:
        """Stop every job still running (Ctrl-C) and release what the sandbox holds."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    """Lay out job files under ``root`` owner-only; refuse paths that would leave ``root``."""
    root = root.resolve()
    for rel, content in files.items():
        target = (root / rel).resolve()
        if not str(target).startswith(str(root) + os.sep):
            raise ValueError(f"job file {rel!r} would be outside the job folder")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)


def warm_shape(job: Job) -> tuple | None:
    """What a process or container started ahead of its job must be started with (else None).

    Jobs of the same shape can be served by one started for any of them: ``python -m MODULE``
    jobs with the same command, environment and limits. The job's files and secret environment
    are left out (they reach a warm one through its job folder), and so is the wall-clock limit,
    which the host enforces from the moment the job is handed over.
    """
    if len(job.command) < 3 or job.command[0] != PYTHON or job.command[1] != "-m":
        return None
    return (tuple(job.command), tuple(sorted(job.env.items())), replace(job.limits, wall_timeout=0.0))
