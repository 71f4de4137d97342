"""Where jobs and results live: SQLite by default, behind a small interface.

Every job is a row keyed by its id (derived from course, assignment, tests, student and the
submission hash, see ``jobs.job_key``), with a UNIQUE key on those columns too, so the same
upload twice is one job. A result is a row of its own keyed by the job id and inserted with
``INSERT OR IGNORE``: a job graded twice (a redelivered Celery message, a restart) still has
exactly one result, the first. Documents are stored as the JSON text that passed
``grader.protocol.results.validate``; nothing here is ever unpickled.

The :class:`Store` protocol is what the API, the embedded worker and the collector use;
:class:`PostgresStore` implements the same methods for several API processes sharing one
database (``mpgrade serve --database postgresql://...``), see :func:`open_store`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grader.protocol import results

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINAL = (DONE, FAILED)
MAX_ATTEMPTS = 3  # a job that was running when the server died this often is failed, not retried

SCHEMA = """
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
    UNIQUE (course, assignment, fingerprint, student, submission_hash)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS results (
    job_id      TEXT PRIMARY KEY REFERENCES jobs (id),
    course      TEXT NOT NULL,
    assignment  TEXT NOT NULL,
    student     TEXT NOT NULL,
    score       REAL NOT NULL,
    max_score   REAL NOT NULL,
    status      TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_assignment ON results (course, assignment, created_at);
"""


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
    def delete_job(self, job_id: str) -> None: ...
    def result(self, job_id: str) -> dict[str, Any] | None: ...
    def results(self, course: str, assignment: str, limit: int, offset: int) -> list[dict[str, Any]]: ...
    def count_results(self, job_id: str | None = None) -> int: ...
    def set_callback_status(self, job_id: str, status: str) -> None: ...


class SQLiteStore:
    """One SQLite file (WAL mode), a connection per operation so threads never share one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # results and callback URLs: readable by the service user only
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._claim = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @staticmethod
    def _row(row: sqlite3.Row | None) -> JobRow | None:
        if row is None:
            return None
        data = dict(row)
        data.pop("fingerprint", None)
        data["payload"] = json.loads(data["payload"])
        return JobRow(**data)

    def add_job(self, job: NewJob) -> tuple[JobRow, bool]:
        """Insert a queued job; the existing one (and False) if these files are already a job."""
        with self._connect() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs (id, course, assignment, fingerprint, student, submission_hash,"
                " status, payload, callback_url, callback_format, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.course, job.assignment, job.fingerprint, job.student, job.submission_hash,
                 QUEUED, json.dumps(job.payload), job.callback_url, job.callback_format, results.now()))
            created = cur.rowcount == 1
            row = db.execute("SELECT * FROM jobs WHERE id = ? OR (course = ? AND assignment = ? AND"
                             " fingerprint = ? AND student = ? AND submission_hash = ?)",
                             (job.id, job.course, job.assignment, job.fingerprint, job.student,
                              job.submission_hash)).fetchone()
        return self._row(row), created  # type: ignore[return-value]

    def job(self, job_id: str) -> JobRow | None:
        with self._connect() as db:
            return self._row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def claim_next(self) -> JobRow | None:
        """The oldest queued job, now marked running (one claimer at a time in this process)."""
        with self._claim, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY created_at, id LIMIT 1",
                             (QUEUED,)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute("UPDATE jobs SET status = ?, started_at = ?, attempts = attempts + 1 WHERE id = ?",
                       (RUNNING, results.now(), row["id"]))
            db.execute("COMMIT")
            return self._row(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def mark_running(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = ?, started_at = COALESCE(started_at, ?) WHERE id = ? AND status = ?",
                       (RUNNING, results.now(), job_id, QUEUED))

    def requeue_running(self) -> tuple[int, list[str]]:
        """After a restart of the embedded worker: jobs it was grading go back to the queue,
        except those already started ``MAX_ATTEMPTS`` times (they may be what kills the server):
        those fail. Returns (how many were queued again, the ids of the failed ones)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            doomed = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE status = ? AND attempts >= ?",
                                                  (RUNNING, MAX_ATTEMPTS)).fetchall()]
            db.executemany("UPDATE jobs SET status = ?, finished_at = ?, message = ? WHERE id = ?",
                           [(FAILED, results.now(), f"grading was interrupted {MAX_ATTEMPTS} times (the "
                             "server stopped or crashed while grading it); not retried again", i)
                            for i in doomed])
            requeued = db.execute("UPDATE jobs SET status = ? WHERE status = ?", (QUEUED, RUNNING)).rowcount
            db.execute("COMMIT")
        return requeued, doomed

    def unfinished(self) -> list[JobRow]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status NOT IN (?, ?) ORDER BY created_at",
                              FINAL).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def unfinished_states(self) -> list[JobState]:
        with self._connect() as db:
            rows = db.execute("SELECT id, status, sent_at FROM jobs WHERE status NOT IN (?, ?)"
                              " ORDER BY created_at", FINAL).fetchall()
        return [JobState(r["id"], r["status"], r["sent_at"]) for r in rows]

    def retry(self, job_id: str, callback_url: str | None, callback_format: str | None) -> JobRow | None:
        """A finished job queued again as a new attempt (its result, if any, is dropped); the
        new callback, when given, replaces the old one. None if the job is not finished."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute(
                "UPDATE jobs SET status = ?, message = NULL, started_at = NULL, finished_at = NULL,"
                " sent_at = NULL, attempts = 0, callback_status = NULL,"
                " callback_url = COALESCE(?, callback_url), callback_format = COALESCE(?, callback_format)"
                " WHERE id = ? AND status IN (?, ?)",
                (QUEUED, callback_url, callback_format if callback_url else None, job_id, *FINAL))
            if cur.rowcount != 1:
                db.execute("ROLLBACK")
                return None
            db.execute("DELETE FROM results WHERE job_id = ?", (job_id,))
            db.execute("COMMIT")
            return self._row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def set_callback(self, job_id: str, url: str, fmt: str) -> JobRow | None:
        """A repeated submission's callback replaces the job's (and is owed a delivery)."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET callback_url = ?, callback_format = ?, callback_status = NULL"
                       " WHERE id = ?", (url, fmt, job_id))
            return self._row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def undelivered(self) -> list[str]:
        """Finished jobs whose callback was never attempted (the server stopped in between)."""
        with self._connect() as db:
            rows = db.execute("SELECT id FROM jobs WHERE status IN (?, ?) AND callback_url IS NOT NULL"
                              " AND callback_status IS NULL ORDER BY finished_at", FINAL).fetchall()
        return [r["id"] for r in rows]

    def mark_sent(self, job_id: str) -> None:
        """The broker has the job (broker mode): a restart must not send it again."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET sent_at = ? WHERE id = ?", (results.now(), job_id))

    def unsent(self) -> list[JobRow]:
        """Queued jobs the broker never got (the API stopped between storing and sending)."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status = ? AND sent_at IS NULL ORDER BY created_at",
                              (QUEUED,)).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def finish(self, job_id: str, document: dict[str, Any]) -> bool:
        """Store the job's result; False (and nothing written) if it already has one."""
        doc = results.validate(document)
        text = json.dumps(doc, sort_keys=True)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            job = db.execute("SELECT course, assignment, student FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if job is None:
                db.execute("ROLLBACK")
                raise KeyError(job_id)
            cur = db.execute(
                "INSERT OR IGNORE INTO results (job_id, course, assignment, student, score, max_score,"
                " status, document, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, job["course"], job["assignment"], job["student"], doc["score"], doc["max_score"],
                 doc["status"], text, results.now()))
            stored = cur.rowcount == 1
            if stored:
                db.execute("UPDATE jobs SET status = ?, finished_at = ?, message = ? WHERE id = ?",
                           (DONE, results.now(), doc["message"] or None, job_id))
            db.execute("COMMIT")
        return stored

    def fail(self, job_id: str, message: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = ?, finished_at = ?, message = ? WHERE id = ? AND status != ?",
                       (FAILED, results.now(), message[:1000], job_id, DONE))

    def delete_job(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM jobs WHERE id = ? AND status = ?", (job_id, QUEUED))

    def result(self, job_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT document FROM results WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else json.loads(row["document"])

    def results(self, course: str, assignment: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries (not whole documents) of one course's results for an assignment, oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT job_id, student, score, max_score, status, created_at FROM results"
                " WHERE course = ? AND assignment = ? ORDER BY created_at, job_id LIMIT ? OFFSET ?",
                (course, assignment, limit, offset)).fetchall()
        return [dict(r) for r in rows]

    def count_results(self, job_id: str | None = None) -> int:
        with self._connect() as db:
            if job_id is None:
                return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            return db.execute("SELECT COUNT(*) FROM results WHERE job_id = ?", (job_id,)).fetchone()[0]

    def set_callback_status(self, job_id: str, status: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET callback_status = ? WHERE id = ?", (status[:300], job_id))


# --------------------------------------------------------------------------- PostgreSQL

PG_SCHEMA = """
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
    UNIQUE (course, assignment, fingerprint, student, submission_hash)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS results (
    job_id      TEXT PRIMARY KEY REFERENCES jobs (id),
    course      TEXT NOT NULL,
    assignment  TEXT NOT NULL,
    student     TEXT NOT NULL,
    score       DOUBLE PRECISION NOT NULL,
    max_score   DOUBLE PRECISION NOT NULL,
    status      TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_assignment ON results (course, assignment, created_at);
"""
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


class PostgresStore:
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
        with self._connect() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in filter(str.strip, PG_SCHEMA.split(";")):
                db.execute(statement)

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

    @staticmethod
    def _row(row: dict[str, Any] | None) -> JobRow | None:
        if row is None:
            return None
        data = dict(row)
        data.pop("fingerprint", None)
        data["payload"] = json.loads(data["payload"])
        return JobRow(**data)

    def add_job(self, job: NewJob) -> tuple[JobRow, bool]:
        """Insert a queued job; the existing one (and False) if these files are already a job."""
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO jobs (id, course, assignment, fingerprint, student, submission_hash,"
                " status, payload, callback_url, callback_format, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (job.id, job.course, job.assignment, job.fingerprint, job.student, job.submission_hash,
                 QUEUED, json.dumps(job.payload), job.callback_url, job.callback_format, results.now()))
            created = cur.rowcount == 1
            row = db.execute("SELECT * FROM jobs WHERE id = %s OR (course = %s AND assignment = %s AND"
                             " fingerprint = %s AND student = %s AND submission_hash = %s) LIMIT 1",
                             (job.id, job.course, job.assignment, job.fingerprint, job.student,
                              job.submission_hash)).fetchone()
        return self._row(row), created  # type: ignore[return-value]

    def job(self, job_id: str) -> JobRow | None:
        with self._connect() as db:
            return self._row(db.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone())

    def claim_next(self) -> JobRow | None:
        """The oldest queued job nobody else is claiming, now marked running (one statement:
        the row is locked from the SELECT to the UPDATE; rows another process holds are skipped)."""
        with self._connect() as db:
            row = db.execute(
                "UPDATE jobs SET status = %s, started_at = %s, attempts = attempts + 1"
                " WHERE id = (SELECT id FROM jobs WHERE status = %s ORDER BY created_at, id LIMIT 1"
                "             FOR UPDATE SKIP LOCKED)"
                " AND status = %s RETURNING *",
                (RUNNING, results.now(), QUEUED, QUEUED)).fetchone()
        return self._row(row)

    def mark_running(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = %s, started_at = COALESCE(started_at, %s)"
                       " WHERE id = %s AND status = %s", (RUNNING, results.now(), job_id, QUEUED))

    def requeue_running(self) -> tuple[int, list[str]]:
        """Like :meth:`SQLiteStore.requeue_running`: running jobs go back to the queue, those
        started ``MAX_ATTEMPTS`` times fail. Every running job in the database: with several
        API processes grading (embedded workers), one restarting queues the others' jobs again
        (graded twice, still one result); use --broker workers for several API processes."""
        with self._connect() as db, db.transaction():
            doomed = [r["id"] for r in db.execute(
                "SELECT id FROM jobs WHERE status = %s AND attempts >= %s ORDER BY id FOR UPDATE",
                (RUNNING, MAX_ATTEMPTS)).fetchall()]
            for i in doomed:
                db.execute("UPDATE jobs SET status = %s, finished_at = %s, message = %s WHERE id = %s",
                           (FAILED, results.now(), f"grading was interrupted {MAX_ATTEMPTS} times (the "
                            "server stopped or crashed while grading it); not retried again", i))
            requeued = db.execute("UPDATE jobs SET status = %s WHERE status = %s", (QUEUED, RUNNING)).rowcount
        return requeued, doomed

    def unfinished(self) -> list[JobRow]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status NOT IN (%s, %s) ORDER BY created_at",
                              FINAL).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def unfinished_states(self) -> list[JobState]:
        with self._connect() as db:
            rows = db.execute("SELECT id, status, sent_at FROM jobs WHERE status NOT IN (%s, %s)"
                              " ORDER BY created_at", FINAL).fetchall()
        return [JobState(r["id"], r["status"], r["sent_at"]) for r in rows]

    def retry(self, job_id: str, callback_url: str | None, callback_format: str | None) -> JobRow | None:
        """A finished job queued again as a new attempt (its result, if any, is dropped); the
        new callback, when given, replaces the old one. None if the job is not finished."""
        with self._connect() as db, db.transaction():
            row = db.execute(
                "UPDATE jobs SET status = %s, message = NULL, started_at = NULL, finished_at = NULL,"
                " sent_at = NULL, attempts = 0, callback_status = NULL,"
                " callback_url = COALESCE(%s, callback_url), callback_format = COALESCE(%s, callback_format)"
                " WHERE id = %s AND status IN (%s, %s) RETURNING *",
                (QUEUED, callback_url, callback_format if callback_url else None, job_id, *FINAL)).fetchone()
            if row is not None:
                db.execute("DELETE FROM results WHERE job_id = %s", (job_id,))
        return self._row(row)

    def set_callback(self, job_id: str, url: str, fmt: str) -> JobRow | None:
        """A repeated submission's callback replaces the job's (and is owed a delivery)."""
        with self._connect() as db:
            return self._row(db.execute(
                "UPDATE jobs SET callback_url = %s, callback_format = %s, callback_status = NULL"
                " WHERE id = %s RETURNING *", (url, fmt, job_id)).fetchone())

    def undelivered(self) -> list[str]:
        """Finished jobs whose callback was never attempted (the server stopped in between)."""
        with self._connect() as db:
            rows = db.execute("SELECT id FROM jobs WHERE status IN (%s, %s) AND callback_url IS NOT NULL"
                              " AND callback_status IS NULL ORDER BY finished_at", FINAL).fetchall()
        return [r["id"] for r in rows]

    def mark_sent(self, job_id: str) -> None:
        """The broker has the job (broker mode): a restart must not send it again."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET sent_at = %s WHERE id = %s", (results.now(), job_id))

    def unsent(self) -> list[JobRow]:
        """Queued jobs the broker never got (the API stopped between storing and sending)."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status = %s AND sent_at IS NULL ORDER BY created_at",
                              (QUEUED,)).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def finish(self, job_id: str, document: dict[str, Any]) -> bool:
        """Store the job's result; False (and nothing written) if it already has one."""
        doc = results.validate(document)
        text = json.dumps(doc, sort_keys=True)
        with self._connect() as db, db.transaction():
            # no row lock here: two finishers holding one would deadlock on the UPDATE below;
            # the result's primary key makes the second INSERT wait for the first, then do nothing
            job = db.execute("SELECT course, assignment, student FROM jobs WHERE id = %s",
                             (job_id,)).fetchone()
            if job is None:
                raise KeyError(job_id)
            cur = db.execute(
                "INSERT INTO results (job_id, course, assignment, student, score, max_score,"
                " status, document, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (job_id) DO NOTHING",
                (job_id, job["course"], job["assignment"], job["student"], doc["score"], doc["max_score"],
                 doc["status"], text, results.now()))
            stored = cur.rowcount == 1
            if stored:
                db.execute("UPDATE jobs SET status = %s, finished_at = %s, message = %s WHERE id = %s",
                           (DONE, results.now(), _text(doc["message"] or "") or None, job_id))
        return stored

    def fail(self, job_id: str, message: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = %s, finished_at = %s, message = %s WHERE id = %s"
                       " AND status != %s", (FAILED, results.now(), _text(message[:1000]), job_id, DONE))

    def delete_job(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM jobs WHERE id = %s AND status = %s", (job_id, QUEUED))

    def result(self, job_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT document FROM results WHERE job_id = %s", (job_id,)).fetchone()
        return None if row is None else json.loads(row["document"])

    def results(self, course: str, assignment: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries (not whole documents) of one course's results for an assignment, oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT job_id, student, score, max_score, status, created_at FROM results"
                " WHERE course = %s AND assignment = %s ORDER BY created_at, job_id LIMIT %s OFFSET %s",
                (course, assignment, limit, offset)).fetchall()
        return [dict(r) for r in rows]

    def count_results(self, job_id: str | None = None) -> int:
        with self._connect() as db:
            if job_id is None:
                return db.execute("SELECT COUNT(*) AS n FROM results").fetchone()["n"]
            return db.execute("SELECT COUNT(*) AS n FROM results WHERE job_id = %s", (job_id,)).fetchone()["n"]

    def set_callback_status(self, job_id: str, status: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET callback_status = %s WHERE id = %s", (_text(status[:300]), job_id))
