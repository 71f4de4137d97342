"""The `Store` protocol, the same tests against both stores: SQLite (one machine) and
PostgreSQL (several API processes). The PostgreSQL ones run on a throwaway server of their
own (conftest.postgres_server): skipped without PostgreSQL binaries, never under CI=true.
"""

from __future__ import annotations

import threading

import pytest

from grader import assignment as assignment_mod
from grader.protocol import results
from grader.service import jobs
from grader.service.api import build_submission
from grader.service.store import (
    MAX_ATTEMPTS,
    NewJob,
    PostgresStore,
    SQLiteStore,
    open_store,
    redacted,
    scrubbed,
)

from .service_helpers import RIGHT, WRONG, make_tiny_course


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> assignment_mod.Assignment:
    return assignment_mod.load(make_tiny_course(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path) -> str:
    """Where a store lives: a SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "service.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def opened(database):
    """``opened()`` -> a new store on the same database (another connection, as another API
    process would have); every one is closed at the end."""
    stores: list = []

    def make():
        store = open_store(database)
        stores.append(store)
        return store

    yield make
    for store in stores:
        if isinstance(store, PostgresStore):
            store.close()


@pytest.fixture
def store(opened):
    return opened()


def new_job(tiny, student: str, source: str = RIGHT, course: str = "cs101", **extra) -> NewJob:
    sub = build_submission(tiny, [("add.py", source.encode())], student, course)
    return NewJob(id=jobs.job_key(tiny, student, sub.hash, salt=course), course=course, assignment="tiny",
                  fingerprint=tiny.fingerprint(), student=student, submission_hash=sub.hash,
                  payload=jobs.to_payload(tiny, sub, jobs.grading.Options()), **extra)


def document(tiny, job: NewJob, message: str = "graded") -> dict:
    return jobs.failure_document(tiny, job.payload, message)


def test_open_store_picks_the_store_from_the_database(database):
    store = open_store(database)
    expected = PostgresStore if database.startswith("postgresql://") else SQLiteStore
    assert type(store) is expected
    if isinstance(store, PostgresStore):
        store.close()


def test_the_same_files_twice_are_one_job(store, tiny):
    job = new_job(tiny, "s1", callback_url="http://127.0.0.1:9/done", callback_format="result")
    row, created = store.add_job(job)
    assert created and row.id == job.id and row.status == "queued" and row.attempts == 0
    assert row.payload == job.payload and row.callback_url == "http://127.0.0.1:9/done"
    again, created = store.add_job(job)
    assert not created and again == row
    # another id for the same (course, assignment, tests, student, files): still that job
    other_id, created = store.add_job(NewJob(**{**job.__dict__, "id": "f" * 32}))
    assert not created and other_id.id == job.id
    assert store.job("f" * 32) is None and store.job(job.id) == row
    # the same files from another student or course are other jobs
    assert store.add_job(new_job(tiny, "s2"))[1] and store.add_job(new_job(tiny, "s1", course="cs202"))[1]
    assert len(store.unfinished()) == 3


def test_two_processes_never_claim_the_same_job(opened, tiny):
    first, second = opened(), opened()
    ids = {first.add_job(new_job(tiny, f"s{i}"))[0].id for i in range(12)}
    claimed: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def claim(store):
        try:
            while (job := store.claim_next()) is not None:
                assert job.status == "running" and job.attempts == 1 and job.started_at
                with lock:
                    claimed.append(job.id)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(s,)) for s in (first, second) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert sorted(claimed) == sorted(ids)  # each job exactly once
    assert first.claim_next() is None and second.claim_next() is None


def test_claim_next_takes_the_oldest_queued_job(store, tiny):
    older, newer = new_job(tiny, "s-old"), new_job(tiny, "s-new")
    store.add_job(older)
    store.add_job(newer)
    assert store.claim_next().id == older.id
    assert store.claim_next().id == newer.id
    assert store.claim_next() is None


def test_a_job_finished_twice_has_one_result_the_first(opened, tiny):
    store, other = opened(), opened()
    job = new_job(tiny, "s1")
    store.add_job(job)
    store.claim_next()
    first = document(tiny, job, "the first grading")
    assert store.finish(job.id, first) is True
    assert other.finish(job.id, document(tiny, job, "a redelivered grading")) is False
    assert store.count_results() == 1 and store.count_results(job.id) == 1
    assert store.result(job.id) == first
    row = other.job(job.id)
    assert row.status == "done" and row.message == "the first grading" and row.finished_at
    store.fail(job.id, "too late")  # a finished job keeps its result
    assert store.job(job.id).status == "done"
    with pytest.raises(KeyError):
        store.finish("0" * 32, first)
    with pytest.raises(results.InvalidResult):  # only documents that pass the schema are stored
        store.finish(job.id, {"score": 1})


def test_finishing_concurrently_stores_one_result(opened, tiny):
    stores = [opened(), opened()]
    job = new_job(tiny, "s-race")
    stores[0].add_job(job)
    outcomes: list[bool] = []
    barrier = threading.Barrier(4, timeout=30)

    def finish(store, i):
        barrier.wait()
        outcomes.append(store.finish(job.id, document(tiny, job, f"grading {i}")))

    threads = [threading.Thread(target=finish, args=(stores[i % 2], i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == [False, False, False, True]
    assert stores[1].count_results(job.id) == 1


def test_results_are_listed_per_course_and_assignment(store, tiny):
    for course, student in (("cs101", "a"), ("cs101", "b"), ("cs202", "c"), ("cs101", "d")):
        job = new_job(tiny, student, course=course)
        store.add_job(job)
        assert store.finish(job.id, document(tiny, job))
    rows = store.results("cs101", "tiny", 100, 0)
    assert [r["student"] for r in rows] == ["a", "b", "d"]
    assert set(rows[0]) == {"job_id", "student", "score", "max_score", "status", "created_at"}
    assert rows[0]["score"] == 0 and rows[0]["max_score"] == 10 and rows[0]["status"] == "error"
    assert [r["student"] for r in store.results("cs101", "tiny", 2, 1)] == ["b", "d"]
    assert [r["student"] for r in store.results("cs202", "tiny", 100, 0)] == ["c"]
    assert store.results("cs101", "other", 100, 0) == [] and store.results("cs999", "tiny", 100, 0) == []


def test_requeue_running_counts_attempts_and_fails_a_job_that_keeps_killing_the_server(store, tiny):
    killer, innocent = new_job(tiny, "s-killer"), new_job(tiny, "s-innocent")
    store.add_job(killer)
    for attempt in range(1, MAX_ATTEMPTS + 1):  # claimed, then the server died while grading it
        job = store.claim_next()
        assert job.id == killer.id and job.attempts == attempt
        if attempt < MAX_ATTEMPTS:
            assert store.requeue_running() == (1, [])
            assert store.job(killer.id).status == "queued"
    store.add_job(innocent)
    assert store.claim_next().id == innocent.id
    assert store.requeue_running() == (1, [killer.id])
    dead = store.job(killer.id)
    assert dead.status == "failed" and f"interrupted {MAX_ATTEMPTS} times" in dead.message
    assert store.job(innocent.id).status == "queued" and store.job(innocent.id).attempts == 1
    assert store.requeue_running() == (0, [])


def test_callbacks_are_remembered_until_delivered(store, tiny):
    job = new_job(tiny, "s-cb", callback_url="http://127.0.0.1:9/a", callback_format="result")
    quiet = new_job(tiny, "s-quiet")
    store.add_job(job)
    store.add_job(quiet)
    assert store.undelivered() == []  # not finished yet
    store.finish(job.id, document(tiny, job))
    store.fail(quiet.id, "no callback: never owed")
    assert store.undelivered() == [job.id]
    store.set_callback_status(job.id, "delivered: HTTP 200" + "!" * 500)
    assert store.job(job.id).callback_status == ("delivered: HTTP 200" + "!" * 500)[:300]  # capped
    assert store.undelivered() == []

    # a repeated submission's callback replaces the old one and is owed a delivery
    row = store.set_callback(job.id, "http://127.0.0.1:9/b", "lti")
    assert row.callback_url == "http://127.0.0.1:9/b" and row.callback_format == "lti"
    assert row.callback_status is None and store.undelivered() == [job.id]
    assert store.set_callback("0" * 32, "http://127.0.0.1:9/c", "result") is None


def test_retry_queues_a_finished_job_again_without_its_result(store, tiny):
    job = new_job(tiny, "s-retry", callback_url="http://127.0.0.1:9/a", callback_format="lti")
    store.add_job(job)
    assert store.retry(job.id, None, None) is None  # queued: nothing to retry
    store.claim_next()
    store.mark_sent(job.id)
    store.finish(job.id, document(tiny, job))
    store.set_callback_status(job.id, "delivered: HTTP 200")
    row = store.retry(job.id, None, None)
    assert row.status == "queued" and row.attempts == 0 and row.sent_at is None
    assert row.started_at is None and row.finished_at is None and row.message is None
    assert row.callback_url == "http://127.0.0.1:9/a" and row.callback_format == "lti"  # kept
    assert row.callback_status is None and store.result(job.id) is None and store.count_results() == 0
    store.fail(job.id, "failed this time")
    row = store.retry(job.id, "http://127.0.0.1:9/new", "result")
    assert row.callback_url == "http://127.0.0.1:9/new" and row.callback_format == "result"


def test_sent_unsent_running_and_deleted_jobs(store, tiny):
    sent, unsent, started = new_job(tiny, "s-sent"), new_job(tiny, "s-unsent"), new_job(tiny, "s-started")
    for job in (sent, unsent, started):
        store.add_job(job)
    store.mark_sent(sent.id)
    store.mark_sent(started.id)
    assert [j.id for j in store.unsent()] == [unsent.id]
    store.mark_running(started.id)
    states = {s.id: s for s in store.unfinished_states()}
    assert set(states) == {sent.id, unsent.id, started.id}
    assert states[started.id].status == "running" and states[sent.id].sent_at and states[unsent.id].sent_at is None
    assert store.job(started.id).attempts == 0  # running on a Celery worker: not an embedded attempt

    store.delete_job(started.id)  # only a queued job (one the broker never got) is deleted
    store.delete_job(unsent.id)
    assert store.job(started.id) is not None and store.job(unsent.id) is None
    store.fail(sent.id, "x" * 5000)
    assert len(store.job(sent.id).message) == 1000
    assert [j.id for j in store.unfinished()] == [started.id]


def test_a_grader_message_with_a_nul_character_is_stored(store, tiny):
    job = new_job(tiny, "s-nul", source=WRONG)
    store.add_job(job)
    store.fail(job.id, "stderr: \x00 binary junk")
    assert store.job(job.id).status == "failed" and "binary junk" in store.job(job.id).message


# --------------------------------------------------------------------------- PostgreSQL only


def test_several_processes_create_the_schema_at_once(postgres_url):
    stores: list = []
    errors: list[BaseException] = []

    def create():
        try:
            stores.append(PostgresStore(postgres_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(stores) == 4, errors
    for store in stores:
        store.close()


def test_a_postgres_password_is_never_shown():
    url = "postgresql://grader:s%40cret@db.example:5433/mpgrade?sslmode=require"
    assert redacted(url) == "postgresql://grader:**@db.example:5433/mpgrade"
    assert redacted("postgresql://grader@db.example/mpgrade") == "postgresql://grader@db.example/mpgrade"
    assert redacted("/var/lib/mpgrade/service.db") == "/var/lib/mpgrade/service.db"
    message = f'invalid token "s%40cret" ("s@cret") in {url}'
    shown = scrubbed(message, url)
    assert "cret" not in shown and "postgresql://grader:**@db.example:5433/mpgrade" in shown
    assert "hunter2" not in scrubbed("hunter2 rejected", "postgresql://db.example/x?password=hunter2")


def test_a_postgres_store_does_not_show_its_password(postgres_url):
    # the test server trusts every local connection: a password in the URL is accepted, unused
    url = postgres_url.replace("postgres@", "postgres:hunter2@")
    store = PostgresStore(url)
    try:
        assert "hunter2" not in repr(store)
    finally:
        store.close()


def test_a_burst_of_one_course_does_not_starve_another(store, tiny):
    burst = [store.add_job(new_job(tiny, f"a-{i}", course="big"))[0] for i in range(5)]
    late = store.add_job(new_job(tiny, "b-0", course="small"))[0]  # queued after the whole burst
    first = store.claim_next()
    assert first.id == burst[0].id
    assert store.claim_next().id == late.id  # fewer running, not the burst's next
    assert store.finish(first.id, document(tiny, new_job(tiny, "a-0", course="big")))
    assert store.claim_next().id == burst[1].id


def test_a_newer_submission_replaces_the_same_students_queued_one(store, tiny):
    older = store.add_job(new_job(tiny, "s-resubmit", RIGHT, callback_url="http://lms.example/x",
                                  callback_format="result"))[0]
    other = store.add_job(new_job(tiny, "s-other"))[0]
    newer = store.add_job(new_job(tiny, "s-resubmit", WRONG))[0]
    assert store.supersede_queued(newer) == [older.id]
    gone = store.job(older.id)
    assert gone.status == "failed" and "superseded" in gone.message and newer.id in gone.message
    assert older.id not in store.undelivered()  # its callback is not owed
    assert store.job(other.id).status == "queued"
    assert {store.claim_next().id, store.claim_next().id} == {other.id, newer.id}
    assert store.claim_next() is None
    # a running job is never superseded
    assert store.supersede_queued(store.add_job(new_job(tiny, "s-resubmit", RIGHT + "\n"))[0]) == []


def test_queue_position_and_counts(store, tiny):
    ids = [store.add_job(new_job(tiny, f"q-{i}"))[0].id for i in range(3)]
    assert [store.queue_position(i) for i in ids] == [(1, None), (2, None), (3, None)]
    job = store.claim_next()
    assert store.finish(job.id, document(tiny, new_job(tiny, "q-0")))
    position, estimate = store.queue_position(ids[2])
    assert position == 2 and estimate is not None and estimate > 0
    assert store.queue_position(ids[0]) is None
    assert ("cs101", "queued", 2) in store.counts() and ("cs101", "done", 1) in store.counts()


def test_jobs_are_sent_to_the_broker_by_fair_share_not_in_arrival_order(store, tiny):
    """With --broker the API hands the broker the next job by the same fair share: a burst of
    one course that came first is interleaved with a later course, sent or graded counts as
    busy, and a job the broker refused goes back to be sent again."""
    burst = [store.add_job(new_job(tiny, f"a-{i}", course="big"))[0] for i in range(4)]
    late = [store.add_job(new_job(tiny, f"b-{i}", course="small"))[0] for i in range(2)]
    order = [store.claim_send().id for _ in range(4)]
    assert order == [burst[0].id, late[0].id, burst[1].id, late[1].id]
    assert sorted(store.waiting_sent()) == sorted(order)
    assert store.job(order[0]).sent_at and store.job(order[0]).status == "queued"
    nxt = store.claim_send()
    assert nxt.id == burst[2].id
    store.unsend(nxt.id)  # the broker refused it: it is the next to send again
    assert store.job(nxt.id).sent_at is None and store.claim_send().id == burst[2].id
    assert store.claim_send().id == burst[3].id and store.claim_send() is None


def test_two_processes_never_send_the_same_job(opened, tiny):
    first, second = opened(), opened()
    ids = {first.add_job(new_job(tiny, f"s{i}", course=f"c{i % 3}"))[0].id for i in range(12)}
    sent: list[str] = []
    lock = threading.Lock()

    def claim(store):
        while (job := store.claim_send()) is not None:
            with lock:
                sent.append(job.id)

    threads = [threading.Thread(target=claim, args=(s,)) for s in (first, second) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert sorted(sent) == sorted(ids)  # each job sent exactly once
