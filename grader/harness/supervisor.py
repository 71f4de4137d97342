"""The supervisor that runs inside a sandbox: ``python -m grader.harness`` in the job folder.

It lays out the student's files where student processes can read them, runs pytest with the
public and hidden tests (which call student code only through the ``student`` fixture), turns
pytest-json-report's report into a validated result document, and writes that document, and
nothing else, to its original stdout between two lines carrying a nonce only it knows. All
other output (pytest's, Python's) goes to a private log, so the host can treat anything but
one well-framed document as an error.

The job folder holds ``job.json``, ``assignment.toml``, the test folders and ``submission/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grader.harness.config import HarnessConfig, parse_user
from grader.protocol import wire


def _prepare_workdir(job_dir: Path, base: Path, folder: str = "submission", prefix: str = "student-") -> Path:
    """Copy the submitted modules to a folder student processes may read (and not the tests)."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(work, 0o755)
    src = job_dir / folder
    if src.is_dir():
        for item in sorted(src.iterdir()):
            if item.is_file() and not item.is_symlink():
                shutil.copyfile(item, work / item.name)
                os.chmod(work / item.name, 0o644)
    # Root's, readable by all: student processes (another user in a sandbox) read the modules
    # but cannot change them or leave files next to them for a later call.
    return work


def harness_config(env: Mapping[str, str], work: Path, scratch: Path, start_method: str,
                   limits: Any, budget: float | None = None) -> HarnessConfig:
    """The plugin's configuration: the job's start method, time budget and the assignment's
    limits, and what the sandbox provides, from the sandbox's environment
    (:mod:`grader.protocol.wire`)."""
    user = parse_user(env.get(wire.STUDENT_USER_ENV))
    student_python = env.get(wire.STUDENT_PYTHON_ENV)
    if not (user and student_python and os.access(student_python, os.X_OK)):
        # Without it student code runs this interpreter, and each spare is waited for until it
        # has sealed itself (grader.harness.boundary.SparePool).
        student_python = None
    nproc = env.get(wire.STUDENT_NPROC_ENV)
    cgroup = env.get(wire.CGROUP_ENV)
    return HarnessConfig(
        submission=work,
        start_method=start_method,
        call_timeout=limits.call_timeout,
        output_limit=limits.output_limit,
        student_user=user,
        student_python=Path(student_python) if student_python else None,
        max_processes=int(nproc) if nproc else None,
        cgroup=Path(cgroup) if cgroup else None,
        scratch=scratch,
        budget=budget,
    )


def run(job_dir: Path, private: Path) -> dict[str, Any]:
    """Grade the job; always returns a document (an ``error`` one when something broke)."""
    from grader import assignment as assignment_mod
    from grader.protocol import results

    started_at = results.now()
    t0 = time.monotonic()
    job = json.loads((job_dir / wire.JOB_FILE).read_text())
    assignment = assignment_mod.load(job_dir)
    start_method = job.get("start_method") or assignment.start_method
    # What the sandbox provides (who student code runs as, where cgroup counters are) comes from
    # the sandbox's environment, so the job itself is the same whatever runs it.
    sandbox = os.environ.get(wire.SANDBOX_ENV, "local")
    submission = job["submission"]
    scratch = Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    budget = job.get("budget")
    harness = harness_config(os.environ, _prepare_workdir(job_dir, scratch), scratch,
                             start_method, assignment.limits, float(budget) if budget else None)
    if assignment.helpers:  # the instructor's helpers, readable by student processes, as shipped
        harness = dataclasses.replace(
            harness, helpers=_prepare_workdir(job_dir, scratch, assignment.helpers, "helpers-"))
    ini = private / "pytest.ini"
    ini.write_text("[pytest]\n")
    tests = [str(p.relative_to(job_dir)) for p in _test_files(assignment, job.get("scope", "all"))]
    args = [
        *tests, "-c", str(ini), "--rootdir", str(job_dir), "-q", "-p", "no:cacheprovider",
        "--import-mode=importlib", "--json-report-file=none",
        # Tests' tmp_path folders under the job's scratch folder, where the plugin opens them to
        # the student user (``grader.harness.plugin.share_tmp_path``): not in a folder shared
        # with earlier sessions of this user, whose retention rules would then apply.
        "--basetemp", str(scratch / f"pytest-{os.urandom(6).hex()}"),
        "--json-report-omit", "log", "streams", "traceback", "warnings",
        f"--timeout={assignment.limits.test_timeout}", "--timeout-method=signal",
    ]
    import pytest
    from pytest_jsonreport.plugin import JSONReport

    from grader.harness.plugin import MpgradePlugin

    if not tests:
        report: dict[str, Any] = {"tests": [], "collectors": []}
    else:
        # The report stays in this process's memory: never a file, which a path could lead a
        # student process to (swapped for a link or a FIFO serving a doctored report, that the
        # nonce would then frame as ours). No student code runs in this process.
        reporter = JSONReport()
        with _only_named_plugins():
            pytest.main(args, plugins=[*harness_plugins(), reporter, MpgradePlugin(harness)])
        if not isinstance(reporter.report, dict):
            return results.error_document(
                assignment, submission, status="error", sandbox=sandbox, start_method=start_method,
                started_at=started_at, message="pytest produced no report",
                scope=job.get("scope", "all"), only=tuple(job.get("exercises") or ()),
            )
        report = reporter.report
    doc = results.build(
        report, assignment, submission, scope=job.get("scope", "all"), sandbox=sandbox,
        start_method=start_method, started_at=started_at, only=tuple(job.get("exercises") or ()),
    )
    doc["duration"] = round(time.monotonic() - t0, 3)
    doc["grader"]["limits"] = job.get("limits", {})
    return results.validate(doc)


