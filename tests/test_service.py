"""`mpgrade serve` as an LMS uses it: push a submission, get a job id, read the result.

These tests run the API with its embedded worker and the LOCAL sandbox (trusted code only),
in-process through FastAPI's TestClient; the Celery path is in test_worker.py.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from grader import assignment as assignment_mod
from grader import results
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
            database=tmp_path / "service.db", sandbox=LocalSandbox(), callback_backoff=0.1,
            **overrides)
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
