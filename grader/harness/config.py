"""What the mpgrade pytest plugin needs to know about a run, as one typed, frozen object.

The supervisor builds a :class:`HarnessConfig` from the job and the sandbox's environment and
hands it to the plugin object itself (``pytest.main(args, plugins=[MpgradePlugin(config)])``):
nothing of a grading run crosses between the two as command-line text or environment variables
that a typo, a stray variable or another plugin could change on the way, and this file is the
one place that says what the plugin can be told. Someone running pytest by hand builds the same
object from the ``--mpgrade-*`` options (``grader.harness.plugin``).

Standard library and ``grader.assignment`` only, so the supervisor can build it before it
imports pytest.
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from pathlib import Path

from grader.assignment import START_METHODS


@dataclass(frozen=True)
class HarnessConfig:
    """One grading run as the ``student`` fixture sees it; ``None`` means "the default"."""

    submission: Path | None = None
    """Folder holding the student's modules; None: each test file's own folder (authoring)."""
    start_method: str | None = None
    """Start method of student calls; None: the one of each test file's assignment."""
    call_timeout: float | None = None
    """Default wall-clock limit of one call, seconds; None: the assignment's ``call_timeout``."""
    output_limit: int | None = None
    """Bytes of output one call may produce; None: the assignment's ``output_limit``."""
    student_user: tuple[int, int] | None = None
    """(uid, gid) student code runs as (needs root); None: the user running pytest."""
    student_python: Path | None = None
    """Interpreter for student code; None: the one running pytest."""
    max_processes: int | None = None
    """Most processes + threads the student user may have (only with ``student_user``)."""
    cgroup: Path | None = None
    """cgroup v2 folder whose memory / pids events tell memory and process limits apart."""
    scratch: Path | None = None
    """Where per-call scratch folders go; None: the system's temporary folder."""
    helpers: Path | None = None
    """The assignment's helpers, copied where student processes may read them; None: the
    assignment's own folder (authoring)."""
    prestart: bool = True
    """Boot each call's process while the previous call runs (hides 40-60 ms a call)."""
    budget: float | None = None
    """Seconds the run's tests may spend in student calls together, counted from collection
    (an LMS that kills the whole job after a fixed time: PrairieLearn's 30 s). Each test gets a
    share that leaves the later tests their time, its calls their own limits within it
    (``grader.harness.boundary.runner.TimeShare``), so a submission that hangs in every test
    still ends, with every test that passes scored. None: every call has only its own limit."""

    def __post_init__(self) -> None:
        # Checked once, whoever built it (the command line's choices checked it before).
        if self.start_method is not None and self.start_method not in START_METHODS:
            raise ValueError(f"start method {self.start_method!r} is not one of {START_METHODS}")
        if self.budget is not None and not self.budget > 0:
            raise ValueError(f"the time budget must be a positive number of seconds, not {self.budget!r}")


def parse_user(spec: str | None) -> tuple[int, int] | None:
    """``name``, ``uid`` or ``uid:gid`` as (uid, gid); None for an empty spec.

    Sandboxes pass ``uid:gid`` (no user database lookup); a name is for runs by hand and
    raises KeyError when the system does not know it.
    """
    if not spec:
        return None
    name, _, group = spec.partition(":")
    if name.isdigit():
        uid = int(name)
        return uid, int(group) if group.isdigit() else uid
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid
