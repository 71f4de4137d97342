"""Where jobs and results live: SQLite by default, behind a small interface.

Every job is a row keyed by its id (derived from course, assignment, tests, student and the
submission hash, see ``jobs.job_key``), with a UNIQUE key on those columns too, so the same
upload twice is one job. A result is a row of its own keyed by the job id and inserted with
``INSERT OR IGNORE``: a job graded twice (a redelivered Celery message, a restart) still has
exactly one result, the first. Documents are stored as the JSON text that passed
``grader.protocol.results.validate``; nothing here is ever unpickled.

The :class:`Store` protocol is what the API, the embedded worker and the collector use;
:class:`PostgresStore` implements the same methods for several API processes sharing one
database (``mpgrade serve --database postgresql://...``), see :func:`open_store`. Both are a
:class:`SQLStore`, which holds every statement once; each backend adds only its connection,
placeholders, write transaction, upsert and the locking of ``claim_next``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grader.protocol import results

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINAL = (DONE, FAILED)
MAX_ATTEMPTS = 3  # a job that was running when the server died this often is failed, not retried

_TABLES = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    course          TEXT NOT NULL,
    assignment      TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    student         TEXT NOT NULL,
    submission_hash TEXT NOT NULL,
    status          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    message         TEXT,
    callback_url    TEXT,
    callback_format TEXT,
    callback_status TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    sent_at         TEXT,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    deliveries      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (course, assignment, fingerprint, student, submission_hash)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS results (
    job_id      TEXT PRIMARY KEY REFERENCES jobs (id),
    course      TEXT NOT NULL,
    assignment  TEXT NOT NULL,
    student     TEXT NOT NULL,
    score       {real} NOT NULL,
    max_score   {real} NOT NULL,
    status      TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_assignment ON results (course, assignment, created_at);
"""
# one set of tables for both databases: only the name of a double-precision column differs
SCHEMA = _TABLES.format(real="REAL")
# columns added after the first release: a database made by an older version gets them on open
ADDED_COLUMNS = (("deliveries", "INTEGER NOT NULL DEFAULT 0"), ("delivered_at", "TEXT"))
SUPERSEDED = "superseded by a newer submission of the same student (job {new}) before it was graded"
RECENT = 600.0  # seconds of finished jobs the queue estimate's throughput is measured over
SENDING = "sending"  # callback_status while a delivery is under way (interrupted if seen at start)
PG_SCHEMA = _TABLES.format(real="DOUBLE PRECISION")
INTERRUPTED = (f"grading was interrupted {MAX_ATTEMPTS} times (the server stopped or crashed while"
               " grading it); not retried again")


@dataclass(frozen=True)
class JobRow:
    id: str
    course: str
    assignment: str
    student: str
    submission_hash: str
    status: str
    payload: dict[str, Any]
    message: str | None
    callback_url: str | None
    callback_format: str | None
    callback_status: str | None
    attempts: int
    sent_at: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    deliveries: int = 0  # callback deliveries begun; with the id, the Idempotency-Key
    delivered_at: str | None = None  # when the last callback was delivered (2xx)


@dataclass(frozen=True)
class JobState:
    """What the collector polls for: no payload (it can be megabytes of base64 per job)."""

    id: str
    status: str
    sent_at: str | None


@dataclass(frozen=True)
class NewJob:
    id: str
    course: str
    assignment: str
    fingerprint: str
    student: str
    submission_hash: str
    payload: dict[str, Any]
    callback_url: str | None = None
    callback_format: str | None = None


