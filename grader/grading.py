"""Grading one submission: build the job, run it in a sandbox, trust only a valid document.

This is where the error policy lives (and only here): a timeout, a sandbox that printed
nothing, a document with the wrong nonce, hash or arithmetic all become an ``error`` or
``timeout`` result with score 0 and a message, never an exception for the batch. So does
anything else that goes wrong while grading one submission (:func:`failure`), down to the
error document itself failing, which then falls back to :func:`last_resort`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from grader import __version__
from grader.assignment import MANIFEST, Assignment
from grader.intake.submission import Submission
from grader.protocol import results, wire
from grader.sandbox.base import PYTHON, Job, Limits, Outcome, Sandbox


@dataclass(frozen=True)
class Options:
    scope: str = "all"  # "all" (a grade) or "public" (make check)
    start_method: str | None = None  # None: the assignment's
    exercises: tuple[str, ...] = ()  # only these (make check EX=...); empty: all
    timeout: float | None = None  # whole-submission wall clock; None: the assignment's
    # The tests' fingerprint this run grades against: a batch hashes its tests once and every
    # document it makes says the same; None: hashed when a document needs it.
    fingerprint: str | None = None
    # Seconds the tests may spend in student calls together (HarnessConfig.budget): for an LMS
    # that kills the whole job after a fixed time (PrairieLearn). None: each call's own limit.
    budget: float | None = None


def sandbox_limits(assignment: Assignment, options: Options) -> Limits:
    limits = Limits.from_mapping(assignment.sandbox)
    wall = options.timeout or assignment.limits.submission_timeout
    return Limits.from_mapping({**limits.to_dict(), "wall_timeout": wall})


def make_job(assignment: Assignment, submission: Submission, options: Options, nonce: str) -> Job:
    """The files the sandbox needs: manifest, tests in scope, the submitted modules, job.json."""
    root = assignment.root
    limits = sandbox_limits(assignment, options)
    files: dict[str, bytes] = {MANIFEST: (root / MANIFEST).read_bytes()}
    for ex in assignment.exercises:
        if options.exercises and ex.id not in options.exercises:
            continue
        tests = ex.public_tests() + (ex.hidden_tests() if options.scope == "all" else [])
        for path in tests:
            files[str(path.relative_to(root))] = path.read_bytes()
    for path in assignment.helper_files():
        files[str(path.relative_to(root))] = path.read_bytes()
    for name, content in submission.files.items():
        files[f"submission/{name}"] = content
    files[wire.JOB_FILE] = json.dumps({
        "submission": results.capped_submission(submission.describe()),
        "scope": options.scope,
        "exercises": list(options.exercises),
        "start_method": options.start_method,
        "budget": options.budget,
        "limits": {**assignment.limits.to_dict(), **limits.to_dict(),
                   **({"budget": options.budget} if options.budget else {})},
    }).encode()
    return Job(
        files=files,
        command=(PYTHON, "-m", "grader.harness"),
        limits=limits,
        secret_env={wire.NONCE_ENV: nonce},
        labels={"mpgrade.submission": submission.id[:60]},
        name=submission.id,
    )


def grade(sandbox: Sandbox, assignment: Assignment, submission: Submission,
          options: Options = Options()) -> dict[str, Any] | None:
    """A validated result document for the submission; None only when the run was cancelled.

    Never raises (but for KeyboardInterrupt and the like): whatever goes wrong is an ``error``
    document for this submission, so one submission cannot stop a batch.
    """
    started_at = results.now()
    try:
        return _grade(sandbox, assignment, submission, options, started_at)
    except Exception as exc:  # noqa: BLE001 - a bug or a surprise: still this submission's only
        return failure(assignment, submission, getattr(sandbox, "name", "docker"), options, exc, started_at)


def failure(assignment: Assignment, submission: Submission, sandbox: str, options: Options,
            exc: BaseException, started_at: str | None = None) -> dict[str, Any]:
    """The ``error`` document of a submission whose grading raised ``exc``; never raises."""
    message = f"the grader failed on this submission ({type(exc).__name__}: {str(exc)[:300]}); grade it again"
    return _error(assignment, submission, sandbox, options, started_at or results.now(), "error", message)


def _grade(sandbox: Sandbox, assignment: Assignment, submission: Submission, options: Options,
           started_at: str) -> dict[str, Any] | None:
    if submission.error:
        return _error(assignment, submission, sandbox.name, options, started_at, "error", submission.error)
    if not submission.files and options.scope == "all":
        return _error(assignment, submission, sandbox.name, options, started_at, "error",
                      "no files of this assignment were found in the submission "
                      f"(looked for {', '.join(assignment.submitted_files)})")
    nonce = secrets.token_hex(16)
    try:
        outcome = sandbox.run(make_job(assignment, submission, options, nonce))
    except Exception as exc:  # a daemon hiccup, a full disk: this submission's problem only
        return _error(assignment, submission, sandbox.name, options, started_at, "error",
                      f"the sandbox failed ({type(exc).__name__}: {str(exc)[:300]}); grade it again")
    if outcome.cancelled:
        return None
    doc = interpret(outcome, nonce, assignment, submission, sandbox, started_at, options)
    doc.setdefault("duration", round(float(outcome.stats.get("wall", 0.0)), 3))
    return doc


def interpret(outcome: Outcome, nonce: str, assignment: Assignment, submission: Submission,
              sandbox: Sandbox, started_at: str, options: Options) -> dict[str, Any]:
    """An Outcome -> a document, trusting nothing in it that was not framed, parsed and checked."""
    limits = sandbox_limits(assignment, options)
    name = sandbox.name
    if outcome.timed_out:
        return _error(assignment, submission, name, options, started_at, "timeout",
                      f"the submission ran past the limit of {limits.wall_timeout:g} s for a whole "
                      "submission and was stopped")
    try:
        payload = wire.unframe(outcome.stdout, nonce)
        data = results.decode(payload)  # bounded in bytes, values and depth, decoded once
        if isinstance(data, dict) and "harness_error" in data:
            raise ValueError(f"the grader failed inside the sandbox: {str(data['harness_error'])[:500]}"[:500])
        doc = results.validate(data)
        if doc["submission"].get("hash") != submission.hash:
            raise ValueError("the result is for other files than the ones submitted")
        if doc["assignment"].get("name") != assignment.name:
            raise ValueError("the result is for another assignment")
    except (ValueError, results.InvalidResult) as exc:
        if outcome.oom_killed:  # a student process hitting the limit is normal; losing the report is not
            return _error(assignment, submission, name, options, started_at, "error",
                          f"the sandbox ran out of memory ({limits.memory // (1024 * 1024)} MiB) "
                          "and the grader could not finish")
        detail = f" (exit status {outcome.exit_status})" if outcome.exit_status else ""
        return _error(assignment, submission, name, options, started_at, "error",
                      f"no valid result came out of the sandbox{detail}: {exc}")
    return doc


def _error(assignment: Assignment, submission: Submission, sandbox: str, options: Options,
           started_at: str, status: str, message: str) -> dict[str, Any]:
    """The error document of this run (its scope, exercises and tests' fingerprint), validated;
    should even that fail, :func:`last_resort`'s."""
    try:
        return results.validate(results.error_document(
            assignment, submission.describe(), status=status, message=message, sandbox=sandbox,
            start_method=options.start_method or assignment.start_method, started_at=started_at,
            scope=options.scope, only=options.exercises, fingerprint=options.fingerprint,
        ))
    except Exception as exc:  # noqa: BLE001 - the one document that must always come out
        return last_resort(assignment, submission, sandbox, started_at, status,
                           f"{message} (and the full error document failed: {type(exc).__name__}: "
                           f"{str(exc)[:200]})", scope=options.scope)


def last_resort(assignment: Assignment, submission: Submission, sandbox: str, started_at: str,
                status: str, message: str, *, scope: str = "all") -> dict[str, Any]:
    """The least a document can say: who, which files (by hash), its scope, score 0 and why.
    Valid by construction, from nothing but the submission's id and hash and plain strings."""
    try:
        digest = submission.hash
    except Exception:  # noqa: BLE001 - not even the files can be hashed: hash nothing
        digest = "sha256:" + hashlib.sha256(b"").hexdigest()
    try:
        name, version = str(assignment.name), str(assignment.version)
    except Exception:  # noqa: BLE001
        name, version = "unknown", "unknown"
    return {
        "schema_version": results.SCHEMA_VERSION,
        "submission": {"id": results.cut(str(submission.id or "submission"), results.MAX_SUBMISSION_ID),
                       "hash": digest},
        "assignment": {"name": name, "version": version},
        "scope": scope if scope in ("all", "public") else "all",
        "score": 0.0,
        "max_score": 0.0,
        "status": status if status in ("error", "timeout") else "error",
        "message": results.cut(message, results.MAX_TEXT),
        "exercises": [],
        "tests": [],
        "grader": {"name": "mpgrade", "version": __version__,
                   "sandbox": sandbox if sandbox in ("local", "docker") else "docker"},
        "started_at": started_at,
        "finished_at": results.now(),
    }
