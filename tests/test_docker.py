"""Batch grading in real containers: samples, hostile submissions, time limits, cleanup, resume.

These need a Docker engine and the grading image. Without them they skip on a developer's
machine; under CI=true they fail instead (see conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from grader import batch, grading
from grader.sandbox import owner
from grader.sandbox.docker import LABEL, OWNER_LABEL, DockerSandbox

from .conftest import REPO
from .test_student import TAMPER

pytestmark = pytest.mark.docker

EXAMPLES = REPO / "examples" / "submissions"


def ours(client, *pids: int) -> list[str]:
    """Ids of our containers: made by this test process (or by ``pids``, commands it ran), not
    by another run sharing the engine, whose containers are its own business. One listing
    call: containers.list() inspects each container it lists, and fails when one is removed in
    between (as warm ones are, while a batch stops)."""
    makers = {os.getpid(), *pids}

    def made_here(labels: dict) -> bool:
        host, _, pid, _ = (labels.get(OWNER_LABEL) or "?/?/0/?").rsplit("/", 3)
        return host == socket.gethostname() and int(pid) in makers

    return [c["Id"] for c in client.api.containers(all=True, filters={"label": LABEL})
            if made_here(c.get("Labels") or {})]


@pytest.fixture
def sandbox(docker_client, grading_image):
    box = DockerSandbox(grading_image, client=docker_client)
    yield box
    box.close()
    assert ours(docker_client) == [], "a labelled container survived"


def reference_folder(tmp_path: Path, course, name: str, **replace: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for ex in course.exercises:
        for f in ex.files:
            shutil.copy(ex.hidden_dir / f, folder / f)
    for filename, source in replace.items():
        (folder / f"{filename}.py").write_text(source)
    return folder


def by_outcome(doc: dict, exercise: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in doc["tests"]:
        if t["exercise"] == exercise:
            counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return counts


def test_the_bundled_samples_grade_as_described(course, sandbox, tmp_path, docker_client):
    out = tmp_path / "out"
    result = batch.run([EXAMPLES], out, course, sandbox, jobs=2)
    docs = {sid: json.loads((out / f"{sid}.json").read_text()) for sid in result.documents}
    assert set(docs) == {"alice-full", "bob-partial", "carol-deadlock", "dave-import-crash", "erin-syntax-error"}
    for doc in docs.values():
        assert doc["grader"]["sandbox"] == "docker" and doc["status"] == "graded", doc["message"]
    assert docs["alice-full"]["score"] == 100
    assert docs["bob-partial"]["score"] == 50
    carol = docs["carol-deadlock"]
    assert 75 <= carol["score"] < 100 and by_outcome(carol, "03_prodcons").get("timeout")
    dave = docs["dave-import-crash"]
    assert dave["score"] == 75
    assert "configuration file not found" in next(e for e in dave["exercises"] if e["name"] == "01_spawn")["message"]
    erin = docs["erin-syntax-error"]
    assert erin["score"] == 75
    assert "SyntaxError" in next(e for e in erin["exercises"] if e["name"] == "02_pingpong")["message"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["submissions"] == 5 and summary["totals"]["graded"] == 5
    assert (out / "scores.csv").read_text().splitlines()[0].startswith("id,score,max_score,status")


def attack(name: str, module: str) -> str:
    """A hostile module from the attack corpus (tests/attacks/)."""
    return (REPO / "tests" / "attacks" / name / "submission" / module).read_text()


def test_hostile_submissions_end_as_clean_results_and_the_batch_goes_on(course, sandbox, tmp_path, docker_client):
    root = tmp_path / "batch"
    root.mkdir()
    reference_folder(root, course, "honest")
    reference_folder(root, course, "forkbomb", spawn=attack("fork_bomb", "spawn.py"))
    reference_folder(root, course, "memorybomb", pingpong=attack("memory_bomb", "pingpong.py"))
    reference_folder(root, course, "flood", prodcons=attack("stdout_flood", "prodcons.py"))
    opts = grading.Options(exercises=())
    result = batch.run([root], tmp_path / "out", course, sandbox, jobs=2, options=opts)
    docs = result.documents
    assert docs["honest"]["score"] == 100, docs["honest"]["message"]
    bomb = by_outcome(docs["forkbomb"], "01_spawn")
    assert bomb.get("process_limit"), bomb
    assert docs["forkbomb"]["score"] == 75
    mem = by_outcome(docs["memorybomb"], "02_pingpong")
    assert mem.get("memory_limit"), mem
    assert docs["memorybomb"]["score"] == 75
    flood = by_outcome(docs["flood"], "03_prodcons")
    assert flood.get("output_limit"), flood
    for doc in docs.values():
        assert doc["status"] == "graded"


def test_a_sleeping_submission_times_out_within_its_limit(course, sandbox, tmp_path):
    folder = reference_folder(tmp_path, course, "sleeper", spawn="import time\ntime.sleep(10**6)\n")
    started = time.monotonic()
    result = batch.run([folder], tmp_path / "out", course, sandbox,
                       options=grading.Options(timeout=8))
    elapsed = time.monotonic() - started
    doc = result.documents["sleeper"]
    assert doc["status"] == "timeout" and doc["score"] == 0
    assert elapsed < 8 + 6, f"took {elapsed:.1f} s for an 8 s limit"


def test_rerunning_skips_what_is_graded_and_force_regrades(course, sandbox, tmp_path):
    root = tmp_path / "subs"
    root.mkdir()
    folder = reference_folder(root, course, "quick", prodcons="x = (\n")  # syntax error: fast
    out = tmp_path / "out"
    first = batch.run([root], out, course, sandbox)
    assert first.reused == set()
    stamp = (out / "quick.json").stat().st_mtime_ns
    second = batch.run([root], out, course, sandbox)
    assert second.reused == {"quick"}
    assert (out / "quick.json").stat().st_mtime_ns == stamp
    (folder / "prodcons.py").write_text("x = (\n\n")  # changed content: graded again
    third = batch.run([root], out, course, sandbox)
    assert third.reused == set()


def test_an_interrupted_batch_leaves_no_container_and_keeps_finished_results(
        course, docker_client, grading_image, tmp_path):
    root = tmp_path / "subs"
    root.mkdir()
    for i in range(3):
        reference_folder(root, course, f"slow{i}", spawn="import time\ntime.sleep(10**6)\n")
    box = DockerSandbox(grading_image, client=docker_client)
    stop = threading.Event()
    errors: list[BaseException] = []

    def go() -> None:
        try:
            batch.run([root], tmp_path / "out", course, box, jobs=2, stop=stop)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=go)
    worker.start()
    deadline = time.monotonic() + 30
    while not ours(docker_client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ours(docker_client), "containers were started"
    stop.set()
    box.close()
    worker.join(timeout=60)
    assert not worker.is_alive() and errors == []
    assert ours(docker_client) == []
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True


def test_missing_image_is_a_clear_error(docker_client):
    from grader.sandbox.base import SandboxUnavailable

    with pytest.raises(SandboxUnavailable, match="mpgrade image build"):
        DockerSandbox("mpgrade-grader:does-not-exist", client=docker_client)


def test_containers_are_locked_down(course, sandbox, docker_client, tmp_path, monkeypatch):
    """Inspect the container the sandbox creates, while it runs."""
    seen: dict = {}
    original = sandbox._create

    def spy(job, jobdir):
        container = original(job, jobdir)
        info = docker_client.api.inspect_container(container.id)
        seen.update(info["HostConfig"], owner=info["Config"]["Labels"].get(OWNER_LABEL))
        return container

    monkeypatch.setattr(sandbox, "_create", spy)
    folder = reference_folder(tmp_path, course, "inspect", prodcons="x = (\n")
    batch.run([folder], tmp_path / "out", course, sandbox)
    assert seen["NetworkMode"] == "none"
    assert seen["ReadonlyRootfs"] is True
    assert seen["CapDrop"] == ["ALL"] and "SYS_ADMIN" not in (seen["CapAdd"] or [])
    assert seen["SecurityOpt"] == ["no-new-privileges"]
    assert seen["Init"] is True and seen["PidsLimit"] > 0
    assert seen["Memory"] == seen["MemorySwap"] > 0
    assert all(b.endswith(":ro") for b in seen["Binds"])
    assert not any("docker.sock" in b for b in seen["Binds"])
    assert {u["Name"] for u in seen["Ulimits"]} >= {"core", "nofile", "fsize"}
    assert seen["owner"] == owner.label_for(os.getpid())  # a later run's sweep leaves it alone


def test_reference_scores_full_marks_in_containers_under_spawn_and_forkserver(course, sandbox, tmp_path):
    """Privilege separation changes nothing for honest code, whatever the start method."""
    from grader.intake import submission

    sub = submission.from_folder(reference_folder(tmp_path, course, "ref"), course)
    for method in ("spawn", "forkserver"):
        doc = grading.grade(sandbox, course, sub, grading.Options(start_method=method))
        bad = [f"{t['id']}: {t['message'][:200]}" for t in doc["tests"] if t["outcome"] != "passed"]
        assert doc["score"] == 100, (method, bad)


def test_ctrl_c_on_the_command_line_removes_running_containers(docker_client, grading_image, course, tmp_path):
    import signal
    import subprocess
    import sys

    root = tmp_path / "subs"
    root.mkdir()
    for i in range(3):
        reference_folder(root, course, f"slow{i}", spawn="import time\ntime.sleep(10**6)\n")
    out = tmp_path / "out"
    # Started as a foreground command is: a test run started in the background (`pytest &`)
    # ignores SIGINT, and the grader would inherit that and rightly go on.
    proc = subprocess.Popen([sys.executable, "-m", "grader", "grade", str(root), "--out", str(out), "--jobs", "2"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "120"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not ours(docker_client, proc.pid) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert ours(docker_client, proc.pid), "grading started"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # failed: do not leave it grading (and its containers) for the next tests
            proc.kill()
            proc.wait()
            for cid in ours(docker_client, proc.pid):
                docker_client.api.remove_container(cid, force=True)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert ours(docker_client, proc.pid) == []
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True


PRIORITY_TEST = '''
import os


def test_priorities(student):
    got = student.module("prio", timeout=20).priorities()
    supervisor = os.getpriority(os.PRIO_PROCESS, 0)
    assert supervisor == 0 and got == {"caller": 19, "worker": 19}, (supervisor, got)
'''

PRIORITY_MODULE = '''
import multiprocessing as mp
import os


def _report(q):
    q.put(os.getpriority(os.PRIO_PROCESS, 0))


def priorities():
    q = mp.Queue()
    p = mp.Process(target=_report, args=(q,))
    p.start()
    worker = q.get(timeout=10)
    p.join()
    return {"caller": os.getpriority(os.PRIO_PROCESS, 0), "worker": worker}
'''


def grade_one_test(sandbox, folder: Path, name: str, test: str, module: str) -> dict:
    """Grade ``module`` (saved as NAME.py) against ``test``, the only test of a one-exercise
    assignment made in ``folder``; the test's entry in the result document."""
    from grader import assignment as assignment_mod
    from grader.intake.submission import Submission

    (folder / "exercises" / f"00_{name}").mkdir(parents=True)
    (folder / "assignment.toml").write_text(
        f'[assignment]\nname = "{name}"\nversion = "1"\n\n[[exercise]]\nid = "00_{name}"\n'
        f'files = ["{name}.py"]\npoints = 1\n')
    (folder / "exercises" / f"00_{name}" / "test_public.py").write_text(test)
    course = assignment_mod.load(folder)
    doc = grading.grade(sandbox, course, Submission(id=name, source="test", files={f"{name}.py": module.encode()}))
    return doc["tests"][0]


