"""The HTTP API (FastAPI): LMSs push submissions and read results; OpenAPI at /openapi.json.

``create_app(config)`` builds everything from its argument (no module state), so tests and
``mpgrade serve`` make as many apps as they like. Routes:

- ``POST /v1/assignments/{name}/submissions``: multipart form with ``student`` (the LMS's user
  id), ``file`` (one ``.zip``, or module / notebook files), optional ``callback_url`` and
  ``callback_format`` (``result`` or ``lti``). 202 with a job id at once; 200 with the existing
  job when the same student already submitted the same files for the same tests.
- ``GET /v1/jobs/{id}``: status and, when done, the result document.
- ``GET /v1/assignments/{name}/results``: the course's results for the assignment.

Every error is ``application/problem+json`` (RFC 7807). A token belongs to one course: it can
submit to that course's assignments and see only that course's jobs (another course's job is a
404, another course's assignment a 403).

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime,
and the dependencies they name are closures made while ``create_app`` adds the routes.
"""

import errno
import logging
import re
import shutil
import sqlite3
import tempfile
import threading
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, NamedTuple

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from grader import __version__
from grader.assignment import Assignment
from grader.intake.submission import Submission, from_folder, from_zip, submission_id
from grader.sandbox.base import Sandbox
from grader.service import callbacks, jobs, openapi
from grader.service.auth import Course, Tokens
from grader.service.openapi import TITLES
from grader.service.reports import Reports
from grader.service.runner import AHEAD, Dispatched, Dispatcher, Embedded
from grader.service.store import DONE, FAILED, FINAL, SENDING, JobRow, NewJob, Store, open_store

log = logging.getLogger("mpgrade.service")
PROBLEM = "application/problem+json"
DEFAULT_MAX_BODY = 5 * 1024 * 1024
DEFAULT_MIN_FREE = 64 * 1024 * 1024
_SUBMISSIONS = re.compile(r"/v1/assignments/[^/]+/submissions/?")
_JOB_ID = r"^[0-9a-f]{32}$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


@dataclass
class ServiceConfig:
    """Everything the API needs; built by ``mpgrade serve`` or a test.

    ``sandbox`` grades in-process (embedded worker threads) when ``broker`` is None; with a
    ``broker`` URL jobs go to Celery workers and ``sandbox`` is not used.
    """

    assignments: dict[str, Assignment]
    tokens_file: Path
    database: Path | str = field(repr=False)  # a SQLite file or a postgresql:// URL (a password)
    sandbox: Sandbox | None = None
    broker: str | None = None
    workers: int = 1
    max_body: int = DEFAULT_MAX_BODY
    visibility_timeout: float = 3600.0
    poll_interval: float = 0.5
    dispatch_ahead: int = AHEAD  # with a broker: sent jobs no worker has taken yet, at most
    callback_attempts: int = callbacks.ATTEMPTS
    callback_backoff: float = 1.0
    callback_timeout: float = callbacks.TIMEOUT
    callback_allow: Sequence[str] = ()  # CIDRs callbacks may reach besides public addresses
    callback_per_destination: int = callbacks.PER_DESTINATION
    callback_per_course: int = callbacks.PER_COURSE  # sending threads one course may hold
    start_method: str | None = None
    timeout: float | None = None
    min_free: int = DEFAULT_MIN_FREE  # bytes free on the database's and the uploads' disks
    metrics: bool = False  # GET /metrics (Prometheus), no token: keep it off the public side
    lti_dir: Path | None = None  # the LTI 1.3 tool's key and platforms (serve: DATA/lti); None: no /lti routes
    store: Store | None = field(default=None, repr=False)  # set by create_app


