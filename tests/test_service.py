"""`mpgrade serve` as an LMS uses it: push a submission, get a job id, read the result.

These tests run the API with its embedded worker and the LOCAL sandbox (trusted code only),
in-process through FastAPI's TestClient; the Celery path is in test_worker.py.
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from grader import assignment as assignment_mod
from grader.protocol import results
from grader.sandbox.local import LocalSandbox
from grader.service import auth, jobs
from grader.service.api import ServiceConfig, build_submission, create_app
from grader.service.store import NewJob, SQLiteStore

from .conftest import REPO
from .service_helpers import RIGHT, WRONG, Receiver, make_tiny_course, wait_for, zip_of

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> assignment_mod.Assignment:
    """A one-function assignment that grades in about a second."""
    return assignment_mod.load(make_tiny_course(tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def tokens(tmp_path) -> dict:
    """Two courses: cs101 may use both assignments, cs202 only the tiny one."""
    path = tmp_path / "tokens.json"
    return {
        "file": path,
        "cs101": auth.add_token(path, "cs101", ["tiny", "multiprocessing-basics"]),
        "cs202": auth.add_token(path, "cs202", ["tiny"]),
    }


@pytest.fixture
def serve(tmp_path, tokens, tiny, course):
    """Start the API (embedded worker, local sandbox): ``serve(**config) -> TestClient``."""
    started: list[TestClient] = []

    def start(**overrides) -> TestClient:
        config = ServiceConfig(
            assignments={tiny.name: tiny, course.name: course}, tokens_file=tokens["file"],
            database=overrides.pop("database", tmp_path / "service.db"),
            **{"sandbox": LocalSandbox(), "callback_backoff": 0.1,
               "callback_allow": ("127.0.0.0/8",), **overrides})  # the test LMS is on loopback
        client = TestClient(create_app(config))
        client.__enter__()  # runs the lifespan: the worker threads start
        started.append(client)
        return client

    yield start
    for client in started:
        client.__exit__(None, None, None)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(client: TestClient, token: str, assignment: str, files: dict[str, bytes], student: str,
           **form: str):
    return client.post(f"/v1/assignments/{assignment}/submissions", headers=bearer(token),
                       data={"student": student, **form},
                       files=[("file", (name, data)) for name, data in files.items()])


def finished(client: TestClient, token: str, job_id: str, timeout: float = 60) -> dict:
    def done():
        job = client.get(f"/v1/jobs/{job_id}", headers=bearer(token)).json()
        return job if job["status"] in ("done", "failed") else None

    return wait_for(done, timeout, what=f"job {job_id}")


def test_an_lms_submits_the_sample_zip_and_reads_the_graded_result(serve, tokens):
    client = serve()
    zip_bytes = (REPO / "examples" / "submissions" / "alice-full.zip").read_bytes()
    response = submit(client, tokens["cs101"], "multiprocessing-basics", {"alice-full.zip": zip_bytes},
                      student="canvas-4711")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and response.headers["location"] == f"/v1/jobs/{job['job_id']}"

    job = finished(client, tokens["cs101"], job["job_id"], timeout=180)
    assert job["status"] == "done", job
    doc = results.validate(job["result"])
    assert doc["status"] == "graded" and doc["score"] == doc["max_score"] == 100
    assert doc["submission"]["student"] == {"lms": "api", "user_id": "canvas-4711", "course": "cs101"}
    assert doc["grader"]["sandbox"] == "local"

    listing = client.get("/v1/assignments/multiprocessing-basics/results", headers=bearer(tokens["cs101"]))
    assert listing.status_code == 200
    [row] = listing.json()["results"]
    assert row["job_id"] == job["job_id"] and row["student"] == "canvas-4711" and row["score"] == 100

    # the same files again: the same job, not a second grading
    again = submit(client, tokens["cs101"], "multiprocessing-basics", {"alice-full.zip": zip_bytes},
                   student="canvas-4711")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["job_id"] == job["job_id"] and again.json()["result"]["score"] == 100


def test_a_course_token_sees_only_its_own_course(serve, tokens):
    client = serve()
    response = submit(client, tokens["cs202"], "tiny", {"add.py": RIGHT.encode()}, student="s1")
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert finished(client, tokens["cs202"], job_id)["result"]["score"] == 10

    other = client.get(f"/v1/jobs/{job_id}", headers=bearer(tokens["cs101"]))
    assert other.status_code == 404 and other.headers["content-type"] == PROBLEM
    # cs101 uses "tiny" too, but sees none of cs202's results
    assert client.get("/v1/assignments/tiny/results", headers=bearer(tokens["cs101"])).json()["results"] == []
    # cs202 may not use the bundled course at all: neither submit nor list
    forbidden = client.get("/v1/assignments/multiprocessing-basics/results", headers=bearer(tokens["cs202"]))
    assert forbidden.status_code == 403 and forbidden.json()["title"] == "Forbidden"
    assert submit(client, tokens["cs202"], "multiprocessing-basics", {"add.py": b"x"},
                  student="s1").status_code == 403
    assert client.get("/v1/assignments/nope/results", headers=bearer(tokens["cs202"])).status_code == 404


def test_no_token_or_a_wrong_one_is_401_problem_json(serve):
    client = serve()
    for headers in ({}, bearer("mpg_not-a-token"), {"Authorization": "Basic dXNlcjpwdw=="}):
        response = client.get("/v1/assignments/tiny/results", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"
        body = response.json()
        assert body["type"] == "about:blank" and body["status"] == 401 and body["detail"]


def test_a_body_over_the_limit_is_refused_with_413(serve, tokens):
    client = serve(max_body=64 * 1024)
    big = b"#" * (100 * 1024)
    response = submit(client, tokens["cs101"], "tiny", {"add.py": big}, student="s1")
    assert response.status_code == 413 and response.headers["content-type"] == PROBLEM
    assert "65536 bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: refused once the stream passes the limit
        yield b"--x\r\nContent-Disposition: form-data; name=\"student\"\r\n\r\ns1\r\n"
        for _ in range(20):
            yield b"#" * 8192

    response = client.post("/v1/assignments/tiny/submissions", content=chunks(),
                           headers={**bearer(tokens["cs101"]),
                                    "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and response.json()["status"] == 413


@pytest.mark.parametrize("form, files, detail", [
    ({}, {"add.py": RIGHT.encode()}, "student"),
    ({"student": "s1"}, {}, "file"),
    ({"student": "s1", "callback_url": "file:///etc/passwd"}, {"add.py": RIGHT.encode()}, "http"),
    ({"student": "s1", "callback_format": "xml"}, {"add.py": RIGHT.encode()}, "callback_format"),
    ({"student": "s1"}, {"evil.zip": zip_of({"../add.py": RIGHT})}, "points outside the archive"),
    ({"student": "s1"}, {"notes.txt": b"hello"}, "no files of this assignment"),
])
def test_a_bad_request_is_422_problem_json_saying_what_is_wrong(serve, tokens, form, files, detail):
    client = serve()
    response = client.post("/v1/assignments/tiny/submissions", headers=bearer(tokens["cs101"]), data=form,
                           files=[("file", (n, d)) for n, d in files.items()] or None)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 422 and body["title"] and detail in body["detail"]


def test_the_callback_gets_the_lti_score_on_loopback(serve, tokens):
    client = serve()
    with Receiver() as lms:
        response = submit(client, tokens["cs101"], "tiny", {"lab.zip": zip_of({"lab/add.py": WRONG})},
                          student="lti-user-9", callback_url=f"{lms.url}/lineitems/1/scores",
                          callback_format="lti")
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        path, content_type, score = wait_for(lambda: lms.received and lms.received[0], 60, what="the callback")
    assert path == "/lineitems/1/scores" and content_type == "application/vnd.ims.lis.v1.score+json"
    assert score["userId"] == "lti-user-9" and score["scoreMaximum"] == 10
    assert score["scoreGiven"] == 0 and score["gradingProgress"] == "FullyGraded"
    job = wait_for(lambda: (j := client.get(f"/v1/jobs/{job_id}", headers=bearer(tokens["cs101"])).json())
                   ["callback"]["status"] and j, 10, what="the callback status")
    assert job["callback"]["status"] == "delivered: HTTP 200"


def test_the_callback_gets_the_result_document(serve, tokens):
    client = serve()
    with Receiver() as lms:
        submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s2",
               callback_url=lms.url + "/done")
        _, content_type, doc = wait_for(lambda: lms.received and lms.received[0], 60, what="the callback")
    assert content_type == "application/json"
    assert results.validate(doc)["score"] == 10


def test_jobs_queued_or_running_when_the_server_stopped_are_graded_after_a_restart(tmp_path, serve, tokens, tiny):
    store = SQLiteStore(tmp_path / "service.db")
    for student in ("before-1", "before-2"):  # what a server killed mid-way left behind
        sub = build_submission(tiny, [("add.py", RIGHT.encode())], student, "cs101")
        store.add_job(NewJob(id=jobs.job_key(tiny, student, sub.hash, salt="cs101"), course="cs101",
                             assignment="tiny", fingerprint=tiny.fingerprint(), student=student,
                             submission_hash=sub.hash,
                             payload=jobs.to_payload(tiny, sub, jobs.grading.Options())))
    running = store.claim_next()
    assert running is not None and running.status == "running"

    client = serve()
    listing = wait_for(lambda: len(r := client.get("/v1/assignments/tiny/results",
                                                   headers=bearer(tokens["cs101"])).json()["results"]) == 2 and r,
                       60, what="both jobs")
    assert sorted(r["student"] for r in listing) == ["before-1", "before-2"]
    assert store.count_results() == 2


def test_the_openapi_spec_lists_the_three_routes(serve):
    client = serve()
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/v1/assignments/{name}/submissions", "/v1/jobs/{job_id}",
            "/v1/assignments/{name}/results"} <= set(spec["paths"])
    assert "post" in spec["paths"]["/v1/assignments/{name}/submissions"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert json.dumps(spec)  # plain JSON all the way down


def test_serve_refuses_a_callback_allow_that_is_not_a_network(tmp_path):
    from click.testing import CliRunner

    from grader.cli import main

    out = CliRunner().invoke(main, ["serve", "--data", str(tmp_path), "--sandbox", "local",
                                    "--callback-allow", "intranet"])
    assert out.exit_code == 2 and "--callback-allow 'intranet'" in out.output and "Traceback" not in out.output


def test_the_service_commands_explain_themselves_with_examples():
    from click.testing import CliRunner

    from grader.cli import main

    for command in (["serve"], ["worker"], ["token"], ["token", "add"]):
        out = CliRunner().invoke(main, [*command, "--help"])
        assert out.exit_code == 0 and "Example" in out.output, command
    assert "--broker" in CliRunner().invoke(main, ["grade", "--help"]).output


def test_token_add_prints_a_token_that_the_file_only_holds_as_a_hash(tmp_path):
    from click.testing import CliRunner

    from grader.cli import main

    path = tmp_path / "tokens.json"
    out = CliRunner().invoke(main, ["token", "add", "cs101", "--assignment", "tiny", "--tokens", str(path)])
    assert out.exit_code == 0, out.output
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("mpg_") and token not in path.read_text()
    assert auth.Tokens.load(path).course_for(token) == auth.Course("cs101", frozenset({"tiny"}))
    bad = CliRunner().invoke(main, ["token", "add", "../x", "--assignment", "tiny", "--tokens", str(path)])
    assert bad.exit_code == 2 and "course name" in bad.output


def test_serve_without_a_tokens_file_is_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from grader.cli import main

    out = CliRunner().invoke(main, ["serve", "--data", str(tmp_path), "--assignment", str(REPO),
                                    "--sandbox", "local"])
    assert out.exit_code == 2 and "mpgrade token add" in out.output and "Traceback" not in out.output


class _Stalling:
    """A loopback 'LMS' that accepts the connection and then answers one byte a second (or never)."""

    def __init__(self, drip: bool) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/scores"
        self.drip, self.stop, self.conns = drip, threading.Event(), []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import itertools

        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.stop.is_set():  # accepted while closing: close() may have missed it
                conn.close()
                return
            if self.drip:
                answer = itertools.cycle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 50)
                try:
                    while not self.stop.wait(0.3):
                        conn.sendall(bytes([next(answer)]))
                except OSError:
                    pass

    def close(self) -> None:
        import socket

        self.stop.set()
        try:  # wakes the accept() under way (closing alone leaves it listening, on Linux)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.parametrize("drip", [True, False], ids=["drips-headers", "never-answers"])
def test_a_callback_to_a_server_that_stalls_gives_up_at_the_deadline(drip):
    import time

    from grader.service import callbacks

    server = _Stalling(drip)
    doc = {"score": 1}
    import threading

    outcome: list[str] = []
    try:
        started = time.monotonic()
        t = threading.Thread(target=lambda: outcome.append(
            callbacks.post(server.url, doc, attempts=2, timeout=1.0, backoff=0.1,
                           egress=callbacks.Egress(callbacks.networks(["127.0.0.0/8"])))), daemon=True)
        t.start()
        t.join(15)  # a delivery that never gives up fails the test instead of hanging it
        took = time.monotonic() - started
    finally:
        server.close()
    assert outcome, "the delivery was still waiting after 15 s"
    status = outcome[0]
    assert status.startswith("failed: ") and "Timeout" in status, status
    assert took < 5, took  # 2 attempts of 1 s each (+ backoff), not one per-read timeout after another


class FlakySandbox(LocalSandbox):
    """The local sandbox, except that its first ``failures`` runs break (a daemon hiccup)."""

    def __init__(self, failures: int = 1) -> None:
        super().__init__()
        self.failures = failures

    def run(self, job):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the sandbox failed")
        return super().run(job)


def test_a_repost_of_files_whose_grading_failed_grades_them_again(serve, tokens):
    client = serve(sandbox=FlakySandbox(failures=3))  # every automatic attempt fails
    first = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-flaky")
    job = finished(client, tokens["cs101"], first.json()["job_id"])
    assert job["status"] == "done" and job["result"]["status"] == "error", job
    assert job["gradable"] is False and job["result"]["gradable"] is False

    again = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-flaky")
    assert again.status_code == 202 and again.json()["duplicate"] is False, again.text
    assert again.json()["job_id"] == job["job_id"]
    job = finished(client, tokens["cs101"], job["job_id"])
    assert job["result"]["status"] == "graded" and job["result"]["score"] == 10

    # a grade that stands is not redone
    third = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-flaky")
    assert third.status_code == 200 and third.json()["duplicate"] is True


def test_a_failed_job_is_graded_again_when_its_files_come_again(serve, tokens, tiny, tmp_path):
    store = SQLiteStore(tmp_path / "service.db")
    sub = build_submission(tiny, [("add.py", RIGHT.encode())], "s-failed", "cs101")
    row, _ = store.add_job(NewJob(id=jobs.job_key(tiny, "s-failed", sub.hash, salt="cs101"), course="cs101",
                                  assignment="tiny", fingerprint=tiny.fingerprint(), student="s-failed",
                                  submission_hash=sub.hash,
                                  payload=jobs.to_payload(tiny, sub, jobs.grading.Options())))
    store.claim_next()
    store.fail(row.id, "no worker has this assignment")
    client = serve()
    again = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-failed")
    assert again.status_code == 202 and again.json()["job_id"] == row.id, again.text
    assert finished(client, tokens["cs101"], row.id)["result"]["score"] == 10


def test_resubmitting_earlier_files_with_a_callback_sends_their_result_again(serve, tokens):
    client = serve()
    with Receiver() as lms:
        def send(source: str, n: int) -> None:
            submit(client, tokens["cs101"], "tiny", {"add.py": source.encode()}, student="s-aba",
                   callback_url=lms.url + "/scores")
            wait_for(lambda: len(lms.received) >= n, 60, what=f"callback {n}")

        send(RIGHT, 1)  # A
        send(WRONG, 2)  # B
        send(RIGHT, 3)  # A again: a duplicate, but the LMS must end with A's score
        scores = [r.body["score"] for r in lms.received]
    assert scores == [10, 0, 10]


def test_a_callback_owed_when_the_server_stopped_is_sent_when_it_starts(tmp_path, serve, tokens, tiny):
    store = SQLiteStore(tmp_path / "service.db")
    sub = build_submission(tiny, [("add.py", RIGHT.encode())], "s-owed", "cs101")
    payload = jobs.to_payload(tiny, sub, jobs.grading.Options())
    with Receiver() as lms:
        row, _ = store.add_job(NewJob(id=jobs.job_key(tiny, "s-owed", sub.hash, salt="cs101"), course="cs101",
                                      assignment="tiny", fingerprint=tiny.fingerprint(), student="s-owed",
                                      submission_hash=sub.hash, payload=payload,
                                      callback_url=lms.url + "/owed", callback_format="result"))
        store.claim_next()
        assert store.finish(row.id, jobs.failure_document(tiny, payload, "graded before the stop"))
        # ... and the server stopped before it delivered the callback
        serve()
        path, _, doc = wait_for(lambda: lms.received and lms.received[0], 30, what="the owed callback")
    assert path == "/owed" and doc["message"] == "graded before the stop"
    assert wait_for(lambda: store.job(row.id).callback_status, 10) == "delivered: HTTP 200"


@pytest.mark.parametrize("student", ["alice\n", "a\u2028b", "a\u2029b", "a\u202eb", "a\u0085b", "a\x00b"])
def test_a_student_id_with_control_or_separator_characters_is_422(serve, tokens, student):
    client = serve()
    response = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student=student)
    assert response.status_code == 422, response.text
    assert "student" in response.json()["detail"]


@pytest.mark.parametrize("course", ["cs101\n", "cs\u2028101", "cs\u202e101"])
def test_a_course_name_with_a_trailing_newline_or_control_is_refused(tmp_path, course):
    with pytest.raises(auth.TokensError, match="course name"):
        auth.add_token(tmp_path / "tokens.json", course, ["tiny"])


def test_loose_file_names_with_nul_or_over_255_bytes_are_ignored_not_500(serve, tokens):
    client = serve()
    for name in ("add\x00.py", "a" * 300 + ".py"):
        response = submit(client, tokens["cs101"], "tiny", {name: RIGHT.encode()}, student="s-names")
        assert response.status_code == 422, (name, response.text)


def test_a_submission_post_without_a_valid_token_is_401_before_its_body_is_read(tmp_path, tokens, tiny):
    import asyncio

    app = create_app(ServiceConfig(assignments={"tiny": tiny}, tokens_file=tokens["file"],
                                   database=tmp_path / "service.db", sandbox=LocalSandbox()))
    for headers in ([], [(b"authorization", b"Bearer mpg_wrong")], [(b"authorization", b"Basic eDp5")]):
        reads, sent = [], []

        async def receive(reads=reads):
            reads.append(1)
            return {"type": "http.request", "body": b"#" * 65536, "more_body": True}

        async def send(message, sent=sent):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/assignments/tiny/submissions", "raw_path": b"", "query_string": b"",
                 "root_path": "", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
                 "headers": [(b"content-type", b"multipart/form-data; boundary=x"),
                             (b"content-length", b"4000000"), *headers]}
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 401 and reads == [], headers
        assert json.loads(sent[1]["body"])["status"] == 401


def test_a_token_no_longer_allowed_the_assignment_does_not_see_its_jobs(tmp_path, serve, tokens):
    client = serve()
    job_id = submit(client, tokens["cs202"], "tiny", {"add.py": RIGHT.encode()}, student="s-revoked").json()["job_id"]
    finished(client, tokens["cs202"], job_id)
    data = json.loads(tokens["file"].read_text())
    for entry in data["tokens"]:
        if entry["course"] == "cs202":
            entry["assignments"] = ["multiprocessing-basics"]
    tokens["file"].write_text(json.dumps(data) + "\n" * 3)  # another size: the server re-reads it
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(tokens["cs202"])).status_code == 404


def test_the_database_is_readable_by_its_owner_only(tmp_path):
    store = SQLiteStore(tmp_path / "fresh.db")
    assert (store.path.stat().st_mode & 0o777) == 0o600


def _payload(tiny, student: str = "s-crafted", source: str = RIGHT) -> dict:
    sub = build_submission(tiny, [("add.py", source.encode())], student, "cs101")
    return jobs.to_payload(tiny, sub, jobs.grading.Options())


@pytest.mark.parametrize("tamper, why", [
    (lambda p: p["submission"]["files"].update({"../conftest.py": "aW1wb3J0IG9z"}), "does not take"),
    (lambda p: p["submission"]["files"].update({"conftest.py": "aW1wb3J0IG9z"}), "does not take"),
    (lambda p: p["options"].update(start_method="os.system"), "start method"),
    (lambda p: p["options"].update(timeout=7 * 24 * 3600.0), "timeout"),
    (lambda p: p["options"].update(timeout=-1), "timeout"),
    (lambda p: p["options"].update(timeout="30"), "timeout"),
    (lambda p: p["options"].update(timeout=float("nan")), "timeout"),
])
def test_a_worker_refuses_a_crafted_payload_before_grading(tiny, tamper, why):
    class NoSandbox:
        name = "none"

        def run(self, job):  # pragma: no cover - reaching it is the failure
            raise AssertionError("graded a crafted payload")

    payload = _payload(tiny)
    tamper(payload)
    with pytest.raises(jobs.BadPayload, match=why):
        jobs.Grader({"tiny": tiny}, NoSandbox()).grade(payload)


def test_the_collector_refuses_a_result_made_for_other_files(tmp_path, tiny):
    from grader.service.runner import Dispatched
    from grader.service.tasks import Poll

    store = SQLiteStore(tmp_path / "service.db")
    mine, other = _payload(tiny, "s-mine", RIGHT), _payload(tiny, "s-other", WRONG)
    mine_sub = jobs.submission_of(mine)
    row, _ = store.add_job(NewJob(id="a" * 32, course="cs101", assignment="tiny", fingerprint=tiny.fingerprint(),
                                  student="s-mine", submission_hash=mine_sub.hash, payload=mine))
    store.mark_sent(row.id)  # the broker has it (the collector polls only jobs it has sent)
    forged = jobs.failure_document(tiny, other, "a forged 100%")  # valid, but for another submission

    class Backend:
        def poll(self, job_id):
            return Poll("SUCCESS", document=forged)

    done: list[str] = []
    Dispatched(store, Backend(), done.append).collect_once()  # type: ignore[arg-type]
    job = store.job(row.id)
    assert job.status == "failed" and "other files" in job.message and done == [row.id]
    assert store.count_results() == 0


def test_one_unreadable_backend_entry_does_not_stop_the_collector(tmp_path, tiny):
    from grader.service import runner
    from grader.service.tasks import Poll

    store = SQLiteStore(tmp_path / "service.db")
    bad_payload, good_payload = _payload(tiny, "s-bad"), _payload(tiny, "s-good")
    for job_id, payload, student in (("b" * 32, bad_payload, "s-bad"), ("c" * 32, good_payload, "s-good")):
        store.add_job(NewJob(id=job_id, course="cs101", assignment="tiny", fingerprint=tiny.fingerprint(),
                             student=student, submission_hash=jobs.submission_of(payload).hash, payload=payload))
        store.mark_sent(job_id)
    good_doc = jobs.failure_document(tiny, good_payload, "graded")

    class Backend:
        def poll(self, job_id):
            if job_id == "b" * 32:
                raise ValueError("garbage in celery-task-meta")
            return Poll("SUCCESS", document=good_doc)

    done: list[str] = []
    collector = runner.Dispatched(store, Backend(), done.append)  # type: ignore[arg-type]
    collector.collect_once()
    assert store.job("c" * 32).status == "done" and store.job("b" * 32).status == "queued"
    for _ in range(runner.POLL_ERRORS - 1):
        collector.collect_once()
    bad = store.job("b" * 32)
    assert bad.status == "failed" and "unreadable" in bad.message and done == ["c" * 32, "b" * 32]


def test_the_embedded_worker_survives_errors_outside_grading(serve, tokens, monkeypatch):
    broken = {"left": 3}
    real_claim = SQLiteStore.claim_next

    def flaky_claim(self):
        if broken["left"] > 0:
            broken["left"] -= 1
            raise RuntimeError("database is locked")
        return real_claim(self)

    monkeypatch.setattr(SQLiteStore, "claim_next", flaky_claim)
    client = serve()
    job_id = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-survivor").json()["job_id"]
    assert finished(client, tokens["cs101"], job_id)["result"]["score"] == 10
    assert broken["left"] == 0


def test_a_job_interrupted_three_times_is_failed_not_retried_forever(tmp_path, serve, tokens, tiny):
    from grader.service.store import MAX_ATTEMPTS

    store = SQLiteStore(tmp_path / "service.db")
    payload = _payload(tiny, "s-killer")
    row, _ = store.add_job(NewJob(id="d" * 32, course="cs101", assignment="tiny", fingerprint=tiny.fingerprint(),
                                  student="s-killer", submission_hash=jobs.submission_of(payload).hash,
                                  payload=payload))
    for attempt in range(MAX_ATTEMPTS):  # claimed, then the server died while grading it
        assert store.claim_next().id == row.id
        if attempt + 1 < MAX_ATTEMPTS:
            assert store.requeue_running() == (1, [])
    client = serve()
    job = finished(client, tokens["cs101"], row.id, timeout=10)
    assert job["status"] == "failed" and "interrupted 3 times" in job["message"]


def test_batch_jobs_with_other_options_are_other_jobs():
    from grader.grading import Options
    from grader.service.tasks import batch_salt

    salts = {batch_salt(Options()), batch_salt(Options(start_method="spawn")), batch_salt(Options(timeout=30.0))}
    assert len(salts) == 3


def test_two_api_processes_share_one_postgres_database(serve, tokens, postgres_url):
    """`mpgrade serve --database postgresql://...` twice: each job is claimed by one of the
    two embedded workers, graded once, and both APIs answer for every job."""
    from grader.service.store import PostgresStore

    first, second = serve(database=postgres_url), serve(database=postgres_url)
    assert isinstance(first.app.state.store, PostgresStore)
    ids = []
    for i in range(4):
        client = (first, second)[i % 2]
        response = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student=f"pg-{i}")
        assert response.status_code == 202, response.text
        ids.append(response.json()["job_id"])
    for i, job_id in enumerate(ids):
        job = finished((second, first)[i % 2], tokens["cs101"], job_id)  # asked of the other API
        assert job["status"] == "done" and job["result"]["score"] == 10, job
    store = first.app.state.store
    assert store.count_results() == 4
    assert all(store.job(job_id).attempts == 1 for job_id in ids)  # claimed once each
    listing = second.get("/v1/assignments/tiny/results", headers=bearer(tokens["cs101"])).json()["results"]
    assert sorted(r["student"] for r in listing) == [f"pg-{i}" for i in range(4)]

    again = submit(second, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="pg-0")
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["job_id"] == ids[0]


# --------------------------------------------------------------------------- issue 22


def _finished_job(store, tiny, student: str, callback_url: str | None = None) -> str:
    """A job already graded (a failure document will do), owed a callback to ``callback_url``."""
    payload = _payload(tiny, student)
    row, _ = store.add_job(NewJob(id=jobs.job_key(tiny, student, jobs.submission_of(payload).hash, salt="cs101"),
                                  course="cs101", assignment="tiny", fingerprint=tiny.fingerprint(),
                                  student=student, submission_hash=jobs.submission_of(payload).hash,
                                  payload=payload, callback_url=callback_url,
                                  callback_format="result" if callback_url else None))
    store.claim_next()
    assert store.finish(row.id, jobs.failure_document(tiny, payload, f"graded for {student}"))
    return row.id


def test_a_callback_to_loopback_or_a_private_address_is_refused_unless_allowed(serve, tokens):
    from grader.service import callbacks

    client = serve(callback_allow=())
    for url in ("http://127.0.0.1:6379/", "http://10.1.2.3/scores", "http://[::1]:8000/",
                "http://169.254.169.254/latest/meta-data/"):
        response = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-ssrf",
                          callback_url=url)
        assert response.status_code == 422, (url, response.text)
        assert "callback-allow" in response.json()["detail"]
    # allowed with the option (checked without sending anything to 10.x)
    private = callbacks.Egress(callbacks.networks(["10.0.0.0/8"]))
    assert callbacks.check_url("http://10.1.2.3/scores", private) is None
    assert callbacks.check_url("http://127.0.0.1:6379/", private) is not None

    with Receiver() as lms:
        allowed = serve(callback_allow=("127.0.0.1/32",), database=client.app.state.config.database)
        response = submit(allowed, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-allowed",
                          callback_url=lms.url + "/ok")
        assert response.status_code == 202, response.text
        wait_for(lambda: lms.received, 60, what="the allowed callback")


def test_a_callback_name_that_resolves_to_loopback_is_blocked_when_sent(serve, tokens, tiny):
    client = serve(callback_allow=())
    with Receiver() as lms:
        port = lms.url.rsplit(":", 1)[1]
        job_id = _finished_job(client.app.state.store, tiny, "s-localhost", f"http://localhost:{port}/x")
        client.app.state.dispatcher.on_done(job_id)
        status = wait_for(lambda: (s := client.app.state.store.job(job_id).callback_status) not in (None, "sending")
                          and s, 20, what="the callback status")
        assert status.startswith("blocked: ") and "loopback" in status, status
        assert lms.received == []


def test_a_tarpit_lms_does_not_delay_another_courses_callback(serve, tiny):
    """Eight callbacks to an LMS that accepts and never answers, then one to a healthy LMS:
    the healthy one arrives at once, not after the tarpit's attempts time out."""
    import time

    tarpit = _Stalling(drip=False)
    client = serve(callback_timeout=2.0, callback_attempts=1)
    store, on_done = client.app.state.store, client.app.state.dispatcher.on_done
    try:
        with Receiver() as lms:
            stuck = [_finished_job(store, tiny, f"s-tarpit-{i}", tarpit.url) for i in range(8)]
            healthy = _finished_job(store, tiny, "s-healthy", lms.url + "/healthy")
            for job_id in stuck:
                on_done(job_id)
            started = time.monotonic()
            on_done(healthy)
            wait_for(lambda: lms.received, 10, interval=0.02, what="the healthy callback")
            took = time.monotonic() - started
    finally:
        tarpit.close()
    assert took < 1.5, f"the healthy LMS waited {took:.1f} s behind the tarpit"  # 4 s before