def test_student_processes_run_at_the_lowest_cpu_priority(sandbox, tmp_path):
    """So that the grader watching a call gets the CPU even when a fork bomb's processes spin."""
    test = grade_one_test(sandbox, tmp_path, "prio", PRIORITY_TEST, PRIORITY_MODULE)
    assert test["outcome"] == "passed", test


INTERPRETER_TEST = '''
def test_interpreter(student):
    where = student.module("where", timeout=20)
    got = where.interpreter()
    assert got == {"executable": "/opt/mpgrade/bin/python-student", "readable": False}, got
    for _ in range(3):
        assert where.forge_while_booting(0.3) == 0, "the next call's process was open"
    assert where.worker_dumpable() == 1
'''

INTERPRETER_MODULE = TAMPER + '''
import sys


def interpreter():
    return {"executable": sys.executable, "readable": os.access(sys.executable, os.R_OK)}
'''


def test_student_code_runs_an_interpreter_it_cannot_read(sandbox, tmp_path):
    """The image's execute-only interpreter, which the kernel seals from exec: pre-started
    processes are never open to the code of the call before them, even while they boot, and the
    pool does not wait for them (grader.harness.boundary); the call's own workers are ordinary."""
    test = grade_one_test(sandbox, tmp_path, "where", INTERPRETER_TEST, INTERPRETER_MODULE)
    assert test["outcome"] == "passed", test