def harness_plugins() -> list[Any]:
    """The installed pytest plugins a grading run has, as the modules this interpreter imports
    (their options, ``--timeout`` and ``--json-report-*``, are on the command line).

    Handed to pytest as objects, not named with ``-p``: pytest resolves ``-p NAME`` through
    the ``pytest11`` entry points first, even with autoload off, so any distribution on the
    path declaring an entry point of that name would be loaded in the plugin's place."""
    import pytest_jsonreport.plugin
    import pytest_timeout

    return [pytest_timeout, pytest_jsonreport.plugin]


@contextmanager
def _only_named_plugins() -> Iterator[None]:
    """pytest without the plugins of the environment it was not handed.

    By default pytest imports every plugin installed in its environment (the ``pytest11``
    entry points): on a host with the service extra that includes anyio's, whose import alone
    is about 0.15 s, paid by every run of ``mpgrade check`` and every local-sandbox job; and a
    plugin the grading run did not ask for would run its hooks over the instructor's tests.
    A suite gets the same plugins wherever it runs. (The assignment's own conftest.py files
    still load, and a test module's ``pytest_plugins`` still names a plugin it wants.)
    """
    old = os.environ.get(AUTOLOAD_ENV)
    os.environ[AUTOLOAD_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(AUTOLOAD_ENV, None)
        else:
            os.environ[AUTOLOAD_ENV] = old


AUTOLOAD_ENV = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


def prewarm() -> None:
    """Import what every job needs, before there is a job.

    Called by ``grader.harness.warmstart`` in a container started ahead of its job, so pytest,
    its plugins and the schema validator are loaded while the previous submission is graded.
    """
    import jsonschema  # noqa: F401 - imported for its side effect: it is in sys.modules now
    import pytest  # noqa: F401
    import pytest_jsonreport.plugin  # noqa: F401
    import pytest_timeout  # noqa: F401

    from grader import assignment  # noqa: F401
    from grader.harness import boundary, plugin  # noqa: F401
    from grader.protocol import results

    results.validator()


def _test_files(assignment: Any, scope: str) -> list[Path]:
    files: list[Path] = []
    for ex in assignment.exercises:
        files += ex.public_tests()
        if scope == "all":
            files += ex.hidden_tests()
    return files


def apply_rlimits(spec: str) -> None:
    """``core=0,fsize=N,nofile=N`` from the local sandbox (Docker sets ulimits itself)."""
    import resource

    names = {"core": resource.RLIMIT_CORE, "fsize": resource.RLIMIT_FSIZE, "nofile": resource.RLIMIT_NOFILE}
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        if name in names and value.isdigit():
            _, hard = resource.getrlimit(names[name])
            n = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
            resource.setrlimit(names[name], (n, n))


def main() -> int:
    apply_rlimits(os.environ.pop(wire.RLIMITS_ENV, ""))
    nonce = os.environ.pop(wire.NONCE_ENV, "")
    if not nonce:
        print("grader.harness: no nonce given; this command is run by a sandbox, not by hand", file=sys.stderr)
        return 2
    out = os.dup(1)
    os.set_inheritable(out, False)
    private = Path(os.environ.get(wire.PRIVATE_ENV) or tempfile.mkdtemp(prefix="mpgrade-private-"))
    private.mkdir(parents=True, exist_ok=True)
    os.chmod(private, 0o700)
    log = os.open(private / "harness.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        doc = run(Path.cwd(), private)
        text = json.dumps(doc, separators=(",", ":"))
        code = 0
    except Exception as exc:  # the host turns a missing document into an error result
        import traceback

        traceback.print_exc()
        text = json.dumps({"harness_error": f"{type(exc).__name__}: {exc}"[:2000]})
        code = 3
    data = wire.frame(nonce, text)
    view = memoryview(data)
    while view:
        view = view[os.write(out, view):]
    return code