class Store(Protocol):
    """What the service needs from persistence: :class:`SQLiteStore` or :class:`PostgresStore`."""

    def add_job(self, job: NewJob) -> tuple[JobRow, bool]: ...
    def job(self, job_id: str) -> JobRow | None: ...
    def claim_next(self) -> JobRow | None: ...
    def claim_send(self) -> JobRow | None: ...
    def unsend(self, job_id: str) -> None: ...
    def waiting_sent(self) -> list[str]: ...
    def mark_running(self, job_id: str) -> None: ...
    def requeue_running(self) -> tuple[int, list[str]]: ...
    def unfinished(self) -> list[JobRow]: ...
    def unfinished_states(self) -> list[JobState]: ...
    def retry(self, job_id: str, callback_url: str | None, callback_format: str | None) -> JobRow | None: ...
    def set_callback(self, job_id: str, url: str, fmt: str) -> JobRow | None: ...
    def undelivered(self) -> list[str]: ...
    def mark_sent(self, job_id: str) -> None: ...
    def unsent(self) -> list[JobRow]: ...
    def finish(self, job_id: str, document: dict[str, Any]) -> bool: ...
    def fail(self, job_id: str, message: str) -> None: ...
    def requeue(self, job_id: str, message: str) -> None: ...
    def delete_job(self, job_id: str) -> None: ...
    def result(self, job_id: str) -> dict[str, Any] | None: ...
    def results(self, course: str, assignment: str, limit: int, offset: int) -> list[dict[str, Any]]: ...
    def count_results(self, job_id: str | None = None) -> int: ...
    def set_callback_status(self, job_id: str, status: str) -> None: ...
    def begin_delivery(self, job_id: str) -> tuple[int, bool]: ...
    def supersede_queued(self, newer: JobRow) -> list[str]: ...
    def queue_position(self, job_id: str) -> tuple[int, float | None] | None: ...
    def counts(self) -> list[tuple[str, str, int]]: ...
    def writable(self) -> None: ...