class TokenSource:
    """The tokens file, re-read when it changes, so ``mpgrade token add`` needs no restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._tokens = Tokens.load(path)
        self._stamp = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def course_for(self, token: str) -> Course | None:
        with self._lock:
            stamp = self._stat()
            if stamp is not None and stamp != self._stamp:
                try:
                    self._tokens, self._stamp = Tokens.load(self.path), stamp
                except ValueError:
                    log.exception("the tokens file %s is broken; keeping the previous tokens", self.path)
            return self._tokens.course_for(token)


def plain_text(value: str, most: int = 200) -> bool:
    """1..most characters, none of them a control, format, private-use or unassigned code point
    (Unicode category C*) nor a line or paragraph separator: no "alice\\n", no U+202E."""
    return 0 < len(value) <= most and not any(
        unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") for c in value)


# --------------------------------------------------------------------------- disks


def disk_free(path: Path) -> int:
    """Bytes free for this process on the file system of ``path`` (its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def disk_full(exc: BaseException) -> bool:
    """Whether an error means "no space left": OSError ENOSPC/EDQUOT, SQLite's "database or
    disk is full", PostgreSQL's DiskFull (SQLSTATE 53100)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return True
    return getattr(exc, "sqlstate", None) == "53100"


# --------------------------------------------------------------------------- problems (RFC 7807)


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return openapi.problems(*codes)


class BodyLimit:
    """ASGI middleware: a body larger than ``limit`` is a 413, refused from its Content-Length
    before anything is read, or as soon as a chunked body passes the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        state = {"received": 0, "over": False, "started": False}

        async def limited_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.limit:
                    state["over"] = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Any) -> None:
            if state["over"]:
                return  # whatever the app made of the broken body, the answer is 413
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._refuse(send)

    async def _refuse(self, send: Callable[[Any], Awaitable[None]]) -> None:
        response = problem(413, TITLES[413], f"the request body is larger than {self.limit} bytes")
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


class AuthFirst:
    """ASGI middleware: a submission POST without a valid course token is a 401 before a byte of
    its body is read (FastAPI parses a form before it runs the route's dependencies)."""

    def __init__(self, app: Any, tokens: "TokenSource") -> None:
        self.app, self.tokens = app, tokens

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if (scope["type"] == "http" and scope.get("method") == "POST"
                and _SUBMISSIONS.fullmatch(scope.get("path", ""))):
            header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            scheme, _, credentials = header.partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                detail = "send a course token: Authorization: Bearer <token>"
            elif await run_in_threadpool(self.tokens.course_for, credentials.strip()) is None:
                detail = "the token is not valid"
            else:
                detail = ""
            if detail:
                response = problem(401, TITLES[401], detail, headers={"WWW-Authenticate": "Bearer"})
                await send({"type": "http.response.start", "status": 401, "headers": response.raw_headers})
                await send({"type": "http.response.body", "body": response.body})
                return
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------- the app


def create_app(config: ServiceConfig) -> FastAPI:
    """The API for ``config``; its lifespan starts and stops the embedded worker or collector.

    Reads in the order a request meets it: the middleware (size, then token), the problem
    handlers, then the route groups; what the routes do is in :class:`Service`."""
    tokens = TokenSource(config.tokens_file)
    store: Store = config.store or open_store(config.database)
    config.store = store
    service = Service(config, store)
    app = FastAPI(
        title="mpgrade",
        version=__version__,
        summary="Grade Python multiprocessing submissions: push files, get a JSON result.",
        description=("Per-course bearer tokens (`mpgrade token add`). Results follow the schema "
                     "of `mpgrade schema`. Errors are RFC 7807 problem+json."),
        lifespan=service.lifespan,
    )
    app.add_middleware(BodyLimit, limit=config.max_body)
    app.add_middleware(AuthFirst, tokens=tokens)  # outermost: no token, no body read
    app.state.config = config
    app.state.store = store
    app.state.dispatcher = service.dispatcher
    _add_problem_handlers(app)
    course = _course_dependency(tokens)
    _add_submission_route(app, service, course)
    _add_reading_routes(app, service, course)
    if config.lti_dir is not None:  # mpgrade as an LTI 1.3 tool (grader.service.lti, docs/lti.md)
        from grader.service.lti.tool import Tool, router, transport_for

        service.lti = Tool(config.lti_dir, store, config.assignments, service.delivery.submit,
                           transport_for(service.egress, config.callback_attempts, config.callback_backoff,
                                         config.callback_timeout))
        app.state.lti = service.lti
        app.include_router(router(service.lti))
    plain_spec = app.openapi

    def spec() -> dict[str, Any]:
        """FastAPI's spec plus the response schemas (``grader.service.openapi``), made once."""
        if not getattr(app.state, "spec_done", False):
            app.openapi_schema = openapi.with_components(plain_spec())
            app.state.spec_done = True
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = spec  # type: ignore[method-assign]
    return app