def test_a_course_with_many_dead_lms_hosts_cannot_take_every_delivery_thread():
    """Course dead sends six callbacks, each to another tarpit (accepts, never answers), with
    four delivery threads in all; then course alive sends one to a healthy LMS. Per destination
    alone the six take all four threads for their whole deadline; with a per-course share the
    healthy one is sent while every tarpit delivery is still waiting, and none is lost."""
    import threading

    from grader.service import callbacks

    egress = callbacks.Egress(callbacks.networks(["127.0.0.0/8"]))
    pool = callbacks.Deliveries(per_destination=2, max_threads=4, per_course=2)
    tarpits = [_Stalling(drip=False) for _ in range(6)]
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def send(url: str, name: str):
        def work() -> None:
            status = callbacks.post(url, {"score": 1}, attempts=1, timeout=60.0, egress=egress)
            with lock:
                outcomes[name] = status
        return work

    try:
        with Receiver() as lms:
            for i, tarpit in enumerate(tarpits):
                pool.submit(tarpit.url, send(tarpit.url, f"dead-{i}"), course="dead")
            pool.submit(lms.url + "/alive", send(lms.url + "/alive", "alive"), course="alive")
            wait_for(lambda: lms.received, 30, interval=0.02, what="the healthy course's callback")
            with lock:
                assert [n for n in outcomes if n != "alive"] == [], outcomes  # the tarpits still hold theirs
            assert sum(len(t.conns) for t in tarpits) <= 2  # the dead course had its share, no more
    finally:
        for tarpit in tarpits:
            tarpit.close()
    wait_for(lambda: len(outcomes) == 7, 60, what="every delivery to end")
    assert all(outcomes[f"dead-{i}"].startswith("failed: ") for i in range(6)), outcomes
    assert outcomes["alive"] == "delivered: HTTP 200"
    pool.shutdown()


