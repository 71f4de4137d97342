"""The mpgrade pytest plugin: :class:`MpgradePlugin`, and the ``pytest11: mpgrade`` entry point.

:class:`MpgradePlugin` gives tests the ``student`` fixture, the ``points`` / ``visibility`` /
``hint`` markers, and records for every test what the result document needs (points,
visibility, exercise, outcome, message, hint, telemetry) in ``user_properties``, where
pytest-json-report picks it up. The plugin never decides a score; ``grader.protocol.results``
does, from the report.

The entry point is loaded into every pytest session of the environment, including test suites
that have nothing to do with mpgrade, so this module by itself only adds the ``--mpgrade-*``
options. An :class:`MpgradePlugin` exists only in an mpgrade run: the supervisor passes one
built from its :class:`~grader.harness.config.HarnessConfig`
(``pytest.main(args, plugins=[MpgradePlugin(config)])``), and someone running pytest by hand
gets one from the options (``--mpgrade`` alone: the defaults). Without either, no marker is
registered, no test is looked at or changed and there is no ``student`` fixture.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from grader import assignment as assignment_mod
from grader.harness import diagnosis
from grader.harness.boundary import START_METHODS, SparePool, StudentFailure, StudentRunner
from grader.harness.boundary.runner import TimeShare
from grader.harness.config import HarnessConfig, parse_user

VISIBILITIES = ("visible", "hidden", "after_due_date")
MAX_MESSAGE = 4000
MAX_OUTPUT = 4000
_runner_key = pytest.StashKey[StudentRunner]()
_outcome_key = pytest.StashKey[dict]()
# The options' dests: any of them given on the command line makes the run an mpgrade run.
_OPTIONS = ("mpgrade", "mpgrade_submission", "mpgrade_start_method", "mpgrade_student_user",
            "mpgrade_student_python", "mpgrade_cgroup", "mpgrade_student_nproc", "mpgrade_scratch",
            "mpgrade_no_prestart", "mpgrade_budget")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The options of a run by hand; a supervisor passes a :class:`HarnessConfig` instead."""
    group = parser.getgroup("mpgrade", "mpgrade: grading student code (any of these turns it on)")
    group.addoption("--mpgrade", action="store_true", default=False,
                    help="grade with mpgrade (the student fixture, markers, per-test records) "
                         "with the defaults; implied by every --mpgrade-* option")
    group.addoption("--mpgrade-submission", metavar="DIR", default=None,
                    help="folder holding the student's modules (default: each test file's folder)")
    group.addoption("--mpgrade-start-method", choices=START_METHODS, default=None,
                    help="start method for student calls (default: the assignment's)")
    group.addoption("--mpgrade-student-user", metavar="USER", default=None,
                    help="run student code as this user (name or uid[:gid]); needs root")
    group.addoption("--mpgrade-student-python", metavar="PATH", default=None,
                    help="interpreter for student code (default: the one running pytest); an "
                         "execute-only copy seals student processes from exec (see the README)")
    group.addoption("--mpgrade-cgroup", metavar="DIR", default=None,
                    help="cgroup v2 folder whose memory/pids events tell memory and process limits apart")
    group.addoption("--mpgrade-student-nproc", metavar="N", type=int, default=None,
                    help="most processes+threads the student user may have (with --mpgrade-student-user)")
    group.addoption("--mpgrade-scratch", metavar="DIR", default=None,
                    help="where per-call scratch folders go (default: the system temp folder)")
    group.addoption("--mpgrade-budget", metavar="SECONDS", type=float, default=None,
                    help="seconds all student calls may take together, as under PrairieLearn's timeout "
                         "(docs/prairielearn.md): check that a suite and its reference fit")
    group.addoption("--mpgrade-no-prestart", action="store_true", default=False,
                    help="start each call's process only when the call starts (default: the next "
                         "call's process boots while the current call runs, hiding 40-60 ms a call)")