def _dispatcher(config: ServiceConfig, store: Store, on_done: Callable[[str], None]) -> Dispatcher:
    """Celery workers when there is a broker URL, else embedded worker threads (they need a sandbox)."""
    if config.broker:
        from grader.service.tasks import Client

        return Dispatched(store, Client(config.broker, visibility_timeout=config.visibility_timeout),
                          on_done, interval=config.poll_interval, ahead=config.dispatch_ahead)
    if config.sandbox is None:
        raise ValueError("an embedded worker needs a sandbox (or pass a broker URL)")
    return Embedded(store, jobs.Grader(config.assignments, config.sandbox), on_done, threads=config.workers)


class Service:
    """What the routes share: the store, who grades (the dispatcher) and the callback senders.

    One per app, built by :func:`create_app`; the routes only parse requests and call these
    methods, so each step of accepting a submission can be read (and tested) on its own."""

    def __init__(self, config: ServiceConfig, store: Store) -> None:
        self.config, self.store = config, store
        self.egress = callbacks.Egress(callbacks.networks(config.callback_allow))
        self.delivery = callbacks.Deliveries(per_destination=config.callback_per_destination,
                                             per_course=config.callback_per_course)
        self.dispatcher = _dispatcher(config, store, self.on_done)
        self.reports = Reports(store)
        self.metrics: Any = None
        self.lti: Any = None  # a grader.service.lti.tool.Tool when config.lti_dir is set
        if config.metrics:
            from grader.service.metrics import Metrics

            self.metrics = Metrics(store)

    def deliver(self, job_id: str) -> None:
        """POST a finished job's result (or a failure document) to its callback URL, if it has
        one, with the Idempotency-Key ``<job id>-<delivery number>`` (see ``store.begin_delivery``)."""
        job = self.store.job(job_id)
        if job is None or not job.callback_url:
            return
        doc = self.store.result(job_id)
        if doc is None:
            assignment = self.config.assignments.get(job.assignment)
            if assignment is None:
                return
            doc = jobs.failure_document(assignment, job.payload, job.message or "the job failed",
                                        sandbox=getattr(self.config.sandbox, "name", "docker"))
        number, _ = self.store.begin_delivery(job_id)
        try:
            status = callbacks.post(job.callback_url, doc, job.callback_format or "result",
                                    attempts=self.config.callback_attempts, backoff=self.config.callback_backoff,
                                    timeout=self.config.callback_timeout, egress=self.egress,
                                    key=idempotency_key(job_id, number))
        except Exception as exc:  # a bug in making the body: say so rather than stay "sending"
            log.exception("the callback of job %s could not be made", job_id)
            status = f"failed: the callback could not be made ({type(exc).__name__}: {str(exc)[:200]})"
        self.store.set_callback_status(job_id, status)
        if self.metrics is not None:
            self.metrics.delivered(status)

    def on_done(self, job_id: str) -> None:
        """A job has its outcome: its callback is sent on a delivery thread within its
        destination's and its course's share (one LMS that never answers, or one course's many
        dead LMSs, delay only their own callbacks), never on the caller's."""
        job = self.store.job(job_id)
        if job is not None and self.metrics is not None:
            try:
                self.metrics.finished(job, self.store.result(job_id))
            except Exception:  # metrics must never cost a callback
                log.exception("counting job %s in the metrics failed", job_id)
        if job is not None and job.callback_url:
            self.delivery.submit(job.callback_url, lambda: self.deliver(job_id), course=job.course)
        if job is not None and self.lti is not None:
            try:  # scores for the student's LTI launches, on the delivery threads too
                self.lti.on_done(job_id)
            except Exception:
                log.exception("queueing the LTI scores of job %s failed", job_id)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Callbacks owed since the last stop are sent, then the dispatcher runs until shutdown."""
        for job_id in await run_in_threadpool(self.store.undelivered):  # finished, then the server stopped
            job = await run_in_threadpool(self.store.job, job_id)
            if job is None:
                continue
            if job.callback_status == SENDING:
                log.warning("job %s: its callback was being sent when the server stopped and may have "
                            "arrived; sending it again with the same Idempotency-Key %s", job_id,
                            idempotency_key(job_id, job.deliveries))
            else:
                log.warning("job %s finished before the last stop and its callback was never attempted; "
                            "sending it now", job_id)
            self.on_done(job_id)
        self.dispatcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(self.dispatcher.stop)
            self.delivery.shutdown()
            self.reports.close()

    def disks(self) -> list[Path]:
        """The folders whose file systems must have room: the uploads' (temp) and SQLite's."""
        found = [Path(tempfile.gettempdir())]
        if isinstance(self.config.database, Path) or not str(self.config.database).startswith("postgres"):
            found.append(Path(self.config.database).parent)
        return found

    def low_disk(self) -> str | None:
        """Why there is not room enough to take a job (``min_free`` bytes on every disk), or None."""
        for folder in self.disks():
            try:
                free = disk_free(folder)
            except OSError as exc:
                return f"the disk of {folder} cannot be checked ({exc.strerror or exc})"
            if free < self.config.min_free:
                return (f"the disk of {folder} is full ({free // (1024 * 1024)} MiB free, "
                        f"{self.config.min_free // (1024 * 1024)} MiB needed)")
        return None

    def unready(self) -> dict[str, str]:
        """Readiness: every check that fails, by name (empty when the service can take jobs)."""
        failed: dict[str, str] = {}
        try:
            self.store.writable()
        except Exception as exc:
            failed["store"] = f"the database cannot be written ({type(exc).__name__}: {str(exc)[:200]})"
        why = self.low_disk()
        if why:
            failed["disk"] = why
        why = self.dispatcher.unready()
        if why:
            failed["broker" if self.dispatcher.mode == "broker" else "workers"] = why
        return failed

    def assignment_for(self, name: str, who: Course) -> Assignment:
        """The assignment ``name`` if this server has it (404) and the course may use it (403)."""
        assignment = self.config.assignments.get(name)
        if assignment is None:
            raise HTTPException(404, f"no assignment {name!r} on this server")
        if not who.may_use(name):
            raise HTTPException(403, f"course {who.name!r} may not use assignment {name!r}")
        return assignment

    def supersede(self, newer: JobRow) -> None:
        """One queued job per student and assignment: older ones not yet started are replaced
        by ``newer`` (and, with a broker, their messages dropped when a worker gets them)."""
        for job_id in self.store.supersede_queued(newer):
            log.info("job %s is replaced by the same student's newer submission %s", job_id, newer.id)
            self.dispatcher.drop(job_id)

    def regradable(self, job: JobRow) -> bool:
        """A finished job whose outcome says nothing about the student's files: it failed (no
        worker could grade it) or its result is status "error" (the sandbox or grader failed)."""
        if job.status == FAILED:
            return True
        if job.status != DONE:
            return False
        doc = self.store.result(job.id)
        return doc is not None and doc.get("status") == "error"

    def view(self, job: JobRow, with_result: bool = True) -> dict[str, Any]:
        """A job as the API shows it (and, by default, its result document)."""
        out: dict[str, Any] = {
            "job_id": job.id, "status": job.status, "course": job.course,
            "assignment": job.assignment, "student": job.student,
            "submission_hash": job.submission_hash, "created_at": job.created_at,
            "started_at": job.started_at, "finished_at": job.finished_at, "message": job.message,
            "timestamps": {"received": job.created_at, "queued": job.sent_at or job.created_at,
                           "started": job.started_at, "graded": job.finished_at, "delivered": job.delivered_at},
            "queue": None,
            "callback": ({"url": job.callback_url, "format": job.callback_format,
                          "status": job.callback_status} if job.callback_url else None),
            "links": {"self": f"/v1/jobs/{job.id}",
                      "results": f"/v1/assignments/{job.assignment}/results"},
        }
        doc = self.store.result(job.id)
        if job.status == FAILED:
            out["gradable"], out["fault"] = False, "infrastructure"
        elif doc is not None:
            out["gradable"], out["fault"] = doc.get("gradable", True), jobs.fault_of(doc)
        else:
            out["gradable"], out["fault"] = None, None  # not known yet
        if job.status == "queued":
            place = self.store.queue_position(job.id)
            if place is not None:
                out["queue"] = {"position": place[0], "estimate_seconds": place[1]}
        if with_result:
            out["result"] = doc
        return out

    async def new_job(self, assignment: Assignment, who: Course, student: str, file: list[UploadFile],
                      callback_url: str | None, callback_format: str) -> NewJob:
        """The checked upload as a job to store (422 when nothing gradable is in it)."""
        uploads = [Upload(u.filename or "", await u.read()) for u in file]
        sub = await run_in_threadpool(build_submission, assignment, uploads, student, who.name)
        if sub.error:
            raise HTTPException(422, sub.error)
        if not sub.files:
            raise HTTPException(422, "no files of this assignment were found in the upload (looked for "
                                     f"{', '.join(assignment.submitted_files)})")
        options_payload = jobs.to_payload(assignment, sub, _options(self.config))
        return NewJob(id=jobs.job_key(assignment, student, sub.hash, salt=who.name), course=who.name,
                      assignment=assignment.name, fingerprint=assignment.fingerprint(), student=student,
                      submission_hash=sub.hash, payload=options_payload, callback_url=callback_url or None,
                      callback_format=callback_format if callback_url else None)

    async def queue(self, new: NewJob, callback_url: str | None, callback_format: str) -> tuple[JobRow, bool]:
        """Store the job and have it graded; (the job, whether it is new or a new attempt).

        The same files again are the existing job, graded again only when its earlier outcome
        was the grader's fault; a callback sent with them replaces the job's. 503 when the
        dispatcher cannot take the job (then nothing is left queued that no one will grade)."""
        job, created = await run_in_threadpool(self.store.add_job, new)
        if created:
            try:
                await run_in_threadpool(self.dispatcher.submit, job)
            except Exception as exc:
                await run_in_threadpool(self.store.delete_job, job.id)
                raise HTTPException(503, f"the job could not be queued ({type(exc).__name__}); try again") from None
            await run_in_threadpool(self.supersede, job)
        elif await run_in_threadpool(self.regradable, job):
            # the earlier try failed for reasons of the grader (a sandbox hiccup, no worker with
            # this assignment): the same files again are a new attempt, not the old error
            await run_in_threadpool(self.dispatcher.forget, job.id)
            again = await run_in_threadpool(self.store.retry, job.id, callback_url or None, callback_format)
            if again is not None:
                job, created = again, True
                try:
                    await run_in_threadpool(self.dispatcher.submit, job)
                except Exception as exc:
                    await run_in_threadpool(self.store.fail, job.id, "the job could not be queued again")
                    raise HTTPException(503, f"the job could not be queued ({type(exc).__name__}); "
                                             "try again") from None
        elif callback_url:
            # the same files again with a callback (e.g. the LMS re-sent A after B): that callback
            # gets this job's result, so the LMS ends with the score of what was submitted last
            job = await run_in_threadpool(self.store.set_callback, job.id, callback_url, callback_format) or job
            if job.status in FINAL:
                self.on_done(job.id)
        return job, created


def _add_problem_handlers(app: FastAPI) -> None:
    """Every error as ``application/problem+json``: HTTP errors, invalid requests, crashes."""

    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, TITLES.get(exc.status_code, "Error"), str(exc.detail),
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                  for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(e['loc'][1:]) or e['loc'][0] if e['loc'] else 'request'}: {e['msg']}"
                           for e in errors[:5])
        return problem(422, TITLES[422], detail or "the request is not valid", errors=errors)

    @app.exception_handler(Exception)
    async def server_problem(request: Request, exc: Exception) -> JSONResponse:
        if disk_full(exc):
            log.error("no space left while serving %s: %s", request.url.path, exc)
            return problem(503, TITLES[503], "the server's disk is full; the request was not taken, try again "
                           "later", headers={"Retry-After": "60"})
        log.exception("unhandled error on %s", request.url.path)
        return problem(500, TITLES[500], f"the server failed ({type(exc).__name__})")


def _course_dependency(tokens: TokenSource) -> Callable[..., Course]:
    """The dependency that turns a request's bearer token into its course (401 without one)."""
    bearer = HTTPBearer(auto_error=False, description="A course token from `mpgrade token add`.")

    def course(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Course:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(401, "send a course token: Authorization: Bearer <token>", headers=challenge)
        found = tokens.course_for(credentials.credentials)
        if found is None:
            raise HTTPException(401, "the token is not valid", headers=challenge)
        return found

    return course


def idempotency_key(job_id: str, delivery: int) -> str:
    """The ``Idempotency-Key`` of a job's ``delivery``-th callback: the same on every attempt
    and after a restart, a new one for a new outcome or a repeat's new callback."""
    return f"{job_id}-{delivery}"


def _check_form(student: str, callback_url: str | None, egress: callbacks.Egress) -> None:
    """422 for a student id with control characters or a callback URL that is refused."""
    if not plain_text(student):
        raise RequestValidationError([{"loc": ("body", "student"), "msg": "no control characters, "
                                       "format characters or line separators"}])
    if callback_url:
        why = callbacks.check_url(callback_url, egress)
        if why:
            raise RequestValidationError([{"loc": ("body", "callback_url"), "msg": why}])


def _add_submission_route(app: FastAPI, service: Service, course: Callable[..., Course]) -> None:
    """``POST /v1/assignments/{name}/submissions``: 202 with a new job, 200 with the existing one."""

    @app.post(
        "/v1/assignments/{name}/submissions", status_code=202, tags=["submissions"],
        summary="Submit files for grading; returns a job id at once",
        responses={202: openapi.body("Job", "Queued: a new job, or a new attempt of one whose grading failed"),
                   200: openapi.body("Job", "These files were already submitted: the existing job (with its result)"),
                   **_problem_responses(400, 401, 403, 404, 405, 413, 422, 500, 503)},
    )
    async def submit(
        request: Request,
        name: Annotated[str, PathParam(pattern=_NAME)],
        who: Annotated[Course, Depends(course)],
        student: Annotated[str, Form(min_length=1, max_length=200,
                                     description="The LMS's user id of the student.")],
        file: Annotated[list[UploadFile], File(description="One .zip, or the module / notebook files.")],
        callback_url: Annotated[str | None, Form(max_length=callbacks.MAX_URL,
                                                 description="POSTed to when grading ends.")] = None,
        callback_format: Annotated[Literal["result", "lti"], Form(
            description="result: the result document; lti: an LTI AGS Score object.")] = "result",
    ) -> JSONResponse:
        assignment = service.assignment_for(name, who)
        full = await run_in_threadpool(service.low_disk)
        if full:
            raise HTTPException(503, f"{full}; the job was not taken, try again later", headers={"Retry-After": "60"})
        _check_form(student, callback_url, service.egress)
        try:
            new = await service.new_job(assignment, who, student, file, callback_url, callback_format)
            job, created = await service.queue(new, callback_url, callback_format)
        except Exception as exc:
            if not disk_full(exc):
                raise
            log.error("no space left while taking a submission: %s", exc)
            raise HTTPException(503, "the server's disk is full; the job was not taken, try again later",
                                headers={"Retry-After": "60"}) from None
        body = {**service.view(job, with_result=not created), "duplicate": not created}
        return JSONResponse(body, status_code=202 if created else 200,
                            headers={"Location": f"/v1/jobs/{job.id}"})


def _add_reading_routes(app: FastAPI, service: Service, course: Callable[..., Course]) -> None:
    """The routes that only read: a job, an assignment's results, and the health check."""

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], summary="A job's status and, when done, its result",
             responses={200: openapi.body("Job", "The job, and its result document once it is done"),
                        **_problem_responses(401, 404, 405, 413, 422, 500)})
    async def get_job(job_id: Annotated[str, PathParam(pattern=_JOB_ID)],
                      who: Annotated[Course, Depends(course)]) -> dict[str, Any]:
        job = await run_in_threadpool(service.store.job, job_id)
        # another course's job, or one of an assignment this token may no longer use, does not exist for you
        if job is None or job.course != who.name or not who.may_use(job.assignment):
            raise HTTPException(404, f"no job {job_id}")
        return await run_in_threadpool(service.view, job)

    @app.get("/v1/assignments/{name}/results", tags=["results"],
             summary="This course's results for an assignment (score, status, job link)",
             responses={200: openapi.body("Results", "One page of the course's results"),
                        **_problem_responses(401, 403, 404, 405, 413, 422, 500)})
    async def list_results(name: Annotated[str, PathParam(pattern=_NAME)],
                           who: Annotated[Course, Depends(course)],
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                           offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        assignment = service.assignment_for(name, who)
        rows = await run_in_threadpool(service.store.results, who.name, assignment.name, limit, offset)
        for r in rows:
            r["links"] = {"job": f"/v1/jobs/{r['job_id']}"}
        return {"assignment": assignment.name, "course": who.name, "limit": limit, "offset": offset,
                "results": rows}

    @app.get("/v1/assignments/{name}/report/{page:path}", tags=["results"],
             summary="The class report (HTML, mpgrade report) of this course's results for an assignment",
             response_class=HTMLResponse,
             responses={200: {"description": "A page of the report (index.html, items.html, hangs.html, "
                                             "similarity.html, students.html, students/<page>.html)",
                              "content": {"text/html": {"schema": {"type": "string"}}}},
                        **_problem_responses(401, 403, 404, 405, 413, 422, 500, 503)})
    async def report_page(name: Annotated[str, PathParam(pattern=_NAME)], page: str,
                          who: Annotated[Course, Depends(course)]) -> Response:
        assignment = service.assignment_for(name, who)
        from grader import report as report_pkg
        from grader.report.html import CSP as REPORT_CSP

        try:
            report_pkg.require_extra()
        except report_pkg.ReportUnavailable as exc:
            raise HTTPException(503, str(exc)) from None
        body = await run_in_threadpool(service.reports.page, who.name, assignment.name, page or "index.html")
        if body is None:
            raise HTTPException(404, f"no report page {page!r} (no results yet, or no such page)")
        # The pages carry their own Content-Security-Policy; the header says it again for browsers
        # that read headers first, and nothing of the report may be framed or sniffed.
        return HTMLResponse(body, headers={"Content-Security-Policy": REPORT_CSP + "; frame-ancestors 'none'",
                                           "X-Content-Type-Options": "nosniff",
                                           "X-Frame-Options": "DENY", "Cache-Control": "no-store"})

    @app.get("/v1/health", tags=["health"], summary="Liveness: the process answers (no token needed)",
             responses={200: openapi.body("Health", "The process answers"),
                        **_problem_responses(405, 413, 500)})
    async def health() -> dict[str, Any]:
        return {"status": "ok", "mode": service.dispatcher.mode, "version": __version__,
                "assignments": sorted(service.config.assignments)}

    if service.metrics is not None:
        @app.get("/metrics", tags=["health"], summary="Prometheus metrics (mpgrade serve --metrics; no token)",
                 responses={200: {"description": "The Prometheus text exposition",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                            **_problem_responses(405, 413, 500)})
        async def metrics() -> Response:
            data, content_type = await run_in_threadpool(service.metrics.render)
            return Response(data, media_type=content_type)

    @app.get("/v1/ready", tags=["health"],
             summary="Readiness: the service can take jobs now (store writable, disk room, broker or workers)",
             responses={200: openapi.body("Ready", "The service can take jobs"),
                        **_problem_responses(405, 413, 500, 503)})
    async def ready() -> Any:
        failed = await run_in_threadpool(service.unready)
        if failed:
            return problem(503, TITLES[503], "; ".join(failed.values()), checks=failed)
        return {"status": "ready", "mode": service.dispatcher.mode}


def _options(config: ServiceConfig) -> Any:
    from grader import grading

    return grading.Options(scope="all", start_method=config.start_method, timeout=config.timeout)


class Upload(NamedTuple):
    """One file of a submission POST: the name the client gave it, and its bytes."""

    filename: str
    data: bytes


def build_submission(assignment: Assignment, uploads: Sequence[tuple[str, bytes]], student: str,
                     course: str) -> Submission:
    """Uploaded files -> a whitelisted submission, with ``grader.intake.submission``'s checks.

    One ``.zip`` goes through ``from_zip`` (traversal, symlinks, bombs, member caps); loose
    files are written under their base names into a private temp folder and read with
    ``from_folder`` (dangerous names ignored and reported). Nothing else parses the upload.
    """
    files = [Upload(*u) for u in uploads]  # plain (filename, data) pairs are welcome too
    sid = submission_id(student)
    info = {"lms": "api", "user_id": student, "course": course}
    with tempfile.TemporaryDirectory(prefix="mpgrade-upload-") as tmp:
        root = Path(tmp)
        if len(files) == 1 and files[0].filename.lower().endswith(".zip"):
            path = root / "upload.zip"
            path.write_bytes(files[0].data)
            sub = from_zip(path, assignment, sub_id=sid)
            if sub.error:
                sub.error = sub.error.replace("upload.zip", PurePosixPath(files[0].filename).name or "the zip")
        else:
            folder = root / "files"
            folder.mkdir()
            bad = []
            for filename, data in files:
                base = PurePosixPath(filename.replace("\\", "/")).name
                if (not base or base.startswith(".") or base.lower().endswith(".zip") or "\0" in base
                        or len(base.encode("utf-8", "surrogatepass")) > 255):
                    bad.append(filename)
                    continue
                (folder / base).write_bytes(data)
            sub = from_folder(folder, assignment, sub_id=sid)
            for filename in bad:
                sub.ignored.append({"path": filename[:200], "reason": "not a module or notebook file "
                                    "(send one .zip alone, or loose files)"})
        sub.source = "api:" + ",".join(PurePosixPath(u.filename.replace("\\", "/")).name for u in files)[:300]
        sub.student = info
    return sub