class _Uvicorn:
    """An ASGI app under the server configuration `mpgrade serve` uses, on a loopback socket."""

    def __init__(self, app, limits) -> None:
        import socket
        import threading

        import uvicorn

        from grader.service.serving import server_config

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(server_config(app, "127.0.0.1", self.port, limits, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.server.started, 10, interval=0.02, what="uvicorn")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def connect(self):
        import socket

        conn = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return conn


async def _hello(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _closed_within(conn, seconds: float) -> tuple[bool, bytes, float]:
    """Read until the server closes; (closed in time, what it sent, seconds it took)."""
    import time

    started, got = time.monotonic(), b""
    conn.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return True, got, time.monotonic() - started
        if not chunk:
            return True, got, time.monotonic() - started
        got += chunk
    return False, got, time.monotonic() - started


def test_a_client_that_never_finishes_its_headers_is_cut_off():
    import time

    from grader.service.serving import ClientLimits

    limits = ClientLimits(header_timeout=1.0, body_timeout=1.0, keep_alive=1.0)
    with _Uvicorn(_hello, limits) as server:
        never = server.connect()
        never.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        drip = server.connect()
        drip.sendall(b"GET / HTTP/1.1\r\n")
        for _ in range(3):  # a header byte now and then: bytes alone must not keep it open
            time.sleep(0.3)
            drip.sendall(b"X")
        closed, got, took = _closed_within(never, 5)
        assert closed and got.startswith(b"HTTP/1.1 408"), (closed, got, took)
        head, _, rest = got.partition(b"\r\n\r\n")
        assert f"Content-Length: {len(rest)}".encode() in head  # a well-formed answer
        assert took < 3
        assert _closed_within(drip, 3)[0]

        stalled = server.connect()  # headers done, body stops half-way
        stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 10)
        assert _closed_within(stalled, 4)[0]

        idle = server.connect()  # a finished request, then an idle kept-alive connection
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        closed, got, _ = _closed_within(idle, 4)
        assert closed and b"200 OK" in got and got.endswith(b"ok")
        for conn in (never, drip, stalled, idle):
            conn.close()


def test_ready_is_not_health_a_full_disk_is_503_on_ready_and_on_post(serve, tokens, monkeypatch):
    import sqlite3

    from grader.service import api

    client = serve()
    assert client.get("/v1/ready").json()["status"] == "ready"
    monkeypatch.setattr(api, "disk_free", lambda path: 5 * 1024 * 1024)
    ready = client.get("/v1/ready")
    assert ready.status_code == 503 and ready.headers["content-type"] == PROBLEM
    assert "disk" in ready.json()["checks"] and "full" in ready.json()["detail"]
    assert client.get("/v1/health").status_code == 200  # alive, just not ready
    response = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-full")
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM, response.text
    assert "is full" in response.json()["detail"] and response.headers["retry-after"]

    # the check passed, then the disk filled up under the write itself: still a 503, not a 500
    monkeypatch.setattr(api, "disk_free", lambda path: 10**12)

    def full(self, job):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SQLiteStore, "add_job", full)
    response = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-full-2")
    assert response.status_code == 503 and "disk is full" in response.json()["detail"], response.text


