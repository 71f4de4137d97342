"""Assignment and Grade Services 2.0: the line item of an assignment, and the scores in it.

**Line items, idempotently.** An assignment's column in the platform's gradebook is the line
item whose ``resourceId`` is the assignment's name. When the launch's AGS claim names a
``lineitem`` (the platform made one for the link, as Canvas does for an assignment), that one
is used. Otherwise the tool looks in ``lineitems?resource_id=NAME`` first and creates one only
when none is there (``POST`` with ``resourceId``, ``resourceLinkId``, ``scoreMaximum``,
``label``), remembering what it found; one lock per context and resource keeps two scores
finishing at once from making two columns.

**The score policy** (the one of ``grader.export``): only a ``graded`` result is a Score, always
``FullyGraded`` with ``scoreGiven``. An ``error`` or ``timeout`` result sends nothing (no
``gradingProgress: Failed``, which makes Canvas set the score to nil): the grade the platform
holds, an earlier good one included, stays, and the score's record says ``withheld``.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from grader.service.lti.records import Launch, Records
from grader.service.lti.registry import Platform
from grader.service.lti.token import Tokens
from grader.service.lti.transport import Final, PlatformError, Transport

LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
WITHHELD = "withheld: "

_locks: dict[tuple[str, str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def score_for(doc: dict[str, Any], sub: str) -> dict[str, Any] | None:
    """The Score to send for ``doc`` to the platform user ``sub``, or None (not a grade: an
    error or timeout, or a document marked ``gradable: false``)."""
    from grader.export import Withheld, lti_score

    if doc.get("gradable") is False:
        return None
    try:
        score = lti_score(doc)
    except Withheld:
        return None
    return {**score, "userId": sub}


def with_path(url: str, suffix: str) -> str:
    """``url`` with ``suffix`` added to its path, its query kept (AGS 2.0 section 3.2.8)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + suffix, parts.query, ""))


def with_query(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + f"{name}={quote(value, safe='')}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _lock(launch: Launch, resource_id: str) -> threading.Lock:
    key = (launch.issuer, launch.client_id, launch.context_id, resource_id)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def scopes_for(launch: Launch) -> tuple[str, ...]:
    """The scopes a score for this launch needs (the line item scope only to find or make one)."""
    if SCORE_SCOPE not in launch.scopes:
        raise Final("the platform did not grant the score scope for this launch")
    if launch.lineitem:
        return (SCORE_SCOPE,)
    if LINEITEM_SCOPE not in launch.scopes or not launch.lineitems:
        raise Final("the launch has no line item and the platform did not grant the line item scope")
    return (LINEITEM_SCOPE, SCORE_SCOPE)


def line_item(launch: Launch, token: str, transport: Transport, records: Records, resource_id: str,
              label: str, maximum: float) -> str:
    """The URL of the assignment's line item in the launch's context: the launch's own, the one
    remembered, the one the platform lists with this ``resourceId``, or a new one."""
    if launch.lineitem:
        return launch.lineitem
    with _lock(launch, resource_id):
        known = records.lineitem(launch.issuer, launch.client_id, launch.context_id, resource_id)
        if known:
            return known
        assert launch.lineitems  # scopes_for checked
        auth = {"Authorization": f"Bearer {token}"}
        listed = transport.request("GET", with_query(launch.lineitems, "resource_id", resource_id),
                                   headers={"Accept": CONTAINER_TYPE, **auth}).json()
        found = [i.get("id") for i in (listed if isinstance(listed, list) else [])
                 if isinstance(i, dict) and i.get("resourceId") == resource_id and isinstance(i.get("id"), str)]
        if found:
            url = found[0]
        else:
            item = {"scoreMaximum": maximum, "label": label[:200], "resourceId": resource_id,
                    "resourceLinkId": launch.resource_link_id}
            made = transport.request("POST", launch.lineitems, body=json.dumps(item).encode(),
                                     headers={"Content-Type": LINEITEM_TYPE, "Accept": LINEITEM_TYPE, **auth}).json()
            url = made.get("id") if isinstance(made, dict) else None
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                raise PlatformError("the platform made a line item but gave no id URL")
        records.set_lineitem(launch.issuer, launch.client_id, launch.context_id, resource_id, url)
        return url


def post(platform: Platform, launch: Launch, doc: dict[str, Any], job_id: str, tokens: Tokens,
         transport: Transport, records: Records, label: str, maximum: float) -> str:
    """Send (or withhold) the Score of ``doc`` for this launch's user; the status recorded."""
    score = score_for(doc, launch.sub)
    if score is None:
        status = f"{WITHHELD}an {doc.get('status')} result is never sent as a grade; the platform keeps its grade"
        records.set_score(job_id, launch.sub, launch.lineitem or launch.lineitems or "-", status)
        return status
    target = "-"
    try:
        scopes = scopes_for(launch)
        for attempt in (1, 2):
            token = tokens.get(platform, scopes)
            try:
                target = line_item(launch, token, transport, records, launch.assignment, label, maximum)
                transport.request("POST", with_path(target, "/scores"), body=json.dumps(score).encode(),
                                  headers={"Content-Type": SCORE_TYPE, "Authorization": f"Bearer {token}"},
                                  ok=(200, 201, 202, 204))
                break
            except Final as exc:
                if attempt == 1 and "HTTP 401" in str(exc):  # a revoked or expired token: one new one
                    tokens.forget(platform)
                    continue
                raise
        status = f"sent: {score['scoreGiven']:g}/{score['scoreMaximum']:g}"
    except PlatformError as exc:
        status = f"failed: {str(exc)[:250]}"
    records.set_score(job_id, launch.sub, target, status)
    return status