SPAWN_ONLY = grading.Options(exercises=("01_spawn",))


@pytest.fixture
def warm_sandbox(docker_client, grading_image):
    box = DockerSandbox(grading_image, client=docker_client, warm=2)
    yield box
    box.close()
    assert ours(docker_client) == [], "a labelled container survived"


def spy_on_containers(monkeypatch, box: DockerSandbox) -> list[tuple[str, str]]:
    """(how, container id) for every job the sandbox runs."""
    used: list[tuple[str, str]] = []
    original_warm, original_create = box._run_warm, box._create

    def run_warm(job, warm, stats, t0):
        used.append(("warm", warm.container.id))
        return original_warm(job, warm, stats, t0)

    def create(job, jobdir, **kw):
        container = original_create(job, jobdir, **kw)
        if "command" not in kw:  # a cold container made for this very job
            used.append(("cold", container.id))
        return container

    monkeypatch.setattr(box, "_run_warm", run_warm)
    monkeypatch.setattr(box, "_create", create)
    return used


def test_warm_containers_grade_like_cold_ones_and_serve_one_submission_each(
        course, warm_sandbox, docker_client, tmp_path, monkeypatch):
    used = spy_on_containers(monkeypatch, warm_sandbox)
    root = tmp_path / "subs"
    root.mkdir()
    for name in ("a", "b", "c", "d"):
        reference_folder(root, course, name)
    reference_folder(root, course, "bomb", spawn=attack("fork_bomb", "spawn.py"))
    result = batch.run([root], tmp_path / "out", course, warm_sandbox, jobs=2, options=SPAWN_ONLY)
    docs = result.documents
    assert {sid: doc["score"] for sid, doc in docs.items()} == {"a": 25, "b": 25, "c": 25, "d": 25, "bomb": 0}
    assert by_outcome(docs["bomb"], "01_spawn").get("process_limit")
    assert len(used) == 5 and len({cid for _, cid in used}) == 5, used
    assert [how for how, _ in used].count("warm") >= 3, used  # only the first jobs can find none
    for _, cid in used:
        assert not docker_client.api.containers(all=True, filters={"id": cid}), "a used container was kept"