def test_ready_is_503_when_the_broker_is_down(serve, tokens):
    import socket

    with socket.socket() as s:  # a port nothing listens on: Redis is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = serve(broker=f"redis://127.0.0.1:{port}/0", sandbox=None)
    assert client.get("/v1/health").json()["status"] == "ok"
    ready = client.get("/v1/ready")
    assert ready.status_code == 503 and "broker" in ready.json()["checks"], ready.text
    # and a submission is a 503 with nothing left queued that no worker could get
    response = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-no-broker")
    assert response.status_code == 503 and "could not be queued" in response.json()["detail"], response.text
    assert client.app.state.store.unfinished() == []


def test_a_duplicate_delivery_carries_the_same_idempotency_key(tmp_path, serve, tiny, caplog):
    import logging

    store = SQLiteStore(tmp_path / "service.db")
    with Receiver(statuses=(503,)) as lms:
        job_id = _finished_job(store, tiny, "s-idem", lms.url + "/scores")
        client = serve()  # owes the callback: sends it (503, retried: same key, attempt 2)
        wait_for(lambda: store.job(job_id).callback_status == "delivered: HTTP 200", 30, what="the delivery")
        first, retried = lms.headers
        assert first["Idempotency-Key"] == retried["Idempotency-Key"] == f"{job_id}-1"
        assert (first["X-Mpgrade-Attempt"], retried["X-Mpgrade-Attempt"]) == ("1", "2")

        # the API dies mid-delivery: at the next start the callback goes again, with the same key
        store.set_callback_status(job_id, "sending")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mpgrade.service"):
            serve()
            wait_for(lambda: len(lms.headers) == 3, 30, what="the repeated delivery")
        assert lms.headers[2]["Idempotency-Key"] == f"{job_id}-1"
        assert "may have arrived" in caplog.text and "never attempted" not in caplog.text

        # a new outcome to deliver (the same files re-posted with a callback): a new key
        store.set_callback(job_id, lms.url + "/again", "result")
        client.app.state.dispatcher.on_done(job_id)
        wait_for(lambda: len(lms.headers) == 4, 30, what="the new delivery")
        assert lms.headers[3]["Idempotency-Key"] == f"{job_id}-2"