def config_from_options(config: pytest.Config) -> HarnessConfig | None:
    """The run's :class:`HarnessConfig` from the ``--mpgrade-*`` options; None when none was
    given (the session is not an mpgrade run)."""
    given = [config.getoption(name, None) for name in _OPTIONS]
    if all(value is None or value is False for value in given):  # not `in (None, False)`: 0 == False
        return None
    option = config.getoption
    try:
        user = parse_user(option("mpgrade_student_user"))
    except KeyError:
        raise pytest.UsageError(
            f"--mpgrade-student-user: no user {option('mpgrade_student_user')!r}") from None

    def path(name: str) -> Path | None:
        value = option(name)
        return Path(value) if value else None

    submission = path("mpgrade_submission")
    budget = option("mpgrade_budget")
    if budget is not None and not budget > 0:
        raise pytest.UsageError(f"--mpgrade-budget: a positive number of seconds, not {budget:g}")
    return HarnessConfig(
        submission=submission.resolve() if submission else None,
        start_method=option("mpgrade_start_method"),
        student_user=user,
        student_python=path("mpgrade_student_python"),
        max_processes=option("mpgrade_student_nproc"),
        cgroup=path("mpgrade_cgroup"),
        scratch=path("mpgrade_scratch"),
        prestart=not option("mpgrade_no_prestart"),
        budget=budget,
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Turn mpgrade on for a run by hand; a run that was handed a plugin object keeps it."""
    if any(isinstance(p, MpgradePlugin) for p in config.pluginmanager.get_plugins()):
        return
    harness = config_from_options(config)
    if harness is not None:
        config.pluginmanager.register(MpgradePlugin(harness), "mpgrade-run")


def _assignment_for(path: Path) -> assignment_mod.Assignment | None:
    root = assignment_mod.find_root(path.parent)
    if root is None:
        return None
    try:
        return assignment_mod.load(root)
    except assignment_mod.AssignmentError:
        return None


_assignments_key = pytest.StashKey[dict]()


def _cached_assignment(config: pytest.Config, path: Path) -> assignment_mod.Assignment | None:
    """The assignment a test file belongs to, read once per folder and run."""
    cache = config.stash.setdefault(_assignments_key, {})
    folder = path.parent
    if folder not in cache:
        cache[folder] = _assignment_for(path)
    return cache[folder]


class MpgradePlugin:
    """The plugin of one mpgrade run, configured by one :class:`HarnessConfig`."""

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        self._pool: SparePool | None = None
        # The time budget (HarnessConfig.budget): when it ends, and how many tests still share it.
        self._budget_end: float | None = None
        self._tests_left = 0

    def pytest_configure(self, config: pytest.Config) -> None:
        """The markers exist only in an mpgrade run: another suite may use the names itself."""
        config.addinivalue_line("markers", "points(n): points this test is worth (default 1)")
        config.addinivalue_line("markers", "visibility(v): visible, hidden or after_due_date")
        config.addinivalue_line("markers", "hint(text): what a student should check when this test fails")
        config.addinivalue_line("markers", "hint_when(diagnosis, text): the hint when the failure is "
                                "diagnosed as this (grader.harness.diagnosis)")

    def _spares(self) -> SparePool | None:
        """The run's one pool of pre-started student processes (a run grades one submission),
        made for the first test that calls student code, closed when the session ends."""
        if self.config.prestart and self._pool is None:
            self._pool = SparePool()
        return self._pool

    def pytest_sessionfinish(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @pytest.fixture
    def student(self, request: pytest.FixtureRequest) -> StudentRunner:
        """Calls the student's functions in separate, watched, time-limited process trees."""
        harness = self.config
        test_file = Path(str(request.node.path))
        assignment = _cached_assignment(request.config, test_file)
        limits = assignment.limits if assignment else assignment_mod.Limits()
        runner = StudentRunner(
            path=harness.submission or test_file.parent,
            start_method=harness.start_method or (assignment.start_method if assignment else None),
            call_timeout=limits.call_timeout if harness.call_timeout is None else harness.call_timeout,
            output_limit=limits.output_limit if harness.output_limit is None else harness.output_limit,
            user=harness.student_user,
            python=str(harness.student_python or sys.executable),
            scratch=harness.scratch,
            cgroup=harness.cgroup,
            max_processes=harness.max_processes,
            spares=self._spares(),
            helpers=harness.helpers or (assignment.helpers_dir if assignment else None),
            budget=TimeShare(self._budget_end, self._tests_left - 1) if self._budget_end is not None else None,
        )
        request.node.stash[_runner_key] = runner
        return runner

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
        """A test's ``tmp_path`` (and ``tmpdir``, made from it) is a folder student code can
        write when it runs as another user: a test that hands it to the student's function
        (``student.module("m").save(tmp_path / "out.txt")``) works in every sandbox, not only
        where student code runs as the supervisor's own user (see :func:`share_tmp_path`)."""
        from grader.harness.boundary.residue import remove_entries

        outcome = yield
        user = self.config.student_user
        if fixturedef.argname != "tmp_path" or user is None or outcome.excinfo is not None:
            return
        path = outcome.get_result()
        share_tmp_path(path, request.config)
        # What the student wrote there is gone when the test ends: a later test's calls never
        # find it (between the calls of one test it stays, for the test to read).
        fixturedef.addfinalizer(lambda: remove_entries(path, owner=user[0]))

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Each test's metadata, read once: a bad marker is a usage error before anything runs."""
        for item in items:
            item.stash[_outcome_key] = {"meta": test_metadata(item)}
        self._tests_left = len(items)
        if self.config.budget is not None:
            self._budget_end = time.monotonic() + self.config.budget

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        """The test's record, in ``user_properties`` before its last report is made."""
        data = item.stash.get(_outcome_key, None)
        if data is None:
            data = item.stash[_outcome_key] = {"meta": test_metadata(item)}
        if call.when == "teardown":
            item.user_properties.append(("mpgrade", _finish(item, data)))
            self._tests_left -= 1
        outcome = yield
        _record_outcome(data, call, outcome.get_result())


def share_tmp_path(path: Path, config: pytest.Config) -> None:
    """Open a test's ``tmp_path`` to the student user, as ``/tmp`` is open to everyone.

    pytest makes the base folder and every ``tmp_path`` root's and private (0o700): student
    processes of another uid (the Docker sandbox, the two-user local one) got PermissionError
    writing where the test told them to. Now the folders above it can be traversed, not
    listed (0o711: no test's folder is found by listing), and the test's own folder is
    world-writable and sticky (0o1777): student code adds files there, but cannot remove or
    replace what the test itself put there. It stays root's, so the student cannot chmod it.
    """
    import os

    factory = getattr(config, "_tmp_path_factory", None)
    base = factory.getbasetemp() if factory is not None else path.parent
    os.chmod(path, 0o1777)
    folder = path.parent
    while folder != base and base in folder.parents:
        os.chmod(folder, 0o711)
        folder = folder.parent
    os.chmod(base, 0o711)
    if base.parent.name.startswith("pytest-of-"):  # pytest's default place, when run by hand
        os.chmod(base.parent, 0o711)


# --- per-test metadata ---------------------------------------------------------------------------


def _marker_arg(item: pytest.Item, name: str, default: Any) -> Any:
    marker = item.get_closest_marker(name)
    if marker is None or not marker.args:
        return default
    return marker.args[0]


def test_metadata(item: pytest.Item) -> dict[str, Any]:
    """Points, visibility, exercise, name and hint of a test, from markers and its location."""
    path = Path(str(item.path))
    points = _marker_arg(item, "points", 1)
    if not isinstance(points, int | float) or isinstance(points, bool) or points < 0:
        raise pytest.UsageError(f"{item.nodeid}: points must be a number >= 0")
    visibility = _marker_arg(item, "visibility", "visible")
    if visibility not in VISIBILITIES:
        raise pytest.UsageError(f"{item.nodeid}: visibility must be one of {VISIBILITIES}")
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    name = doc.strip().splitlines()[0].strip() if doc.strip() else item.name
    callspec = getattr(item, "callspec", None)
    if callspec is not None and doc.strip():
        name = f"{name} [{callspec.id}]"
    assignment = _cached_assignment(item.config, path)
    exercise = path.parent.name
    if assignment is not None and exercise not in {e.id for e in assignment.exercises}:
        exercise = None
    hints_when: dict[str, str] = {}
    for marker in item.iter_markers("hint_when"):
        if len(marker.args) != 2 or not all(isinstance(a, str) for a in marker.args):
            raise pytest.UsageError(f"{item.nodeid}: hint_when takes a diagnosis and a hint")
        hints_when.setdefault(marker.args[0], marker.args[1])
    try:
        diagnosis.check_hints(hints_when, item.nodeid)
        if assignment is not None:
            diagnosis.check_hints(assignment.hints, "assignment.toml [hints]")
            for ex in assignment.exercises:
                diagnosis.check_hints(ex.hints, f"assignment.toml exercise {ex.id}")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    return {
        "hints_when": hints_when,
        "points": float(points),
        "visibility": visibility,
        "exercise": exercise,
        "name": name,
        "hint": _marker_arg(item, "hint", None),
        "file": path.name,
        "function": getattr(getattr(item, "function", None), "__name__", item.name),
    }


def _clean_message(exc: BaseException) -> str:
    """The part of a failure a student may see: the message, never the test's source."""
    text = str(exc)
    if isinstance(exc, AssertionError):
        # pytest's assertion rewriting appends the failing expression: test source, hidden.
        text = text.split("\nassert ", 1)[0]
        if text.startswith("assert "):
            text = "an expectation of the test was not met"
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + " [...]"
    return text.strip() or type(exc).__name__


_PYTEST_TIMEOUT = re.compile(r"Timeout \(?>[\d.]+s")
"""How pytest-timeout words the failure of a test that ran past ``test_timeout``."""


def _classify(excinfo: pytest.ExceptionInfo[BaseException]) -> tuple[str, str, str | None]:
    """(outcome, message, hint) for a failure."""
    exc = excinfo.value
    hint = getattr(exc, "hint", None)
    if isinstance(exc, StudentFailure):
        return exc.outcome, _clean_message(exc), hint
    if isinstance(exc, AssertionError):
        return "failed", _clean_message(exc), hint
    text = str(exc)
    if isinstance(exc, pytest.fail.Exception):
        # pytest-timeout fails a test with "Timeout (>60.0s) from pytest-timeout."; every other
        # pytest.fail (pytest.raises' "DID NOT RAISE TimeoutError" among them) is an expectation
        # of the test the student's code did not meet: failed, as an assert is.
        if _PYTEST_TIMEOUT.match(text):
            return "timeout", "the test ran past its time limit and was stopped", hint
        return "failed", _clean_message(exc), hint
    if isinstance(exc, pytest.skip.Exception):
        return "skipped", text, hint
    return "error", f"{excinfo.typename}: {_clean_message(exc)}", hint


def _record_outcome(data: dict[str, Any], call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
    """The first failure of a test decides its outcome; a pass counts only for the call phase."""
    if call.when in ("setup", "call") and report.failed and "outcome" not in data and call.excinfo:
        data["outcome"], data["message"], data["hint_now"] = _classify(call.excinfo)
        if call.when == "setup" and data["outcome"] == "failed":
            data["outcome"] = "error"
    elif call.when == "call" and report.passed:
        data.setdefault("outcome", "passed")
    elif report.skipped and "outcome" not in data:
        data["outcome"], data["message"] = "skipped", str(getattr(call.excinfo, "value", ""))


def _call_output(record: Any) -> str:
    """What the call's processes printed, for the student: the first lines of stdout (their
    debug prints) and the first part of stderr (the tracebacks of workers that crashed), both
    capped; the tail of a flood says nothing the start does not."""
    stdout, stderr = record.stdout, record.stderr
    out_room = MAX_OUTPUT // 3 if stderr else MAX_OUTPUT
    out = stdout[:out_room] + ("\n[... more output cut]\n" if len(stdout) > out_room else "")
    room = MAX_OUTPUT - len(out)
    err = stderr[:room] + ("\n[... more output cut]\n" if len(stderr) > room else "")
    if out and err and not out.endswith("\n"):
        out += "\n"
    return out + err


def _relative(text: str, folder: Path, to: str = "") -> str:
    """``text`` with the folder the call ran the student's modules from taken out of paths
    (or, given ``to``, replaced by it: the helpers' copy by the assignment's folder name)."""
    for root in {str(folder), str(Path(folder).resolve())}:
        text = text.replace(root.rstrip("/") + "/", to)
    return text


def _finish(item: pytest.Item, data: dict[str, Any]) -> dict[str, Any]:
    meta = data["meta"]
    runner = item.stash.get(_runner_key, None)
    records = runner.records if runner else []
    telemetry = None
    output = ""
    if records:
        telemetry = {
            "calls": len(records),
            "processes": sum(len(r.workers) for r in records),
            "peak_processes": max(r.peak_processes for r in records),
            "cpu_time": round(sum(r.cpu_time for r in records), 4),
            "wall_time": round(sum(r.duration for r in records), 4),
            "peak_rss": max(r.peak_rss for r in records),
            "threads": sum(len(r.threads) for r in records),
            "peak_threads": max(r.peak_threads for r in records),
        }
        output = _call_output(records[-1])
    outcome = data.get("outcome", "error")
    message = data.get("message", "") if outcome != "passed" else ""
    found = diagnosis.diagnose(outcome, message, output, records)
    assignment = _cached_assignment(item.config, Path(str(item.path)))
    exercise = next((e for e in assignment.exercises if e.id == meta["exercise"]), None) if assignment else None
    hint = diagnosis.choose_hint(
        found, test_hint=meta["hint"], runtime_hint=data.get("hint_now"), per_test=meta["hints_when"],
        per_exercise=exercise.hints if exercise else {},
        per_assignment=assignment.hints if assignment else {})
    if runner is not None:
        # Paths as the student knows them: ``spawn.py``, never the temporary copy the call
        # imported (``/tmp/mpgrade-job-.../scratch/student-.../spawn.py``); the host puts the
        # student's own folder in front (``grader.cli.render``).
        message, output = (_relative(text, runner.path) for text in (message, output))
        if runner.helpers is not None:  # a helper in a traceback: helpers/probes.py, not its copy
            shown = f"{assignment.helpers if assignment and assignment.helpers else runner.helpers.name}/"
            message, output = (_relative(text, runner.helpers, shown) for text in (message, output))
    meta = {k: v for k, v in meta.items() if k != "hints_when"}
    return {
        **meta,
        "outcome": outcome,
        "message": message,
        "diagnosis": found,
        "hint": hint if outcome != "passed" else None,
        "output": output if outcome != "passed" else "",
        "telemetry": telemetry,
        **({"start_method": records[-1].start_method} if records else {}),
    }