class SQLStore(ABC):
    """The store's SQL, once, for both databases; a backend supplies only what truly differs.

    Statements are written with ``?`` placeholders (:meth:`_sql` turns them into the backend's),
    read rows by column name and run in :meth:`_transaction` where several must happen
    together. What each backend provides: a connection (:meth:`_connect`), a write transaction
    (:meth:`_transaction`), how an insert that would break a unique key is skipped
    (:meth:`_insert_ignoring`), the row lock a read-then-update takes (``LOCK_ROWS``), what
    text a column can hold (:meth:`_text`) and how a job is claimed by one caller only
    (:meth:`_claim`, for :meth:`claim_next` and :meth:`claim_send`; their locking differs the most).
    """

    LOCK_ROWS = ""  # appended to a SELECT whose rows the same transaction then changes

    @abstractmethod
    def _connect(self) -> AbstractContextManager[Any]:
        """A connection (in autocommit) for one operation."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A connection inside a write transaction: committed at the end, rolled back on an error."""

    @abstractmethod
    def _insert_ignoring(self, insert: str, key: str = "") -> str:
        """``insert`` (an ``INSERT INTO ... VALUES ...``) doing nothing where it would break the
        unique ``key`` (any unique key when empty), so the cursor's rowcount says if it inserted."""

    @abstractmethod
    def _claim(self, pick: str, pick_params: Sequence[Any], update: str, update_params: Sequence[Any],
               guard: str, guard_params: Sequence[Any]) -> JobRow | None:
        """The job ``pick`` (a SELECT of one ``j.id``) names, changed by ``update`` (an ``UPDATE
        jobs SET ...``) if it still matches ``guard``, by this caller only: the backends'
        locking differs the most here."""

    def claim_next(self) -> JobRow | None:
        """The next queued job (fair share between courses, then the oldest), now marked
        running, claimed by this caller only (the embedded worker)."""
        return self._claim(_fair_pick(_RUNNING_BUSY, "started_at", _QUEUED_ANY), (RUNNING, _day_ago(), QUEUED),
                           _CLAIM, (RUNNING, results.now()), "status = ?", (QUEUED,))

    def claim_send(self) -> JobRow | None:
        """The next queued job not yet handed to the broker, by the same fair share, now marked
        sent (``sent_at``) by this caller only: with ``--broker`` the API sends jobs from this
        queue only as workers take the ones already sent, so the broker's own order (first in,
        first out) never decides who waits. A course counts as busy with the jobs it has sent
        or running; the round robin is over when each course last had a job sent."""
        return self._claim(_fair_pick(_SENT_BUSY, "sent_at", _UNSENT), (RUNNING, QUEUED, _day_ago(), QUEUED),
                           "UPDATE jobs SET sent_at = ?", (results.now(),),
                           "status = ? AND sent_at IS NULL", (QUEUED,))

    def unsend(self, job_id: str) -> None:
        """A job the broker did not take after :meth:`claim_send`: back in the queue to send."""
        with self._connect() as db:
            self._execute(db, "UPDATE jobs SET sent_at = NULL WHERE id = ? AND status = ?", (job_id, QUEUED))

    def waiting_sent(self) -> list[str]:
        """Queued jobs already handed to the broker (whether a worker took them yet is the
        broker's to say: its queued markers)."""
        with self._connect() as db:
            rows = self._execute(db, "SELECT id FROM jobs WHERE status = ? AND sent_at IS NOT NULL"
                                 " ORDER BY sent_at", (QUEUED,)).fetchall()
        return [r["id"] for r in rows]

    def _sql(self, sql: str) -> str:
        """``sql`` with this backend's placeholders (SQLite takes the ``?`` as written)."""
        return sql

    def _text(self, value: str) -> str:
        """``value`` as a TEXT column can hold it."""
        return value

    def _execute(self, db: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return db.execute(self._sql(sql), params)

    @staticmethod
    def _row(row: Any) -> JobRow | None:
        if row is None:
            return None
        data = dict(row)
        data.pop("fingerprint", None)
        data["payload"] = json.loads(data["payload"])
        return JobRow(**data)

    def _job(self, db: Any, job_id: str) -> JobRow | None:
        return self._row(self._execute(db, "SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def _jobs(self, where: str, params: Sequence[Any]) -> list[JobRow]:
        with self._connect() as db:
            rows = self._execute(db, f"SELECT * FROM jobs WHERE {where} ORDER BY created_at", params).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def add_job(self, job: NewJob) -> tuple[JobRow, bool]:
        """Insert a queued job; the existing one (and False) if these files are already a job."""
        insert = self._insert_ignoring(
            "INSERT INTO jobs (id, course, assignment, fingerprint, student, submission_hash,"
            " status, payload, callback_url, callback_format, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        with self._connect() as db:
            cur = self._execute(db, insert, (
                job.id, job.course, job.assignment, job.fingerprint, job.student, job.submission_hash,
                QUEUED, json.dumps(job.payload), job.callback_url, job.callback_format, results.now()))
            created = cur.rowcount == 1
            row = self._execute(db, "SELECT * FROM jobs WHERE id = ? OR (course = ? AND assignment = ? AND"
                                " fingerprint = ? AND student = ? AND submission_hash = ?) LIMIT 1",
                                (job.id, job.course, job.assignment, job.fingerprint, job.student,
                                 job.submission_hash)).fetchone()
        return self._row(row), created  # type: ignore[return-value]

    def job(self, job_id: str) -> JobRow | None:
        with self._connect() as db:
            return self._job(db, job_id)

    def mark_running(self, job_id: str) -> None:
        with self._connect() as db:
            self._execute(db, "UPDATE jobs SET status = ?, started_at = COALESCE(started_at, ?)"
                          " WHERE id = ? AND status = ?", (RUNNING, results.now(), job_id, QUEUED))

    def requeue_running(self) -> tuple[int, list[str]]:
        """After a restart of the embedded worker: jobs it was grading go back to the queue,
        except those already started ``MAX_ATTEMPTS`` times (they may be what kills the server):
        those fail. Returns (how many were queued again, the ids of the failed ones).

        Every running job in the database: with several API processes on one PostgreSQL
        database grading (embedded workers), one restarting queues the others' jobs again
        (graded twice, still one result); use --broker workers for several API processes."""
        with self._transaction() as db:
            doomed = [r["id"] for r in self._execute(
                db, f"SELECT id FROM jobs WHERE status = ? AND attempts >= ? ORDER BY id{self.LOCK_ROWS}",
                (RUNNING, MAX_ATTEMPTS)).fetchall()]
            for job_id in doomed:
                self._execute(db, "UPDATE jobs SET status = ?, finished_at = ?, message = ? WHERE id = ?",
                              (FAILED, results.now(), INTERRUPTED, job_id))
            requeued = self._execute(db, "UPDATE jobs SET status = ? WHERE status = ?", (QUEUED, RUNNING)).rowcount
        return requeued, doomed

    def unfinished(self) -> list[JobRow]:
        return self._jobs("status NOT IN (?, ?)", FINAL)

    def unfinished_states(self) -> list[JobState]:
        with self._connect() as db:
            rows = self._execute(db, "SELECT id, status, sent_at FROM jobs WHERE status NOT IN (?, ?)"
                                 " ORDER BY created_at", FINAL).fetchall()
        return [JobState(r["id"], r["status"], r["sent_at"]) for r in rows]

    def retry(self, job_id: str, callback_url: str | None, callback_format: str | None) -> JobRow | None:
        """A finished job queued again as a new attempt (its result, if any, is dropped); the
        new callback, when given, replaces the old one. None if the job is not finished."""
        with self._transaction() as db:
            cur = self._execute(
                db, "UPDATE jobs SET status = ?, message = NULL, started_at = NULL, finished_at = NULL,"
                " sent_at = NULL, attempts = 0, callback_status = NULL,"
                " callback_url = COALESCE(?, callback_url), callback_format = COALESCE(?, callback_format)"
                " WHERE id = ? AND status IN (?, ?)",
                (QUEUED, callback_url, callback_format if callback_url else None, job_id, *FINAL))
            if cur.rowcount != 1:
                return None
            self._execute(db, "DELETE FROM results WHERE job_id = ?", (job_id,))
            return self._job(db, job_id)

    def set_callback(self, job_id: str, url: str, fmt: str) -> JobRow | None:
        """A repeated submission's callback replaces the job's (and is owed a delivery)."""
        with self._connect() as db:
            self._execute(db, "UPDATE jobs SET callback_url = ?, callback_format = ?, callback_status = NULL"
                          " WHERE id = ?", (url, fmt, job_id))
            return self._job(db, job_id)

    def undelivered(self) -> list[str]:
        """Finished jobs whose callback was never attempted, or was being sent when the server
        stopped (``callback_status`` is ``sending``: it may have arrived, or not)."""
        with self._connect() as db:
            rows = self._execute(db, "SELECT id FROM jobs WHERE status IN (?, ?) AND callback_url IS NOT NULL"
                                 " AND (callback_status IS NULL OR callback_status = ?) ORDER BY finished_at",
                                 (*FINAL, SENDING)).fetchall()
        return [r["id"] for r in rows]

    def begin_delivery(self, job_id: str) -> tuple[int, bool]:
        """Mark the job's callback as being sent; (its delivery number, whether it is a new one).

        A delivery owed afresh (status NULL: a new outcome, or a repeat's new callback) gets
        the next number; one found ``sending`` (interrupted by a stop) keeps its number, so
        sending it again carries the same Idempotency-Key and the receiver can drop it."""
        with self._transaction() as db:
            row = self._execute(db, f"SELECT callback_status, deliveries FROM jobs WHERE id = ?{self.LOCK_ROWS}",
                                (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            fresh = row["callback_status"] != SENDING or not row["deliveries"]
            number = row["deliveries"] + 1 if fresh else row["deliveries"]
            self._execute(db, "UPDATE jobs SET callback_status = ?, deliveries = ? WHERE id = ?",
                          (SENDING, number, job_id))
        return number, fresh

    def writable(self) -> None:
        """Raise unless a write transaction can be made now (readiness: a full disk, a locked
        or read-only database, a database server that is down)."""
        with self._transaction() as db:
            self._execute(db, "UPDATE jobs SET id = id WHERE id = ?", ("-",))

    def mark_sent(self, job_id: str) -> None:
        """The broker has the job (broker mode): a restart must not send it again."""
        with self._connect() as db:
            self._execute(db, "UPDATE jobs SET sent_at = ? WHERE id = ?", (results.now(), job_id))

    def unsent(self) -> list[JobRow]:
        """Queued jobs the broker never got (the API stopped between storing and sending)."""
        return self._jobs("status = ? AND sent_at IS NULL", (QUEUED,))

    def finish(self, job_id: str, document: dict[str, Any]) -> bool:
        """Store the job's result; False (and nothing written) if it already has one.

        No row lock on the job: two finishers holding one would deadlock on the UPDATE (in
        PostgreSQL); the result's primary key makes the second INSERT wait for the first, then
        do nothing."""
        doc = results.validate(document)
        text = json.dumps(doc, sort_keys=True)
        insert = self._insert_ignoring(
            "INSERT INTO results (job_id, course, assignment, student, score, max_score,"
            " status, document, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", key="(job_id)")
        with self._transaction() as db:
            job = self._execute(db, "SELECT course, assignment, student FROM jobs WHERE id = ?",
                                (job_id,)).fetchone()
            if job is None:
                raise KeyError(job_id)
            cur = self._execute(db, insert, (job_id, job["course"], job["assignment"], job["student"],
                                             doc["score"], doc["max_score"], doc["status"], text, results.now()))
            stored = cur.rowcount == 1
            if stored:
                self._execute(db, "UPDATE jobs SET status = ?, finished_at = ?, message = ? WHERE id = ?",
                              (DONE, results.now(), self._text(doc["message"] or "") or None, job_id))
        return stored

    def requeue(self, job_id: str, message: str) -> None:
        """A running job back in the queue after a failure that was not the student's (its
        ``attempts`` count the claims, so the retries stay bounded)."""
        with self._connect() as db:
            self._execute(db, "UPDATE jobs SET status = ?, message = ? WHERE id = ? AND status = ?",
                          (QUEUED, self._text(f"retrying: {message}"[:1000]), job_id, RUNNING))

    def fail(self, job_id: str, message: str) -> None:
        with self._connect() as db:
            self._execute(db, "UPDATE jobs SET status = ?, finished_at = ?, message = ? WHERE id = ?"
                          " AND status != ?", (FAILED, results.now(), self._text(message[:1000]), job_id, DONE))

    def delete_job(self, job_id: str) -> None:
        with self._connect() as db:
            self._execute(db, "DELETE FROM jobs WHERE id = ? AND status = ?", (job_id, QUEUED))

    def result(self, job_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = self._execute(db, "SELECT document FROM results WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else json.loads(row["document"])

    def results(self, course: str, assignment: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries (not whole documents) of one course's results for an assignment, oldest first."""
        with self._connect() as db:
            rows = self._execute(
                db, "SELECT job_id, student, score, max_score, status, created_at FROM results"
                " WHERE course = ? AND assignment = ? ORDER BY created_at, job_id LIMIT ? OFFSET ?",
                (course, assignment, limit, offset)).fetchall()
        return [dict(r) for r in rows]

    def count_results(self, job_id: str | None = None) -> int:
        with self._connect() as db:
            if job_id is None:
                return self._execute(db, "SELECT COUNT(*) AS n FROM results").fetchone()["n"]
            return self._execute(db, "SELECT COUNT(*) AS n FROM results WHERE job_id = ?",
                                 (job_id,)).fetchone()["n"]

    def set_callback_status(self, job_id: str, status: str) -> None:
        with self._connect() as db:
            self._execute(db, "UPDATE jobs SET callback_status = ?, delivered_at = CASE WHEN ? THEN ? ELSE"
                          " delivered_at END WHERE id = ?", (self._text(status[:300]),
                                                             status.startswith("delivered"), results.now(), job_id))

    def supersede_queued(self, newer: JobRow) -> list[str]:
        """The same student's older jobs for the same assignment that are still queued (not
        started) end here, replaced by ``newer``: one student resubmitting every minute holds one
        place in the queue, not ten. Their callbacks are not sent (the newer job's is). The ids."""
        with self._transaction() as db:
            rows = self._execute(
                db, f"SELECT id FROM jobs WHERE course = ? AND assignment = ? AND student = ? AND status = ?"
                f" AND id != ? ORDER BY id{self.LOCK_ROWS}",
                (newer.course, newer.assignment, newer.student, QUEUED, newer.id)).fetchall()
            ids = [r["id"] for r in rows]
            for job_id in ids:
                self._execute(db, "UPDATE jobs SET status = ?, finished_at = ?, message = ?, callback_status = ?"
                              " WHERE id = ? AND status = ?",
                              (FAILED, results.now(), SUPERSEDED.format(new=newer.id),
                               "not sent: superseded", job_id, QUEUED))
        return ids

    def queue_position(self, job_id: str) -> tuple[int, float | None] | None:
        """A queued job's place (1: next) among the queued jobs, and an estimate of the seconds
        until it is graded from the throughput of the last ``RECENT`` seconds (None without
        any). The place counts jobs queued before it; fair share between courses may take it
        sooner. None if the job is not queued."""
        from datetime import UTC, datetime, timedelta

        with self._connect() as db:
            job = self._execute(db, "SELECT created_at, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if job is None or job["status"] != QUEUED:
                return None
            ahead = self._execute(db, "SELECT COUNT(*) AS n FROM jobs WHERE status = ? AND (created_at < ? OR"
                                  " (created_at = ? AND id < ?))",
                                  (QUEUED, job["created_at"], job["created_at"], job_id)).fetchone()["n"]
            since = (datetime.now(UTC) - timedelta(seconds=RECENT)).isoformat(timespec="milliseconds")
            since = since.replace("+00:00", "Z")
            recent = self._execute(db, "SELECT COUNT(*) AS n FROM jobs WHERE status = ? AND finished_at >= ?",
                                   (DONE, since)).fetchone()["n"]
        position = int(ahead) + 1
        return position, (round(position * RECENT / recent, 1) if recent else None)

    def counts(self) -> list[tuple[str, str, int]]:
        """(course, status, jobs) for every course and status: the metrics' queue depths."""
        with self._connect() as db:
            rows = self._execute(db, "SELECT course, status, COUNT(*) AS n FROM jobs GROUP BY course, status"
                                 " ORDER BY course, status").fetchall()
        return [(r["course"], r["status"], int(r["n"])) for r in rows]


# what claiming a job does to it, in both backends' claim_next
_CLAIM = "UPDATE jobs SET status = ?, started_at = ?, attempts = attempts + 1"
# which queued job is next: fair share between courses. The course with the fewest jobs busy
# (being graded; with a broker also sent and waiting there) goes first, then the one whose last
# job started (was sent) longest ago (round robin), then the oldest job of that course; so one
# course's burst cannot starve another's. Only jobs started (sent) in the last day count (the
# parameter), so the choice reads the recent rows, not a semester. One student holds at most
# one queued job per assignment (``supersede_queued``), so resubmitting never pushes the class back.
_RUNNING_BUSY = "status = ?"  # embedded: busy is being graded
_SENT_BUSY = "status = ? OR (status = ? AND sent_at IS NOT NULL)"  # broker: graded, or sent
_QUEUED_ANY = "j.status = ?"
_UNSENT = "j.status = ? AND j.sent_at IS NULL"


def _fair_pick(busy: str, stamp: str, eligible: str) -> str:
    return (f"SELECT j.id FROM jobs j LEFT JOIN (SELECT course, SUM(CASE WHEN {busy} THEN 1 ELSE 0 END)"
            f" AS busy, MAX({stamp}) AS last FROM jobs WHERE {stamp} >= ? GROUP BY course) c"
            f" ON c.course = j.course WHERE {eligible}"
            " ORDER BY COALESCE(c.busy, 0), COALESCE(c.last, ''), j.created_at, j.id LIMIT 1")


def _day_ago() -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")




class SQLiteStore(SQLStore):
    """One SQLite file (WAL mode), a connection per operation so threads never share one.

    SQLite has one writer at a time: a write transaction is ``BEGIN IMMEDIATE`` (it takes the
    write lock before it reads), and skipping a duplicate is ``INSERT OR IGNORE``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # results and callback URLs: readable by the service user only
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._claim_lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            have = {r["name"] for r in db.execute("PRAGMA table_info(jobs)").fetchall()}
            for name, decl in ADDED_COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _insert_ignoring(self, insert: str, key: str = "") -> str:
        return insert.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)

    def _claim(self, pick: str, pick_params: Sequence[Any], update: str, update_params: Sequence[Any],
               guard: str, guard_params: Sequence[Any]) -> JobRow | None:
        """One claimer at a time in this process, and the write lock held from the SELECT to
        the UPDATE against other processes."""
        with self._claim_lock, self._transaction() as db:
            row = self._execute(db, pick, pick_params).fetchone()
            if row is None:
                return None
            self._execute(db, f"{update} WHERE id = ? AND {guard}", (*update_params, row["id"], *guard_params))
            return self._job(db, row["id"])


# --------------------------------------------------------------------------- PostgreSQL

_SCHEMA_LOCK = 0x6D7067726164  # "mpgrad": an advisory lock so two API processes never race on CREATE

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _text(value: str) -> str:
    """PostgreSQL TEXT cannot hold NUL characters (SQLite can): a grader's message might."""
    return value.replace("\x00", "\ufffd")


def is_postgres_url(database: str | os.PathLike[str]) -> bool:
    return isinstance(database, str) and database.startswith(POSTGRES_SCHEMES)


def redacted(database: str | os.PathLike[str]) -> str:
    """The database as printed: a PostgreSQL URL without its password (and query string)."""
    if not is_postgres_url(database):
        return str(database)
    from urllib.parse import urlsplit

    parts = urlsplit(str(database))
    try:
        netloc = parts.hostname or ""
        if ":" in netloc:  # an IPv6 address
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:  # an unparsable port: show nothing after the user
        netloc = "?"
    user = parts.username or ""
    if parts.password is not None:
        user += ":**"
    return f"{parts.scheme}://{user + '@' if user else ''}{netloc}{parts.path}"


def scrubbed(text: str, database: str | os.PathLike[str]) -> str:
    """An error message about ``database`` with the URL's password (as written or decoded) cut
    out: libpq quotes pieces of a malformed connection string back."""
    if not is_postgres_url(database):
        return text
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(str(database))
    try:
        secrets = {parts.password or ""}
    except ValueError:
        secrets = set()
    secrets |= set(parse_qs(parts.query).get("password", []))  # ?password=... works in libpq too
    secrets |= {unquote(s) for s in secrets}
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "**")
    return text.replace(str(database), redacted(database))


def open_store(database: str | os.PathLike[str]) -> Store:
    """A ``postgresql://`` URL is a :class:`PostgresStore`; anything else is a SQLite file."""
    if is_postgres_url(database):
        return PostgresStore(str(database))
    return SQLiteStore(Path(database))


class PostgresStore(SQLStore):
    """The same store in PostgreSQL, for several API processes (on one host or several).

    Same tables and semantics as :class:`SQLiteStore`: documents are the validated JSON as
    TEXT, timestamps the same ISO strings. What SQLite gets from one writer at a time is done
    with row locks here: ``claim_next`` takes the oldest queued job with ``FOR UPDATE SKIP
    LOCKED`` in the statement that marks it running, so two processes never claim the same
    job; ``finish`` inserts with ``ON CONFLICT DO NOTHING``, so a job has at most one result.
    Connections (autocommit, one per thread at a time) are kept in a small idle pool.
    psycopg is imported here, not at the top: SQLite users do not need it.
    """

    IDLE = 8  # connections kept open between operations
    LOCK_ROWS = " FOR UPDATE"

    def __init__(self, url: str, connect_timeout: float = 10) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - the service extra installs it
            raise RuntimeError("a postgresql:// database needs psycopg: pip install 'mpgrade[service]'") from exc
        self._psycopg = psycopg
        self.url = url
        self.connect_timeout = connect_timeout
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in filter(str.strip, PG_SCHEMA.split(";")):
                db.execute(statement)
            for name, decl in ADDED_COLUMNS:
                db.execute(f"ALTER TABLE jobs ADD COLUMN IF NOT EXISTS {name} {decl}")

    def __repr__(self) -> str:
        return f"PostgresStore({redacted(self.url)!r})"

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        from psycopg.rows import dict_row

        with self._lock:
            db = self._idle.pop() if self._idle else None
        if db is None or db.closed:
            db = self._psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                       connect_timeout=max(1, int(self.connect_timeout)))
        try:
            yield db
        except BaseException:
            db.close()  # it may be mid-transaction or broken: never hand it out again
            raise
        if db.closed or db.broken or db.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            db.close()
            return
        with self._lock:
            if len(self._idle) < self.IDLE:
                self._idle.append(db)
                return
        db.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._connect() as db, db.transaction():
            yield db

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _text(self, value: str) -> str:
        return _text(value)

    def _insert_ignoring(self, insert: str, key: str = "") -> str:
        return f"{insert} ON CONFLICT {key + ' ' if key else ''}DO NOTHING"

    def _claim(self, pick: str, pick_params: Sequence[Any], update: str, update_params: Sequence[Any],
               guard: str, guard_params: Sequence[Any]) -> JobRow | None:
        """One statement: the picked row is locked from the SELECT to the UPDATE; rows another
        process holds are skipped (``SKIP LOCKED``), so two processes never claim one job."""
        with self._connect() as db:
            row = self._execute(
                db, f"{update} WHERE id = ({pick} FOR UPDATE OF j SKIP LOCKED) AND {guard} RETURNING *",
                (*update_params, *pick_params, *guard_params)).fetchone()
        return self._row(row)
