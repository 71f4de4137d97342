"""The second assignment, examples/assignments/threads-asyncio, as the proof that the grader is
not about the bundled course: a process pool given an instructor callback, a thread-safe class
driven across calls, an ``async def`` with a semaphore, a generator, a ``Process`` subclass
(#17). ``mpgrade validate`` must hold for it as for the main course (references full marks
under every start method, stubs 0, every mutant caught), its references must score full marks
when ``mpgrade grade`` grades them in Docker, and a hostile submission for it must end as a
clean result there.

CI time (all in Docker): one validate run (references once per start method, two gradings at
a time, ~90 s), one grading of the references (~30 s) and one of the hostile submission (~25 s).
"""

from __future__ import annotations

import json
import shutil

import pytest

from grader import assignment as assignment_mod
from grader import grading, validate
from grader.harness import diagnosis
from grader.intake.submission import Submission

from .conftest import REPO
from .test_cli import mpgrade

SECOND = REPO / "examples" / "assignments" / "threads-asyncio"


@pytest.fixture(scope="module")
def second() -> assignment_mod.Assignment:
    return assignment_mod.load(SECOND)


@pytest.fixture(scope="module")
def validated(tmp_path_factory, docker_client, grading_image) -> tuple[int, dict, str]:
    """``mpgrade validate`` as an author runs it, once: (exit code, validate.json, output).

    In Docker, the sandbox the grading uses (a proof made locally need not hold there), each
    reference once per start method, two gradings at a time: about a minute and a half."""
    report = tmp_path_factory.mktemp("validate") / "validate.json"
    out = mpgrade("validate", "--assignment", str(SECOND), "--repeat", "1", "--jobs", "2",
                  "--sandbox", "docker", "--image", grading_image, "--json", str(report), timeout=900)
    doc = json.loads(report.read_text()) if report.is_file() else {}
    return out.returncode, doc, out.stdout + out.stderr


def test_the_assignment_is_data_the_grader_reads_like_the_main_course(second):
    """Its own manifest: points that are not 25 each, modules not named like the course's,
    an instructor helpers folder, every start method."""
    assert second.title == "Concurrency & Async Programming"
    assert [ex.points for ex in second.exercises] == [23, 28, 24, 25] and second.max_score == 100
    assert second.points_problems() == []
    assert second.start_methods == ("fork", "spawn", "forkserver")
    assert [p.name for p in second.helper_files()] == ["probes.py"]
    assert set(second.submitted_files) == {"pool.py", "buffer.py", "aio.py", "rendezvous.py"}
    assert second.hints and not (set(second.hints) - set(diagnosis.DIAGNOSES))


def test_every_exercise_has_at_least_three_mutants_that_fit_the_reference(second):
    mutants = validate.load_mutants(second)
    per_exercise = {ex.id: [m.id for m in mutants if m.exercise == ex.id] for ex in second.exercises}
    assert all(len(ids) >= 3 for ids in per_exercise.values()), per_exercise
    for mutant in mutants:
        reference = (second.exercise(mutant.exercise).hidden_dir / mutant.module).read_bytes()
        assert mutant.source != reference, mutant.id
        compile(mutant.source, f"{mutant.id}/{mutant.module}", "exec")


@pytest.mark.docker
def test_validate_passes(validated):
    code, doc, output = validated
    assert code == 0, output[-4000:]
    assert doc["ok"] is True and doc["sandbox"] == "docker"


@pytest.mark.docker
def test_references_score_full_marks_under_every_start_method(validated):
    _, doc, output = validated
    assert {r["start_method"] for r in doc["references"]} == {"fork", "spawn", "forkserver"}, output[-2000:]
    assert [r for r in doc["references"] if not r["ok"]] == [], doc["flaky"]
    assert doc["flaky"] == []


@pytest.mark.docker
def test_the_stubs_score_zero(validated):
    _, doc, _ = validated
    assert doc["stubs"]["ok"] and doc["stubs"]["score"] == 0, doc["stubs"]


@pytest.mark.docker
def test_every_mutant_is_caught_in_its_own_exercise_with_a_hint(validated, second):
    _, doc, _ = validated
    assert {m["id"] for m in doc["mutants"]} == {m.id for m in validate.load_mutants(second)}
    assert {m["id"]: m["problems"] for m in doc["mutants"] if not m["ok"]} == {}


@pytest.mark.docker
def test_messages_name_the_helpers_as_the_assignment_does(validated):
    """A helper in a student's traceback (a Task that ran probes.fail in the parent) reads
    helpers/probes.py, never the temporary copy the job made of the helpers folder."""
    _, doc, _ = validated
    messages = [f["message"] for m in doc["mutants"] for f in m.get("failures", [])]
    assert any("helpers/probes.py" in text for text in messages), messages
    assert not [text for text in messages if "/helpers-" in text or "mpgrade-job-" in text]


def test_a_thread_join_that_never_returns_is_blocked_in_join():
    """A pipeline whose threads deadlock hangs in Thread.join (threading.py), which the hint
    table of a threading exercise must be able to name like a process's join."""
    message = ("buffer.pipeline() did not return within 8 s (start method fork). Where each process was, "
               "as its own stack dump says:\n  caller 3923: buffer.py:78 in pipeline(), waiting in "
               "threading.py:1139 in _wait_for_tstate_lock()")
    assert "blocked_in_join" in diagnosis.diagnose("timeout", message, "", [])


