"""The LTI tool put together, and its routes (``/lti/jwks``, ``/lti/login``, ``/lti/launch``).

``create_app`` makes one :class:`Tool` when the service has an LTI folder (``mpgrade serve``:
``DATA/lti``), includes :func:`router` and calls :meth:`Tool.on_done` for every finished job.
Every request to a platform runs on the service's callback delivery threads (queues per
destination and course, so a platform that never answers holds only its own scores) and goes through
the service's egress policy and retry settings (``--callback-allow`` and friends).

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime.
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from grader.service import callbacks, openapi
from grader.service.lti import ags, nrps, page
from grader.service.lti.keys import ToolKey
from grader.service.lti.launch import MAX_TOKEN, Accepted, LaunchError, begin, validate
from grader.service.lti.platform_keys import PlatformKeys
from grader.service.lti.records import Launch, Records
from grader.service.lti.registry import Platform, Registry, RegistryError
from grader.service.lti.token import Tokens
from grader.service.lti.transport import PlatformError, Transport
from grader.service.store import Store

log = logging.getLogger("mpgrade.service")
Submit = Callable[..., None]  # Deliveries.submit(url, work, course=...)
ROSTER_TTL = 300.0  # a launch reads the context's roster again when it is older than this
ROSTER_RETRY = 60.0  # a score for a student the roster does not know reads it again at most this often


class Tool:
    """Keys, registrations, records and the platform clients of one service."""

    def __init__(self, folder: Path, store: Store, assignments: Mapping[str, Any], submit: Submit,
                 transport: Transport) -> None:
        self.folder = Path(folder)
        self.key = ToolKey.load_or_create(self.folder)
        self.registry = Registry(self.folder)
        self.records = Records(store)
        self.store, self.assignments, self.submit = store, assignments, submit
        self.transport = transport
        self.platform_keys = PlatformKeys(transport)
        self.tokens = Tokens(self.key, transport)
        self._reading: dict[tuple[str, str, str], list[Callable[[], None]]] = {}  # rosters being read
        self._reading_lock = threading.Lock()

    # ------------------------------------------------------------------ launches

    def login(self, params: dict[str, str]) -> str:
        return begin(params, self.registry, self.records)

    def launch(self, id_token: str, state: str) -> tuple[str, str]:
        """A validated launch recorded and its page made (the page, its CSP); the roster is read
        in the background."""
        accepted = validate(id_token, state, self.registry, self.records, self.platform_keys,
                            frozenset(self.assignments))
        launch = accepted.launch
        self.records.add_launch(launch)
        self.records.set_members(launch.issuer, launch.client_id, launch.context_id,
                                 [(launch.sub, list(accepted.student_ids[1:]), accepted.name)])
        ids = self.records.student_ids(launch.issuer, launch.client_id, launch.context_id, launch.sub)
        doc = self.records.latest_result(launch.course, launch.assignment, ids)
        self._send_latest_grade(accepted, ids)
        self.refresh_roster(accepted.platform, launch, then=None)
        title = getattr(self.assignments.get(launch.assignment), "title", "") or launch.assignment
        policy = page.csp(accepted.platform, accepted.framed_by)
        return page.render(accepted.name, title, doc, policy), policy

    def refresh_roster(self, platform: Platform, launch: Launch, then: Callable[[], None] | None,
                       older_than: float = ROSTER_TTL) -> bool:
        """Read the context's roster on a delivery thread (then run ``then``) unless it was read
        less than ``older_than`` seconds ago; whether a read is under way for it. Jobs that
        finish while a read is under way wait for that read instead of starting another."""
        if not launch.nrps_url:
            return False
        key = (launch.issuer, launch.client_id, launch.context_id)
        with self._reading_lock:
            waiting = self._reading.get(key)
            if waiting is not None:
                if then is not None:
                    waiting.append(then)
                return True
            synced = self.records.roster_synced(*key)
            if synced is not None and time.time() - synced < older_than:
                return False
            self._reading[key] = [then] if then is not None else []

        def work() -> None:
            try:
                n = nrps.sync(platform, launch, self.tokens, self.transport, self.records)
                log.info("LTI roster of %s: %d members", launch.context_id[:80], n)
            except PlatformError as exc:
                self.records.set_roster_synced(*key)  # not again at once
                log.warning("the LTI roster of %s could not be read: %s", launch.context_id[:80], exc)
            finally:
                with self._reading_lock:
                    waiting = self._reading.pop(key, [])
            for callback in waiting:
                callback()

        self.submit(launch.nrps_url, work, course=launch.course)
        return True

    def _send_latest_grade(self, accepted: Accepted, ids: list[str]) -> None:
        """A grade given before the student's first launch (no AGS endpoint was known then)."""
        launch = accepted.launch
        latest = self.records.latest_grade(launch.course, launch.assignment, ids)
        if latest is None or not (launch.lineitem or launch.lineitems):
            return
        job_id, doc = latest
        if any(s["status"].startswith("sent") and s["sub"] == launch.sub
               for s in self.records.scores(job_id)):
            return
        self._queue(accepted.platform, launch, job_id, doc)

    # ------------------------------------------------------------------ grades

    def on_done(self, job_id: str) -> None:
        """A job finished: its score (or nothing, for a result that is not a grade) to the
        gradebook of every context that launched the assignment and has the student on its
        roster; a context whose roster does not know the student reads it again first (at most
        every ``ROSTER_RETRY`` seconds)."""
        job = self.store.job(job_id)
        if job is None:
            return
        doc = self.store.result(job_id)
        if doc is None:  # the job failed without a result: not a grade, nothing to send
            return
        for context in self.records.contexts(job.course, job.assignment):
            platform = self.registry.find(context.issuer, context.client_id)
            if platform is None:
                continue
            sub = self.records.member_for(context.issuer, context.client_id, context.context_id, job.student)
            if sub is not None:
                self._queue(platform, replace(context, sub=sub), job_id, doc)
                continue

            def again(platform: Platform = platform, context: Launch = context) -> None:
                found = self.records.member_for(context.issuer, context.client_id, context.context_id, job.student)
                if found is not None:
                    self._queue(platform, replace(context, sub=found), job_id, doc)

            self.refresh_roster(platform, context, then=again, older_than=ROSTER_RETRY)

    def _queue(self, platform: Platform, launch: Launch, job_id: str, doc: dict[str, Any]) -> None:
        url = launch.lineitem or launch.lineitems or platform.token_url
        self.submit(url, lambda: self.post(platform, launch, job_id, doc), course=launch.course)

    def post(self, platform: Platform, launch: Launch, job_id: str, doc: dict[str, Any]) -> str:
        assignment = self.assignments.get(launch.assignment)
        maximum = float(getattr(assignment, "max_score", None) or doc.get("max_score") or 0) or 1.0
        label = getattr(assignment, "title", "") or launch.assignment
        status = ags.post(platform, launch, doc, job_id, self.tokens, self.transport, self.records, label, maximum)
        log.info("LTI score of job %s for %s: %s", job_id, launch.sub[:80], status)
        return status