def test_a_dead_warm_container_is_not_used(course, warm_sandbox, docker_client, tmp_path, monkeypatch):
    used = spy_on_containers(monkeypatch, warm_sandbox)
    first = reference_folder(tmp_path, course, "first")
    batch.run([first], tmp_path / "out1", course, warm_sandbox, options=SPAWN_ONLY)
    waiting = warm_sandbox._pool.waiting()
    assert len(waiting) == 2
    for warm in waiting:
        warm.container.kill()
    second = reference_folder(tmp_path, course, "second")
    doc = batch.run([second], tmp_path / "out2", course, warm_sandbox, options=SPAWN_ONLY).documents["second"]
    assert doc["score"] == 25, doc["message"]
    assert [how for how, _ in used] == ["cold", "cold"]


def test_a_warm_sleeping_submission_times_out_within_its_limit(course, warm_sandbox, tmp_path, monkeypatch):
    """The wall-clock limit counts from when the job is handed over, not from the container's start."""
    used = spy_on_containers(monkeypatch, warm_sandbox)
    reference_folder(tmp_path, course, "first")
    batch.run([tmp_path / "first"], tmp_path / "out1", course, warm_sandbox, options=SPAWN_ONLY)
    time.sleep(3)  # the warm containers wait meanwhile: that time must not count
    folder = reference_folder(tmp_path, course, "sleeper", spawn="import time\ntime.sleep(10**6)\n")
    started = time.monotonic()
    result = batch.run([folder], tmp_path / "out", course, warm_sandbox, options=grading.Options(timeout=8))
    elapsed = time.monotonic() - started
    doc = result.documents["sleeper"]
    assert doc["status"] == "timeout" and doc["score"] == 0
    assert 8 <= elapsed < 8 + 6, f"took {elapsed:.1f} s for an 8 s limit"
    assert [how for how, _ in used] == ["cold", "warm"]


def test_a_job_of_another_shape_gets_a_cold_container_and_the_pool_follows(docker_client, grading_image, monkeypatch):
    """The sandbox interface alone (any `python -m` command): a warm container only serves a job
    created the same way, so other limits mean a cold container, and the pool switches over."""
    from grader.sandbox.base import Job, Limits

    box = DockerSandbox(grading_image, client=docker_client, warm=1)
    used = spy_on_containers(monkeypatch, box)
    small, big = Limits(memory=256 * 2**20), Limits(memory=512 * 2**20)
    try:
        outcomes = [box.run(Job(files={"data.json": b'{"b": 1, "a": [2]}'},
                                command=("python", "-m", "json.tool", "--sort-keys", "data.json"), limits=limits))
                    for limits in (small, big, big)]
    finally:
        box.close()
    assert [how for how, _ in used] == ["cold", "cold", "warm"]
    for outcome in outcomes:
        assert outcome.exit_status == 0 and json.loads(outcome.stdout) == {"a": [2], "b": 1}, outcome
    assert ours(docker_client) == [], "a labelled container survived"
