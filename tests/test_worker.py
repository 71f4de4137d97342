"""Celery workers with a real redis-server on loopback: the API and `mpgrade grade --broker`.

Every test starts its own redis-server on a free 127.0.0.1 port and its workers as
subprocesses (`mpgrade worker --sandbox local`); all of them are killed in fixtures, and every
wait has a timeout. Without redis-server these tests skip, except under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient

from grader import assignment as assignment_mod
from grader.protocol import results
from grader.service import auth
from grader.service.api import ServiceConfig, create_app
from grader.service.tasks import Client

from .conftest import IN_CI
from .service_helpers import RIGHT, WRONG, make_tiny_course, wait_for, zip_of

SLOW_ON_PUBLIC = ("import time\n\n\ndef add(a, b):\n    if (a, b) == (1, 2):\n        time.sleep(5)\n"
                  "    return a + b\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and every descendant (the local sandbox's own sessions too)."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A throwaway redis-server on 127.0.0.1 (no persistence), killed after the module."""
    exe = shutil.which("redis-server")
    if exe is None:
        if IN_CI:
            pytest.fail("CI=true but redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        r = redis.Redis(host="127.0.0.1", port=port)
        wait_for(lambda: _pings(r), 15, what="redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _pings(r) -> bool:
    try:
        return bool(r.ping())
    except Exception:
        return False


@pytest.fixture
def broker(redis_url, request) -> str:
    """An empty Redis database per test."""
    import redis

    r = redis.Redis.from_url(redis_url + "/0")
    r.flushall()
    return redis_url + "/0"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_course(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def workers(tmp_path, broker, tiny_dir):
    """Start `mpgrade worker` subprocesses: ``workers.start(visibility_timeout=...)``."""

    class Workers:
        procs: list[subprocess.Popen] = []
        logs: list[Path] = []

        def start(self, visibility_timeout: float = 3600, concurrency: int = 1) -> subprocess.Popen:
            log = tmp_path / f"worker-{len(self.procs)}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "grader", "worker", "--broker", broker, "--sandbox", "local",
                 "--assignment", str(tiny_dir), "--concurrency", str(concurrency),
                 "--visibility-timeout", str(visibility_timeout), "--name", f"w{len(self.procs)}@test"],
                stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "COLUMNS": "160"})
            self.procs.append(proc)
            self.logs.append(log)
            wait_for(lambda: "ready" in log.read_text() or proc.poll() is not None, 60, what="the worker")
            assert proc.poll() is None, log.read_text()
            return proc

    w = Workers()
    w.procs, w.logs = [], []
    yield w
    for proc in w.procs:
        kill_tree(proc)