def transport_for(egress: callbacks.Egress, attempts: int, backoff: float, timeout: float) -> Transport:
    return Transport(egress=egress, attempts=attempts, backoff=backoff, timeout=timeout)


def unavailable(exc: Exception) -> HTTPException:
    """A 503 for a registrations file that cannot be read: the reason (a path) goes to the log only."""
    log.error("the LTI platforms file cannot be read: %s", exc)
    return HTTPException(503, "the LTI registrations cannot be read; the server's log says why")


def router(tool: Tool) -> APIRouter:
    """The tool's three routes."""
    routes = APIRouter(prefix="/lti", tags=["lti"])

    @routes.get("/jwks", summary="The tool's public key set (give this URL to the platform)",
                responses={200: {"description": "A JWK set (RFC 7517) of the tool's RSA signing key",
                                 "content": {"application/json": {"schema": {"type": "object"}}}},
                           **openapi.problems(405, 500)})
    async def jwks() -> JSONResponse:
        return JSONResponse(tool.key.jwks(), headers={"Cache-Control": "public, max-age=300"})

    login_doc = {"response_class": RedirectResponse, "status_code": 302,
                 "responses": {302: {"description": "To the platform's authorization URL, with state and nonce"},
                               **openapi.problems(400, 405, 413, 500, 503)}}

    async def login(request: Request) -> RedirectResponse:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        params = {k: v[:2000] for k, v in params.items()}
        try:
            url = await run_in_threadpool(tool.login, params)
        except LaunchError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        except RegistryError as exc:  # a broken platforms file: say so, do not guess
            raise unavailable(exc) from None
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})

    # the platform may start the login with a GET or a form POST (Security Framework 5.1.1.1)
    routes.add_api_route("/login", login, methods=["GET"], operation_id="lti_login_get",
                         summary="OIDC login initiation (the platform starts it)", **login_doc)
    routes.add_api_route("/login", login, methods=["POST"], operation_id="lti_login_post",
                         summary="OIDC login initiation, as a form POST", **login_doc)

    @routes.post("/launch", summary="The launch: the platform POSTs id_token and state here",
                 response_class=HTMLResponse,
                 responses={200: {"description": "The student's latest result and feedback",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                            **openapi.problems(400, 401, 405, 413, 500, 503)})
    async def launch(request: Request) -> HTMLResponse:
        form = await request.form()
        id_token, state = form.get("id_token"), form.get("state")
        if not isinstance(id_token, str) or not isinstance(state, str):
            raise HTTPException(400, "a launch needs id_token and state (form fields)")
        if len(id_token) > MAX_TOKEN:
            raise HTTPException(413, f"the id_token is larger than {MAX_TOKEN} characters")
        try:
            body, policy = await run_in_threadpool(tool.launch, id_token, state)
        except LaunchError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        except RegistryError as exc:
            raise unavailable(exc) from None
        return HTMLResponse(body, headers={"Content-Security-Policy": policy,
                                           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                                           "Referrer-Policy": "no-referrer"})

    return routes
