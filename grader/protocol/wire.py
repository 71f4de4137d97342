"""The wire between the host and the sandbox, all of it, in one file to audit.

What crosses from the host into the sandbox (the job folder) and back (one framed document on
the supervisor's stdout), and the names both sides use for it. The host side (``grading``,
``sandbox/``) and the sandbox side (``harness/``) import these names from here and spell none
of them themselves. Standard library only: the warm-start stub imports it before anything else.

Host -> sandbox
    * the job folder, read-only to student code: :data:`JOB_FILE` (what to run),
      ``assignment.toml``, the tests in scope and ``submission/`` (see ``grading.job_files``);
    * the sandbox's environment (:data:`SANDBOX_ENV` and friends below): what the sandbox
      provides, so a job is the same whatever runs it;
    * the secret environment: :data:`NONCE_ENV`, the result nonce. A cold sandbox passes it in
      the process environment; a warm one (started before its job) receives it in
      :data:`GO_FILE`, written owner-only and renamed into place last (:func:`write_go`), which
      the waiting stub reads (:func:`wait_for_go`) before it runs the supervisor.

Sandbox -> host
    * exactly one result document between two lines carrying the nonce (:func:`frame`,
      :func:`unframe`); anything else on stdout, or two frames, makes the result an ``error``.
      The document is then size-capped, decoded with bounds and validated against the schema
      (``protocol.results``) before the host believes a word of it.

Sandbox -> student process and back: ``grader/_boot/mpgrade_wire.py`` (standalone, because
student processes import nothing of mpgrade); its names are re-exported at the end of this
module so this file lists the whole protocol.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from grader._boot.mpgrade_wire import (  # noqa: F401 - re-exported: the student-side words
    CLAIM_FIFO_ENV,
    DUMP_DIR_ENV,
    GRADER_PID_ENV,
    NPROC_ENV,
    PID_LOG_ENV,
    READY_FD_ENV,
    SEAL_AT_EXEC,
    SEAL_NONE,
    SEAL_SELF,
    SEALED,
)

# --- the job folder ------------------------------------------------------------------------------

JOB_FILE = "job.json"
"""What to run: submission id, scope, exercises, start method, limits (written by the host)."""

GO_FILE = ".mpgrade-go"
"""A warm sandbox's hand-over: the job's secret environment, the last file to arrive."""

RESERVED = frozenset({GO_FILE, GO_FILE + ".tmp"})
"""Job-folder names a job's own files may not use."""

# --- the sandbox's environment ------------------------------------------------------------------

NONCE_ENV = "MPGRADE_NONCE"  # secret: the result frame's nonce
SANDBOX_ENV = "MPGRADE_SANDBOX"  # "docker" or "local": which sandbox runs the supervisor
STUDENT_USER_ENV = "MPGRADE_STUDENT_USER"  # "uid:gid" student code runs as (Docker)
STUDENT_PYTHON_ENV = "MPGRADE_STUDENT_PYTHON"  # the execute-only interpreter for student code
STUDENT_NPROC_ENV = "MPGRADE_STUDENT_NPROC"  # process cap of the student uid
PRIVATE_ENV = "MPGRADE_PRIVATE"  # the supervisor's own folder, closed to student code
CGROUP_ENV = "MPGRADE_CGROUP"  # where the sandbox's cgroup counters are read
RLIMITS_ENV = "MPGRADE_RLIMITS"  # "core=0,fsize=N,nofile=N" (local sandbox; Docker sets ulimits)
IDLE_ENV = "MPGRADE_WARM_IDLE"  # seconds a warm sandbox waits for its job before it exits

# --- the result frame ---------------------------------------------------------------------------

BEGIN = "MPGRADE-RESULT-BEGIN"
END = "MPGRADE-RESULT-END"


def frame(nonce: str, document: str) -> bytes:
    """The supervisor's whole stdout: one document between two nonce lines."""
    return f"\n{BEGIN} {nonce}\n{document}\n{END} {nonce}\n".encode()


def unframe(stdout: bytes, nonce: str) -> bytes:
    """The one document between the nonce lines; ValueError when there is not exactly one."""
    begin, end = f"{BEGIN} {nonce}\n".encode(), f"\n{END} {nonce}\n".encode()
    if stdout.count(begin) != 1 or stdout.count(end) != 1:
        raise ValueError("the sandbox did not produce exactly one result framed with this run's nonce")
    start = stdout.index(begin) + len(begin)
    stop = stdout.index(end)
    if stop < start:
        raise ValueError("the result frame is malformed")
    return stdout[start:stop]


# --- the warm hand-over: both halves ------------------------------------------------------------


def check_reserved(names: Iterable[str]) -> None:
    """ValueError when a job's own file would take a name of the hand-over."""
    if any(os.path.normpath(rel) in RESERVED for rel in names):
        raise ValueError(f"job file {GO_FILE!r} is reserved for the sandbox")


def write_go(folder: Path, secrets: Mapping[str, str]) -> None:
    """Host half: the secret environment, owner-only, renamed into place after every other file.

    The rename is the signal: the waiting stub never sees a partial go file, and by the time it
    exists every file of the job is in the folder.
    """
    tmp = folder / (GO_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(secrets), f)
    os.rename(tmp, folder / GO_FILE)


def wait_for_go(folder: str, idle: float) -> dict[str, str] | None:
    """Container half: the secret environment, or None when no job came in ``idle`` seconds.

    SystemExit on a go file that is not a JSON object of strings: the host writes it, so a bad
    one means something else did, and the stub must not run anything.
    """
    path = os.path.join(folder, GO_FILE)
    deadline = time.monotonic() + idle
    interval = 0.001
    while True:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)  # complete: the host renames it into place
        except ValueError:
            raise SystemExit("grader.harness.warmstart: malformed go file") from None
        except FileNotFoundError:
            if time.monotonic() > deadline:
                return None
            time.sleep(interval)
            interval = min(interval * 1.5, 0.01)
            continue
        if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise SystemExit("grader.harness.warmstart: malformed go file")
        return data