@pytest.fixture
def api(tmp_path, broker, tiny_dir):
    """The API in broker mode (no sandbox here) and a token for course cs101."""
    tokens = tmp_path / "tokens.json"
    token = auth.add_token(tokens, "cs101", ["tiny"])
    config = ServiceConfig(assignments={"tiny": assignment_mod.load(tiny_dir)}, tokens_file=tokens,
                           database=tmp_path / "service.db", broker=broker, visibility_timeout=3,
                           poll_interval=0.2)
    with TestClient(create_app(config)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, config


def submit(client: TestClient, source: str, student: str) -> str:
    response = client.post("/v1/assignments/tiny/submissions", data={"student": student},
                           files=[("file", ("add.py", source.encode()))])
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def done(client: TestClient, job_id: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("done", "failed") and j,
                    timeout, what=f"job {job_id}")


def counting(runs: Path) -> str:
    """A right answer that appends a line to ``runs`` each time it is imported: how often a
    submission was really graded (a stored result row cannot tell)."""
    return f"with open({str(runs)!r}, 'a') as _f:\n    _f.write('imported\\n')\n\n\n" + RIGHT


def test_a_job_goes_through_a_celery_worker_and_is_graded_once(api, workers, broker, tmp_path):
    client, config = api
    workers.start()
    runs = tmp_path / "runs.log"
    job_id = submit(client, counting(runs), "s1")
    job = done(client, job_id)
    assert job["status"] == "done"
    doc = results.validate(job["result"])
    assert doc["score"] == 10 and doc["submission"]["student"]["user_id"] == "s1"
    imports_per_grading = runs.read_text().count("imported")
    assert imports_per_grading >= 1

    # the same message delivered again (a broker hiccup): answered from the stored result
    stored = config.store.job(job_id)
    Client(broker).send(job_id, stored.payload)
    wait_for(lambda: workers.logs[0].read_text().count(f"[{job_id}] succeeded") == 2, 30,
             what="the repeated message")
    log = workers.logs[0].read_text()
    assert log.count(f"[{job_id}] received") == 2
    assert runs.read_text().count("imported") == imports_per_grading  # answered, not graded again
    assert config.store.count_results(job_id) == 1
    assert client.get(f"/v1/jobs/{job_id}").json()["result"]["finished_at"] == doc["finished_at"]


def test_a_worker_keeps_a_harness_started_ahead_for_each_of_its_slots(api, workers):
    """As `mpgrade grade --jobs N` does: once a job has shown the pool its shape, the next ones
    skip the sandbox's start (a container's, about 0.13 s in Docker) and find pytest imported."""
    client, _ = api
    proc = workers.start(concurrency=2)

    def warm() -> list[psutil.Process]:
        found = []
        for p in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "grader.harness.warmstart" in " ".join(p.cmdline()):
                    found.append(p)
            except psutil.NoSuchProcess:
                pass
        return found if len(found) >= 2 else []

    job = done(client, submit(client, RIGHT, "alice"))  # the first job shows the pool its shape
    assert job["status"] == "done" and job["result"]["score"] == 10, job
    ahead = wait_for(warm, 60, what="two warm harnesses")
    assert len(ahead) == 2
    job = done(client, submit(client, RIGHT, "bob"))  # ... which the next one takes
    assert job["status"] == "done" and job["result"]["score"] == 10, job
    assert not all(p.is_running() for p in ahead)  # one of them served it (a worker serves one job)


def test_a_worker_killed_mid_job_loses_nothing(api, workers, broker):
    client, config = api
    first = workers.start(visibility_timeout=3)
    job_id = submit(client, SLOW_ON_PUBLIC, "slowpoke")
    celery = Client(broker)
    wait_for(lambda: celery.poll(job_id).state == "STARTED", 60, what="grading to start")
    time.sleep(1)  # inside the student's 5 s sleep
    kill_tree(first)  # SIGKILL: no chance to acknowledge, requeue or clean up
    assert config.store.job(job_id).status in ("queued", "running")

    workers.start(visibility_timeout=3)
    job = done(client, job_id, timeout=90)
    assert job["status"] == "done" and job["result"]["score"] == 10
    assert f"[{job_id}] received" in workers.logs[1].read_text()  # redelivered to the new worker
    assert config.store.count_results(job_id) == 1
    assert config.store.count_results() == 1


@pytest.fixture
def unsent_job(tmp_path, tiny_dir) -> str:
    """A job the API stored but never handed to Redis (it was killed in between)."""
    from grader.grading import Options
    from grader.service import jobs
    from grader.service.api import build_submission
    from grader.service.store import NewJob, SQLiteStore

    tiny = assignment_mod.load(tiny_dir)
    sub = build_submission(tiny, [("add.py", RIGHT.encode())], "s-unsent", "cs101")
    job_id = jobs.job_key(tiny, "s-unsent", sub.hash, salt="cs101")
    SQLiteStore(tmp_path / "service.db").add_job(NewJob(
        id=job_id, course="cs101", assignment="tiny", fingerprint=tiny.fingerprint(), student="s-unsent",
        submission_hash=sub.hash, payload=jobs.to_payload(tiny, sub, Options())))
    return job_id


def test_a_job_stored_but_never_sent_is_sent_when_the_api_starts(unsent_job, api, workers):
    client, config = api
    workers.start()
    job = done(client, unsent_job)
    assert job["status"] == "done" and job["result"]["score"] == 10
    assert config.store.job(unsent_job).sent_at is not None


def test_grade_with_a_broker_writes_the_same_outputs_as_a_local_batch(tmp_path, workers, broker, tiny_dir):
    subs = tmp_path / "submissions"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "add.py").write_text(RIGHT)
    (subs / "bob.zip").write_bytes(zip_of({"bob/add.py": WRONG}))
    workers.start()

    def grade(out: Path, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out),
                               "--assignment", str(tiny_dir), *extra],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "160"})

    remote = grade(tmp_path / "remote", "--broker", broker)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    local = grade(tmp_path / "local", "--sandbox", "local")
    assert local.returncode == 0, local.stdout + local.stderr
    names = sorted(p.name for p in (tmp_path / "remote").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == ["alice.json", "bob.json", "scores.csv", "summary.json"]
    for name in ("alice.json", "bob.json"):
        doc = results.validate(json.loads((tmp_path / "remote" / name).read_text()))
        assert doc["score"] == json.loads((tmp_path / "local" / name).read_text())["score"]
    assert (tmp_path / "remote" / "scores.csv").read_text() == (tmp_path / "local" / "scores.csv").read_text()
    summary = json.loads((tmp_path / "remote" / "summary.json").read_text())
    assert {r["id"]: r["score"] for r in summary["submissions"]} == {"alice": 10, "bob": 0}

    again = grade(tmp_path / "remote2", "--broker", broker)  # same files: the workers' results, no new job
    assert again.returncode == 0
    log = workers.logs[0].read_text()
    assert log.count("received") == 2, log


def test_grade_with_a_broker_that_does_not_answer_is_one_line_and_exit_2(tmp_path, tiny_dir):
    out = subprocess.run([sys.executable, "-m", "grader", "grade", str(tiny_dir), "--out", str(tmp_path / "o"),
                          "--assignment", str(tiny_dir), "--broker", f"redis://127.0.0.1:{free_port()}/0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "does not answer" in out.stderr and "Traceback" not in out.stderr


def test_sending_jobs_leaves_no_result_subscriptions_behind(broker):
    """A guard: with the installed Celery, AsyncResult.__del__ already unsubscribes, so this
    also passes without Client.send's explicit cancel_for; it catches a version that does not."""
    import redis

    client = Client(broker)  # no worker: the payloads are never read
    ids = [f"{i:032x}" for i in range(1, 6)]
    for job_id in ids:
        client.send(job_id, {"version": 1})
    r = redis.Redis.from_url(broker)
    channels = [c.decode() for c in r.execute_command("PUBSUB", "CHANNELS")]
    assert not [c for c in channels if any(i in c for i in ids)], channels


def test_a_garbage_backend_entry_does_not_stop_other_jobs_being_collected(api, workers, broker, tiny_dir):
    import redis

    from grader.grading import Options
    from grader.service import jobs, runner
    from grader.service.api import build_submission
    from grader.service.store import NewJob

    client, config = api
    tiny = assignment_mod.load(tiny_dir)
    sub = build_submission(tiny, [("add.py", WRONG.encode())], "s-garbage", "cs101")
    bad_id = jobs.job_key(tiny, "s-garbage", sub.hash, salt="cs101")
    config.store.add_job(NewJob(id=bad_id, course="cs101", assignment="tiny", fingerprint=tiny.fingerprint(),
                                student="s-garbage", submission_hash=sub.hash,
                                payload=jobs.to_payload(tiny, sub, Options())))
    config.store.mark_sent(bad_id)
    redis.Redis.from_url(broker).set(f"celery-task-meta-{bad_id}", b"\xff{not json")

    workers.start()
    good = done(client, submit(client, RIGHT, "s-good"))
    assert good["status"] == "done" and good["result"]["score"] == 10
    bad = wait_for(lambda: (j := config.store.job(bad_id)).status == "failed" and j,
                   runner.POLL_ERRORS * 0.2 + 30, what="the garbage job to fail")
    assert "unreadable" in bad.message


def test_a_job_redis_lost_is_sent_again(api, workers, broker):
    import redis

    client, config = api  # visibility timeout 3 s
    job_id = submit(client, RIGHT, "s-lost")
    # The API's sender hands jobs to the broker by fair share, from a thread of its own: wait
    # until this one was sent, then lose it.
    deadline = time.monotonic() + 30
    while config.store.job(job_id).sent_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert config.store.job(job_id).sent_at is not None
    redis.Redis.from_url(broker).flushall()  # Redis restarted without persistence: the message is gone
    workers.start()
    job = done(client, job_id, timeout=90)
    assert job["status"] == "done" and job["result"]["score"] == 10


def test_grade_with_a_broker_regrades_a_job_whose_earlier_try_failed(tmp_path, workers, broker, tiny_dir):
    import threading

    from grader.grading import Options
    from grader.intake.submission import from_folder
    from grader.service import jobs
    from grader.service.tasks import batch_salt

    tiny = assignment_mod.load(tiny_dir)
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "add.py").write_text(RIGHT)
    sub = from_folder(folder, tiny, sub_id="alice")
    options = Options()
    client = Client(broker)
    job_id = jobs.job_key(tiny, sub.id, sub.hash, batch_salt(options))
    client.app.backend.mark_as_failure(job_id, RuntimeError("an old worker crash"))
    assert client.poll(job_id).state == "FAILURE"

    workers.start()
    grade_one = client.grade_function(tiny, options, force=False, sandbox_name="local", stop=threading.Event())
    doc = grade_one(sub)
    assert doc is not None and doc["status"] == "graded" and doc["score"] == 10, doc


def test_a_backlog_longer_than_the_visibility_timeout_is_graded_once(api, workers, tmp_path):
    """Six slow jobs, two workers, an API with a 3 s visibility timeout: the last jobs wait in
    the queue far longer than 3 s. Queued is not lost: no job is sent again, none graded twice.
    (The workers' own timeout exceeds a grading, as it must: that one is Redis's redelivery
    of a message a dead worker held, not the API's.)"""
    client, config = api  # the API's visibility timeout: 3 s
    for _ in range(2):
        workers.start(visibility_timeout=60)
    slow = "import time\n\n\ndef add(a, b):\n    time.sleep(1.5)\n    return a + b\n"
    ids = [submit(client, f"# {i}\n" + slow, f"s-backlog-{i}") for i in range(6)]
    for job_id in ids:
        job = done(client, job_id, timeout=120)
        assert job["status"] == "done" and job["result"]["score"] == 10, job
    logs = "".join(log.read_text() for log in workers.logs)
    for job_id in ids:
        assert logs.count(f"[{job_id}] received") == 1, (job_id, logs[-3000:])
        assert config.store.count_results(job_id) == 1


def test_a_resubmission_replaces_the_queued_one_and_the_queue_says_where_a_job_is(api, workers):
    client, config = api
    older = submit(client, WRONG, "s-again")  # no worker yet: both wait in the queue
    other = submit(client, RIGHT, "s-someone")
    newer = submit(client, RIGHT, "s-again")
    gone = client.get(f"/v1/jobs/{older}").json()
    assert gone["status"] == "failed" and "superseded" in gone["message"] and newer in gone["message"]
    waiting = client.get(f"/v1/jobs/{newer}").json()
    assert waiting["queue"]["position"] == 2 and waiting["timestamps"]["received"]
    assert client.get(f"/v1/jobs/{other}").json()["queue"]["position"] == 1

    workers.start()
    for job_id in (other, newer):
        job = done(client, job_id)
        assert job["result"]["score"] == 10 and job["queue"] is None and job["timestamps"]["graded"]
    wait_for(lambda: f"job {older} was superseded" in workers.logs[0].read_text(), 30, what="the drop")
    assert config.store.count_results(older) == 0


def test_a_job_whose_workers_keep_dying_ends_not_gradable(api, workers, broker, tiny_dir):
    """Three workers already died holding this job (its claims count says so): the fourth
    does not grade it again but answers not gradable, which is never sent as a grade."""
    import redis

    from grader.service import jobs
    from grader.service.api import build_submission
    from grader.service.tasks import INFRA_ATTEMPTS, claims_key

    client, config = api
    tiny = assignment_mod.load(tiny_dir)
    sub = build_submission(tiny, [("add.py", RIGHT.encode())], "s-cursed", "cs101")
    job_id = jobs.job_key(tiny, "s-cursed", sub.hash, salt="cs101")
    redis.Redis.from_url(broker).set(claims_key(job_id), INFRA_ATTEMPTS)
    assert submit(client, RIGHT, "s-cursed") == job_id
    workers.start()
    job = done(client, job_id)
    assert job["status"] == "done" and job["gradable"] is False and job["fault"] == "infrastructure"
    assert f"lost {INFRA_ATTEMPTS} times" in job["result"]["message"]


@pytest.fixture
def two_courses(tmp_path, broker, tiny_dir):
    """The API in broker mode with two courses (tokens for both) handing the broker one job
    ahead of the workers: ``(client, config, {course: headers})``."""
    tokens = tmp_path / "tokens.json"
    heads = {c: {"Authorization": f"Bearer {auth.add_token(tokens, c, ['tiny'])}"} for c in ("big", "small")}
    config = ServiceConfig(assignments={"tiny": assignment_mod.load(tiny_dir)}, tokens_file=tokens,
                           database=tmp_path / "service.db", broker=broker, poll_interval=0.2,
                           dispatch_ahead=1)
    with TestClient(create_app(config)) as client:
        yield client, config, heads


def test_a_burst_of_one_course_does_not_starve_another_with_two_celery_workers(two_courses, workers):
    """Course big posts 8 jobs, then course small 2 (all before any worker runs): the broker is
    handed jobs by fair share as workers take them, so small's jobs are graded among the first
    four, not after big's whole burst (first in, first out in the broker: 9th and 10th). A
    student of big resubmitting meanwhile holds one place, and the superseded job never
    reaches the broker."""
    client, config, heads = two_courses

    def post(course: str, student: str, source: str = RIGHT) -> str:
        response = client.post("/v1/assignments/tiny/submissions", data={"student": student},
                               files=[("file", ("add.py", source.encode()))], headers=heads[course])
        assert response.status_code == 202, response.text
        return response.json()["job_id"]

    big = [post("big", f"b-{i}", f"# {i}\n" + RIGHT) for i in range(7)]
    replaced = big[6]
    big[6] = post("big", "b-6", "# again\n" + RIGHT)  # b-6 resubmits: replaces its queued job
    big.append(post("big", "b-7"))
    small = [post("small", f"s-{i}") for i in range(2)]
    assert config.store.job(replaced).status == "failed"
    assert len(config.store.waiting_sent()) == config.dispatch_ahead  # ahead of the workers; the rest wait in the store
    for _ in range(2):
        workers.start()
    started = {}
    for job_id in big + small:
        who = heads["small"] if job_id in small else heads["big"]
        job = wait_for(lambda j=job_id, h=who: (r := client.get(f"/v1/jobs/{j}", headers=h).json())["status"]
                       in ("done", "failed") and r, 180, what=f"job {job_id}")
        assert job["status"] == "done" and job["result"]["score"] == 10, job["message"]
        started[job_id] = job["result"]["started_at"]
    order = sorted(started, key=started.get)
    assert {order.index(j) for j in small} <= {0, 1, 2, 3}, ["small" if j in small else "big" for j in order]
    logs = "".join(log.read_text() for log in workers.logs)
    assert replaced not in logs  # never sent: it was superseded while it waited in the store
    for job_id in big + small:
        assert logs.count(f"[{job_id}] received") == 1, job_id


def test_slots_start_ahead_only_for_one_assignment(tiny_dir, course):
    """Started-ahead harnesses have one shape (the assignment's limits): jobs of two
    assignments taking turns would each find the other's, drop them and start cold."""
    from grader.cli.service import sandbox_for

    tiny = assignment_mod.load(tiny_dir)
    one = sandbox_for("local", {"tiny": tiny}, None, 3)
    two = sandbox_for("local", {"tiny": tiny, course.name: course}, None, 3)
    try:
        assert (one.warm, two.warm) == (3, 0)
    finally:
        one.close()
        two.close()