def test_a_callback_never_attempted_says_so_at_start(tmp_path, serve, tiny, caplog):
    import logging

    store = SQLiteStore(tmp_path / "service.db")
    with Receiver() as lms:
        job_id = _finished_job(store, tiny, "s-never", lms.url + "/scores")
        with caplog.at_level(logging.WARNING, logger="mpgrade.service"):
            serve()
            wait_for(lambda: lms.headers, 30, what="the owed delivery")
    assert "never attempted" in caplog.text and "may have arrived" not in caplog.text
    assert lms.headers[0]["Idempotency-Key"] == f"{job_id}-1"


class KilledSandbox(LocalSandbox):
    """A sandbox whose container is killed by the host every time (exit 137, no report)."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def run(self, job):
        from grader.sandbox.base import Outcome

        self.runs += 1
        return Outcome(exit_status=137, stdout=b"")


def test_a_killed_container_is_retried_then_not_gradable_never_a_0_to_the_lms(serve, tokens):
    box = KilledSandbox()
    client = serve(sandbox=box)
    with Receiver() as lms:
        job_id = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="lti-killed",
                        callback_url=lms.url + "/scores", callback_format="lti").json()["job_id"]
        job = finished(client, tokens["cs101"], job_id)
        status = wait_for(lambda: client.get(f"/v1/jobs/{job_id}", headers=bearer(tokens["cs101"])).json()
                          ["callback"]["status"] not in (None, "sending") and
                          client.get(f"/v1/jobs/{job_id}", headers=bearer(tokens["cs101"])).json()["callback"]["status"],
                          30, what="the callback status")
        assert status.startswith("withheld: "), status  # no Score, so no 0 for the LMS to record
        assert lms.received == []
        # the result format gets the document, saying it is no grade
        other = submit(client, tokens["cs101"], "tiny", {"add.py": WRONG.encode()}, student="s-killed-2",
                       callback_url=lms.url + "/results").json()["job_id"]
        finished(client, tokens["cs101"], other)
        _, _, sent = wait_for(lambda: lms.received and lms.received[0], 30, what="the callback")
    assert sent["gradable"] is False and sent["fault"] == "infrastructure"
    assert box.runs == 6  # each job retried a bounded number of times (3)
    assert job["gradable"] is False and job["fault"] == "infrastructure"
    doc = results.validate(job["result"])
    assert doc["gradable"] is False and doc["fault"] == "infrastructure" and "tried 3 times" in doc["message"]


def test_a_failure_of_ours_is_retried_automatically_and_the_lms_gets_only_the_grade(serve, tokens):
    client = serve(sandbox=FlakySandbox(failures=1))
    with Receiver() as lms:
        job_id = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-hiccup",
                        callback_url=lms.url + "/scores").json()["job_id"]
        job = finished(client, tokens["cs101"], job_id)
        wait_for(lambda: lms.received, 30, what="the callback")
    assert job["result"]["status"] == "graded" and job["result"]["score"] == 10 and job["gradable"] is True
    assert [r.body["score"] for r in lms.received] == [10]


@pytest.mark.parametrize("status, message, fault", [
    ("graded", "", None),
    ("timeout", "the submission ran past the limit", "student"),
    ("error", "the sandbox failed (RuntimeError: boom); grade it again", "infrastructure"),
    ("error", "the grader failed on this submission (KeyError: 'x'); grade it again", "infrastructure"),
    ("error", "no valid result came out of the sandbox (exit status 137): no frame", "infrastructure"),
    ("error", "no valid result came out of the sandbox: a forged report", "student"),
    ("error", "the sandbox ran out of memory (512 MiB) and the grader could not finish", "student"),
    ("error", "the archive holds a path outside it", "student"),
])
def test_whose_failure_a_result_is(status, message, fault):
    assert jobs.fault_of({"status": status, "message": message}) == fault


def test_a_celery_worker_retries_a_killed_container_then_answers_not_gradable(tiny):
    from grader.service.tasks import INFRA_ATTEMPTS, grade_with_retries

    box = KilledSandbox()
    doc = grade_with_retries(jobs.Grader({"tiny": tiny}, box), _payload(tiny, "s-worker-killed"),
                             where="w1@test", pause=0)
    assert box.runs == INFRA_ATTEMPTS == 3
    assert doc["gradable"] is False and doc["fault"] == "infrastructure" and "w1@test" in doc["message"]


def test_the_openapi_spec_types_every_response_and_lists_every_status(serve, tokens):
    import jsonschema

    client = serve()
    spec = client.get("/openapi.json").json()
    components = spec["components"]["schemas"]
    assert components["Result"]["properties"]["score"] == {"$ref": "#/components/schemas/Result_points"}

    def refs(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for target in refs(spec):  # every reference resolves
        assert target.startswith("#/components/schemas/") and target.rsplit("/", 1)[1] in components, target

    wanted = {
        ("/v1/assignments/{name}/submissions", "post"): {"200", "202", "400", "401", "403", "404", "405",
                                                         "413", "422", "500", "503"},
        ("/v1/jobs/{job_id}", "get"): {"200", "401", "404", "405", "422", "500"},
        ("/v1/assignments/{name}/results", "get"): {"200", "401", "403", "404", "405", "422", "500"},
        ("/v1/health", "get"): {"200", "405", "500"},
        ("/v1/ready", "get"): {"200", "405", "500", "503"},
    }
    for (path, method), codes in wanted.items():
        responses = spec["paths"][path][method]["responses"]
        assert codes <= set(responses), (path, method, codes - set(responses))
        for code, response in responses.items():
            (media, content), = response["content"].items()
            assert "$ref" in content["schema"], (path, code)
            assert media == ("application/json" if code.startswith("2") else PROBLEM), (path, code)

    # a real answer conforms to the spec's schema
    def conforms(instance, name):
        jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                         "components": spec["components"]}).validate(instance)

    job_id = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-spec").json()["job_id"]
    conforms(finished(client, tokens["cs101"], job_id), "Job")
    conforms(client.get("/v1/assignments/tiny/results", headers=bearer(tokens["cs101"])).json(), "Results")
    conforms(client.get("/v1/health").json(), "Health")
    wrong = client.put("/v1/health")
    assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM
    conforms(wrong.json(), "Problem")


def test_a_broken_multipart_body_is_400_problem_json(serve, tokens):
    client = serve()
    response = client.post("/v1/assignments/tiny/submissions", content=b"--x\r\nnot a part",
                           headers={**bearer(tokens["cs101"]), "Content-Type": "multipart/form-data"})
    assert response.status_code == 400 and response.headers["content-type"] == PROBLEM, response.text


def test_prometheus_metrics_count_queues_outcomes_waits_and_callbacks(serve, tokens):
    assert serve().get("/metrics").status_code == 404  # off unless asked for
    client = serve(metrics=True)
    with Receiver() as lms:
        job_id = submit(client, tokens["cs101"], "tiny", {"add.py": RIGHT.encode()}, student="s-metrics",
                        callback_url=lms.url + "/m").json()["job_id"]
        job = finished(client, tokens["cs101"], job_id)
        wait_for(lambda: lms.received, 30, what="the callback")
        job = wait_for(lambda: (j := client.get(f"/v1/jobs/{job_id}", headers=bearer(tokens["cs101"])).json())
                       ["timestamps"]["delivered"] and j, 10, what="the delivered time")
    stamps = job["timestamps"]
    assert stamps["received"] <= stamps["started"] <= stamps["graded"] <= stamps["delivered"]
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'mpgrade_jobs{course="cs101",status="done"} 1.0' in text
    assert 'mpgrade_outcomes_total{course="cs101",outcome="graded"} 1.0' in text
    assert 'mpgrade_wait_seconds_count{course="cs101"} 1.0' in text
    assert 'mpgrade_grade_seconds_count{course="cs101"} 1.0' in text
    assert 'mpgrade_callbacks_total{outcome="delivered"} 1.0' in text


def test_the_wait_of_a_broker_job_whose_start_the_collector_missed_is_still_observed(tmp_path, tiny):
    """With --broker a short grading can go from queued to done between two polls, so the job
    has no started_at in the store: the wait comes from the document's own start."""
    from grader.service.metrics import Metrics

    store = SQLiteStore(tmp_path / "service.db")
    payload = _payload(tiny, "s-quick")
    row, _ = store.add_job(NewJob(id="d" * 32, course="cs101", assignment="tiny", fingerprint=tiny.fingerprint(),
                                  student="s-quick", submission_hash=jobs.submission_of(payload).hash,
                                  payload=payload))
    assert store.finish(row.id, jobs.failure_document(tiny, payload, "graded elsewhere"))
    job = store.job(row.id)
    assert job.started_at is None
    metrics = Metrics(store)
    metrics.finished(job, store.result(row.id))
    text = metrics.render()[0].decode()
    assert 'mpgrade_wait_seconds_count{course="cs101"} 1.0' in text
    assert 'mpgrade_grade_seconds_count{course="cs101"} 1.0' in text


