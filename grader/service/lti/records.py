"""What the LTI tool remembers, in the service's own database (SQLite or PostgreSQL).

The tables live beside ``jobs`` and ``results`` and are reached through the store's own
connection, placeholder and transaction handling (one copy of that mechanism), so several API
processes sharing a PostgreSQL database share login states and used nonces too:

- ``lti_states``: a login's ``state`` and the ``nonce`` sent with it, usable once, for
  ``STATE_TTL`` seconds.
- ``lti_nonces``: every nonce of an accepted id_token, until it expires: a replayed token is
  refused even if its state were somehow usable again.
- ``lti_launches``: who launched which assignment from which context, with the gradebook
  (AGS) and roster (NRPS) endpoints the platform gave.
- ``lti_member_ids``: the roster: per platform user (``sub``), one row for each id a
  submission may carry for them (the ``sub`` itself, the SIS id, the e-mail address), so a
  lookup is one indexed equality, the same in both databases.
- ``lti_rosters``: when each context's roster was last read.
- ``lti_lineitems``: the line item found or made for a context and ``resourceId``.
- ``lti_scores``: what happened to each score (sent, withheld, failed), per job and user.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from grader.service.store import Store

STATE_TTL = 600  # seconds between the login redirect and the launch
MAX_STATES = 50000  # logins in progress at once: /lti/login needs no token, so its rows are capped
NONCE_TTL = 3600  # an id_token's nonce is remembered at least as long as the token could live

_TABLES = (
    "CREATE TABLE IF NOT EXISTS lti_states (state TEXT PRIMARY KEY, nonce TEXT NOT NULL, issuer TEXT NOT NULL,"
    " client_id TEXT NOT NULL, target TEXT NOT NULL, created BIGINT NOT NULL, used INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS lti_nonces (issuer TEXT NOT NULL, nonce TEXT NOT NULL, expires BIGINT NOT NULL,"
    " PRIMARY KEY (issuer, nonce))",
    "CREATE TABLE IF NOT EXISTS lti_launches (issuer TEXT NOT NULL, client_id TEXT NOT NULL,"
    " deployment_id TEXT NOT NULL, context_id TEXT NOT NULL, sub TEXT NOT NULL, course TEXT NOT NULL,"
    " assignment TEXT NOT NULL, resource_link_id TEXT NOT NULL, lineitems TEXT, lineitem TEXT,"
    " scopes TEXT NOT NULL, nrps_url TEXT, updated BIGINT NOT NULL,"
    " PRIMARY KEY (issuer, client_id, deployment_id, context_id, sub, assignment))",
    "CREATE TABLE IF NOT EXISTS lti_member_ids (issuer TEXT NOT NULL, client_id TEXT NOT NULL,"
    " context_id TEXT NOT NULL, student_id TEXT NOT NULL, sub TEXT NOT NULL,"
    " PRIMARY KEY (issuer, client_id, context_id, student_id, sub))",
    "CREATE TABLE IF NOT EXISTS lti_rosters (issuer TEXT NOT NULL, client_id TEXT NOT NULL,"
    " context_id TEXT NOT NULL, synced BIGINT NOT NULL, PRIMARY KEY (issuer, client_id, context_id))",
    "CREATE TABLE IF NOT EXISTS lti_lineitems (issuer TEXT NOT NULL, client_id TEXT NOT NULL,"
    " context_id TEXT NOT NULL, resource_id TEXT NOT NULL, url TEXT NOT NULL,"
    " PRIMARY KEY (issuer, client_id, context_id, resource_id))",
    "CREATE TABLE IF NOT EXISTS lti_scores (job_id TEXT NOT NULL, sub TEXT NOT NULL, lineitem TEXT NOT NULL,"
    " status TEXT NOT NULL, updated BIGINT NOT NULL, PRIMARY KEY (job_id, sub, lineitem))",
)


@dataclass(frozen=True)
class State:
    state: str
    nonce: str
    issuer: str
    client_id: str
    target: str


@dataclass(frozen=True)
class Launch:
    """One accepted launch: the platform, the place and person, and where grades go."""

    issuer: str
    client_id: str
    deployment_id: str
    context_id: str
    sub: str
    course: str
    assignment: str
    resource_link_id: str
    lineitems: str | None
    lineitem: str | None
    scopes: tuple[str, ...]
    nrps_url: str | None


class Records:
    """The LTI tables of ``store`` (an SQLite or PostgreSQL store of ``grader.service.store``)."""

    def __init__(self, store: Store) -> None:
        self.store: Any = store  # an SQLStore: its _connect/_transaction/_execute/_insert_ignoring
        with self.store._transaction() as db:
            for statement in _TABLES:
                self.store._execute(db, statement)

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.store._connect() as db:
            return self.store._execute(db, sql, params)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.store._connect() as db:
            return [dict(r) for r in self.store._execute(db, sql, params).fetchall()]

    def _upsert(self, table: str, key: dict[str, Any], values: dict[str, Any]) -> None:
        where = " AND ".join(f"{k} = ?" for k in key)
        with self.store._transaction() as db:
            if values:
                sets = ", ".join(f"{k} = ?" for k in values)
                done = self.store._execute(db, f"UPDATE {table} SET {sets} WHERE {where}",
                                           (*values.values(), *key.values())).rowcount
                if done:
                    return
            row = {**key, **values}
            self.store._execute(db, self.store._insert_ignoring(
                f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})"),
                tuple(row.values()))

    # ------------------------------------------------------------------ login states and nonces

    def add_state(self, state: State) -> bool:
        """Store a login's state; False (nothing stored) when ``MAX_STATES`` logins are in progress."""
        now = int(time.time())
        with self.store._transaction() as db:
            self.store._execute(db, "DELETE FROM lti_states WHERE created < ?", (now - STATE_TTL,))
            if self.store._execute(db, "SELECT COUNT(*) AS n FROM lti_states").fetchone()["n"] >= MAX_STATES:
                return False
            self.store._execute(db, "INSERT INTO lti_states (state, nonce, issuer, client_id, target, created)"
                                " VALUES (?, ?, ?, ?, ?, ?)",
                                (state.state, state.nonce, state.issuer, state.client_id, state.target, now))
        return True

    def state(self, state: str) -> State | None:
        """An unused, unexpired login state (not consumed: see :meth:`consume_state`)."""
        rows = self._rows("SELECT state, nonce, issuer, client_id, target FROM lti_states"
                          " WHERE state = ? AND used = 0 AND created >= ?", (state, int(time.time()) - STATE_TTL))
        return State(**rows[0]) if rows else None

    def consume_state(self, state: str) -> bool:
        """Mark a state used; False when it already was (a second launch with it)."""
        return bool(self._run("UPDATE lti_states SET used = 1 WHERE state = ? AND used = 0", (state,)).rowcount)

    def use_nonce(self, issuer: str, nonce: str, expires: int) -> bool:
        """Remember an id_token's nonce; False when it was seen before (a replay)."""
        now = int(time.time())
        with self.store._transaction() as db:
            self.store._execute(db, "DELETE FROM lti_nonces WHERE expires < ?", (now,))
            inserted = self.store._execute(db, self.store._insert_ignoring(
                "INSERT INTO lti_nonces (issuer, nonce, expires) VALUES (?, ?, ?)", "(issuer, nonce)"),
                (issuer, nonce, max(expires, now) + NONCE_TTL)).rowcount
        return bool(inserted)

    # ------------------------------------------------------------------ launches and rosters

    def add_launch(self, launch: Launch) -> None:
        key = {k: getattr(launch, k) for k in ("issuer", "client_id", "deployment_id", "context_id", "sub",
                                                "assignment")}
        self._upsert("lti_launches", key, {
            "course": launch.course, "resource_link_id": launch.resource_link_id, "lineitems": launch.lineitems,
            "lineitem": launch.lineitem, "scopes": " ".join(launch.scopes), "nrps_url": launch.nrps_url,
            "updated": int(time.time())})

    def contexts(self, course: str, assignment: str) -> list[Launch]:
        """The latest launch of ``assignment`` with a gradebook endpoint, per context: where its
        scores go (a student's launch or the teacher's; ``sub`` is that launcher's)."""
        rows = self._rows("SELECT * FROM lti_launches WHERE course = ? AND assignment = ? AND (lineitems IS NOT NULL"
                          " OR lineitem IS NOT NULL) ORDER BY updated DESC", (course, assignment))
        latest: dict[tuple[str, str, str], Launch] = {}
        for r in rows:
            latest.setdefault((r["issuer"], r["client_id"], r["context_id"]), _launch(r))
        return list(latest.values())

    def member_for(self, issuer: str, client_id: str, context_id: str, student: str) -> str | None:
        """The ``sub`` of the context's member one of whose ids is ``student`` (None: unknown).
        A member whose ``sub`` is ``student`` wins; an id two members share maps to nobody."""
        subs = sorted({r["sub"] for r in self._rows(
            "SELECT sub FROM lti_member_ids WHERE issuer = ? AND client_id = ? AND context_id = ? AND student_id = ?",
            (issuer, client_id, context_id, student))})
        if student in subs:
            return student
        return subs[0] if len(subs) == 1 else None

    def roster_synced(self, issuer: str, client_id: str, context_id: str) -> int | None:
        rows = self._rows("SELECT synced FROM lti_rosters WHERE issuer = ? AND client_id = ? AND context_id = ?",
                          (issuer, client_id, context_id))
        return int(rows[0]["synced"]) if rows else None

    def set_roster_synced(self, issuer: str, client_id: str, context_id: str) -> None:
        self._upsert("lti_rosters", {"issuer": issuer, "client_id": client_id, "context_id": context_id},
                     {"synced": int(time.time())})

    def set_members(self, issuer: str, client_id: str, context_id: str,
                    members: Iterable[tuple[str, Sequence[str], str]]) -> int:
        """Each (sub, student ids, name) replaces that member's ids, in one transaction; how many
        members. Members not named are kept (a roster page lists who is there, not who left)."""
        n = 0
        where = "issuer = ? AND client_id = ? AND context_id = ? AND sub = ?"
        insert = self.store._insert_ignoring(
            "INSERT INTO lti_member_ids (issuer, client_id, context_id, student_id, sub) VALUES (?, ?, ?, ?, ?)")
        with self.store._transaction() as db:
            for sub, ids, _name in members:
                self.store._execute(db, f"DELETE FROM lti_member_ids WHERE {where}", (issuer, client_id, context_id, sub))
                for student_id in sorted({sub, *ids}):
                    self.store._execute(db, insert, (issuer, client_id, context_id, student_id, sub))
                n += 1
        return n

    def student_ids(self, issuer: str, client_id: str, context_id: str, sub: str) -> list[str]:
        """The ids a submission of this platform user may carry: ``sub``, and the roster's others."""
        rows = self._rows("SELECT student_id FROM lti_member_ids WHERE issuer = ? AND client_id = ? AND"
                          " context_id = ? AND sub = ? ORDER BY student_id", (issuer, client_id, context_id, sub))
        return [sub, *[r["student_id"] for r in rows if r["student_id"] != sub]]

    def latest_result(self, course: str, assignment: str, students: Sequence[str]) -> dict[str, Any] | None:
        """The newest result document of any of ``students`` (the ids of one person)."""
        if not students:
            return None
        marks = ", ".join("?" for _ in students)
        rows = self._rows(f"SELECT job_id FROM results WHERE course = ? AND assignment = ? AND student IN ({marks})"
                          " ORDER BY created_at DESC, job_id DESC LIMIT 1", (course, assignment, *students))
        return self.store.result(rows[0]["job_id"]) if rows else None

    def latest_grade(self, course: str, assignment: str,
                     students: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
        """The job id and document of the newest ``graded`` result of any of ``students`` (the one
        the gradebook should hold)."""
        if not students:
            return None
        marks = ", ".join("?" for _ in students)
        rows = self._rows(f"SELECT job_id FROM results WHERE course = ? AND assignment = ? AND status = 'graded'"
                          f" AND student IN ({marks}) ORDER BY created_at DESC, job_id DESC LIMIT 1",
                          (course, assignment, *students))
        if not rows:
            return None
        doc = self.store.result(rows[0]["job_id"])
        return None if doc is None else (rows[0]["job_id"], doc)

    # ------------------------------------------------------------------ line items and scores

    def lineitem(self, issuer: str, client_id: str, context_id: str, resource_id: str) -> str | None:
        rows = self._rows("SELECT url FROM lti_lineitems WHERE issuer = ? AND client_id = ? AND context_id = ?"
                          " AND resource_id = ?", (issuer, client_id, context_id, resource_id))
        return rows[0]["url"] if rows else None

    def set_lineitem(self, issuer: str, client_id: str, context_id: str, resource_id: str, url: str) -> None:
        self._upsert("lti_lineitems", {"issuer": issuer, "client_id": client_id, "context_id": context_id,
                                       "resource_id": resource_id}, {"url": url})

    def set_score(self, job_id: str, sub: str, lineitem: str, status: str) -> None:
        self._upsert("lti_scores", {"job_id": job_id, "sub": sub, "lineitem": lineitem},
                     {"status": status[:300], "updated": int(time.time())})

    def scores(self, job_id: str) -> list[dict[str, Any]]:
        """What happened to the scores of ``job_id``: sub, lineitem, status."""
        return self._rows("SELECT sub, lineitem, status FROM lti_scores WHERE job_id = ? ORDER BY sub, lineitem",
                          (job_id,))


def _launch(row: dict[str, Any]) -> Launch:
    return Launch(**{**{k: row[k] for k in Launch.__dataclass_fields__ if k != "scopes"},
                     "scopes": tuple(str(row["scopes"]).split())})