def test_workers_stuck_at_a_barrier_get_the_barriers_hint_before_the_joins(second):
    """A Barrier for one party too many: every worker waits in synchronize.py's wait(), the
    caller in join(). blocked_in_wait comes first, so the assignment's hint about the barrier
    is shown, not the one about joining; a Condition's wait in a thread is named the same."""
    message = ("rendezvous.rendezvous() did not return within 5 s (start method fork). Where each process "
               "was, as its own stack dump says:\n  caller 10: rendezvous.py:58 in rendezvous(), waiting in "
               "popen_fork.py:27 in poll()\n  worker 11: rendezvous.py:40 in _arrive(), waiting in "
               "synchronize.py:270 in wait()")
    found = diagnosis.diagnose("timeout", message, "", [])
    assert found[:2] == ["blocked_in_wait", "blocked_in_join"]
    hint = diagnosis.choose_hint(found, test_hint="the test's", runtime_hint=None, per_test={},
                                 per_exercise={}, per_assignment=second.hints)
    assert hint == second.hints["blocked_in_wait"]
    in_a_thread = "caller 10: buffer.py:30 in put(), waiting in threading.py:327 in wait()"
    assert diagnosis.diagnose("timeout", in_a_thread, "", [])[0] == "blocked_in_wait"


def test_a_student_checks_the_stubs_with_the_helpers_shipped(tmp_path):
    """The student's copy (manifest, exercises/, helpers/; no solutions): ``mpgrade check``
    passes the helpers to the stubs and names the method that is still a stub."""
    course = tmp_path / "threads-asyncio"
    course.mkdir()
    shutil.copy(SECOND / "assignment.toml", course)
    for folder in ("exercises", "helpers"):
        shutil.copytree(SECOND / folder, course / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = mpgrade("check", "02_buffer", "04_process", "--start-method", "fork", cwd=course, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    doc = json.loads((course / ".mpgrade" / "check.json").read_text())
    assert doc["score"] == 0 and {t["outcome"] for t in doc["tests"]} == {"not_implemented"}, doc["tests"]
    messages = {t["id"].split("::")[1]: t["message"] for t in doc["tests"]}
    assert "__init__() still raises" in messages["test_put_then_get_in_order"], messages
    assert "Traceback" not in out.stdout


# --- in Docker ---------------------------------------------------------------------------------

HOSTILE_BUFFER = '''
"""A buffer whose methods leave daemons behind, never return, or kill their process."""
import os
import threading
import time


def _daemon():
    if os.fork() == 0:          # a grandchild in a session of its own, outliving everything,
        os.setsid()             # its descriptors closed as a daemon does
        if os.fork() == 0:
            os.closerange(0, 1024)
            while True:
                time.sleep(1)
        os._exit(0)


class BoundedBuffer:
    def __init__(self, capacity):
        self.capacity = capacity
        for _ in range(4):      # threads spinning forever
            threading.Thread(target=lambda: [None for _ in iter(int, 1)], daemon=True).start()

    def put(self, item, timeout=None):
        _daemon()
        return True

    def get(self, timeout=None):
        os._exit(0)             # the session's process disappears

    def __len__(self):
        return 0


def pipeline(capacity, producers, consumers, items):
    _daemon()
    threading.Event().wait()    # never returns
'''


@pytest.mark.docker
def test_references_graded_in_docker_score_full_marks(docker_client, grading_image, tmp_path):
    """``mpgrade grade solutions/`` (the documented form for an assignment's own references)
    in containers: full marks, the helpers shipped into the container."""
    out = tmp_path / "out"
    ran = mpgrade("grade", str(SECOND / "solutions"), "--out", str(out), "--assignment", str(SECOND),
                  "--sandbox", "docker", "--image", grading_image, "--jobs", "1", "--warm", "0",
                  timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    docs = [json.loads(p.read_text()) for p in out.glob("*.json") if p.name != "summary.json"]
    assert len(docs) == 1, [p.name for p in out.iterdir()]
    doc = docs[0]
    bad = [f"{t['id']}: {t['outcome']}: {t['message'][:300]}" for t in doc["tests"] if t["outcome"] != "passed"]
    assert doc["grader"]["sandbox"] == "docker" and doc["status"] == "graded", doc["message"]
    assert (doc["score"], doc["max_score"]) == (100, 100), bad


@pytest.mark.docker
def test_a_hostile_buffer_ends_as_a_clean_result_in_docker(second, docker_client, grading_image, tmp_path):
    """Daemons forked from methods, spinning threads, a method that kills the session's
    process and one that never returns: the buffer's tests fail, each on its own; the next
    exercise, graded in the same container after them (the reference, with timing tests),
    keeps full marks; nothing survives the container."""
    from grader.sandbox.docker import DockerSandbox

    from .test_docker import ours

    sub = Submission(id="hostile-buffer", source=str(tmp_path))
    for ex in second.exercises:
        for name in ex.files:
            sub.files[name] = (ex.hidden_dir / name).read_bytes()
    sub.files["buffer.py"] = HOSTILE_BUFFER.encode()
    with DockerSandbox(grading_image, client=docker_client) as box:
        doc = grading.grade(box, second, sub, grading.Options(exercises=("02_buffer", "03_async")))
    assert ours(docker_client) == [], "a labelled container survived"
    assert doc["status"] == "graded", doc["message"]
    buffer_tests = {t["id"].split("::")[1]: t for t in doc["tests"] if t["exercise"] == "02_buffer"}
    assert buffer_tests and not [name for name, t in buffer_tests.items() if t["outcome"] == "passed"]
    outcomes = {t["outcome"] for t in buffer_tests.values()}
    assert {"timeout", "crashed"} <= outcomes, {name: t["outcome"] for name, t in buffer_tests.items()}
    scores = {e["name"]: e["score"] for e in doc["exercises"]}
    assert scores == {"02_buffer": 0, "03_async": 24}, scores