def test_the_class_report_is_served_per_course_behind_its_token(serve, tokens):
    client = serve()
    for student, code in (("s1", RIGHT), ("s2", WRONG)):
        response = submit(client, tokens["cs202"], "tiny", {"add.py": code.encode()}, student=student)
        finished(client, tokens["cs202"], response.json()["job_id"])
    headers = bearer(tokens["cs202"])
    index = client.get("/v1/assignments/tiny/report/index.html", headers=headers)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in index.headers["content-security-policy"]
    assert index.headers["x-content-type-options"] == "nosniff"
    students = client.get("/v1/assignments/tiny/report/students.html", headers=headers).text
    assert "s1" in students and "s2" in students
    page = re.search(r'href="(students/[^"]+\.html)"', students).group(1)
    assert client.get(f"/v1/assignments/tiny/report/{page}", headers=headers).status_code == 200
    # a newer result of a student replaces the older one in the report
    response = submit(client, tokens["cs202"], "tiny", {"add.py": (RIGHT + "# v2\n").encode()}, student="s2")
    finished(client, tokens["cs202"], response.json()["job_id"])
    students = client.get("/v1/assignments/tiny/report/students.html", headers=headers).text
    pages = set(re.findall(r'href="(students/[^"]+\.html)"', students))
    scores = [re.search(r'id="score">([^<]+)<', client.get(f"/v1/assignments/tiny/report/{p}",
                                                          headers=headers).text).group(1) for p in pages]
    assert sorted(scores) == ["10 / 10", "10 / 10"]
    # another course has no results here; no token is a 401; not a page of the report is a 404
    assert client.get("/v1/assignments/tiny/report/index.html", headers=bearer(tokens["cs101"])).status_code == 404
    assert client.get("/v1/assignments/tiny/report/index.html").status_code == 401
    assert client.get("/v1/assignments/multiprocessing-basics/report/index.html",
                      headers=headers).status_code == 403
