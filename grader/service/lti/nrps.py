"""Names and Role Provisioning Services 2.0: the context's roster, to map LMS users to students.

A submission reaches the service with the id the LMS (or a script) sends as ``student``; a
gradebook wants the platform's LTI user id (``sub``). The roster gives, per member, the
``user_id`` (the ``sub``), ``lis_person_sourcedid`` (the SIS id) and ``email``; each of these
is a student id the member's submissions may carry (``records``' ``lti_member_ids``). Pages are
followed through ``Link: <...>; rel="next"`` (at most ``MAX_PAGES``), each through the same
egress policy; members beyond ``MAX_MEMBERS`` are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from grader.service.lti.records import Launch, Records
from grader.service.lti.registry import Platform
from grader.service.lti.token import Tokens
from grader.service.lti.transport import PlatformError, Transport

SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
MAX_PAGES = 50
MAX_MEMBERS = 20000
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_MAX_ID = 255


def members(data: Any) -> list[tuple[str, list[str], str]]:
    """(sub, its student ids, name) of each member of one roster page with a user id."""
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        raise PlatformError("the roster has no \"members\" list")
    out = []
    for m in data["members"]:
        if not isinstance(m, dict):
            continue
        sub = m.get("user_id")
        if not isinstance(sub, str) or not sub or len(sub) > _MAX_ID:
            continue
        ids = [v for v in (m.get("lis_person_sourcedid"), m.get("email"))
               if isinstance(v, str) and 0 < len(v) <= _MAX_ID]
        name = m.get("name") if isinstance(m.get("name"), str) else ""
        out.append((sub, ids, name))
    return out


def sync(platform: Platform, launch: Launch, tokens: Tokens, transport: Transport, records: Records) -> int:
    """Fetch the launch's context roster into the records; the number of members stored."""
    if not launch.nrps_url:
        return 0
    token = tokens.get(platform, (SCOPE,))
    url: str | None = launch.nrps_url
    found: list[tuple[str, list[str], str]] = []
    for _ in range(MAX_PAGES):
        if url is None or len(found) >= MAX_MEMBERS:
            break
        answer = transport.request("GET", url, headers={"Accept": MEDIA_TYPE, "Authorization": f"Bearer {token}"})
        found += members(answer.json())
        match = _NEXT.search(answer.headers.get("link", ""))
        url = match.group(1) if match else None
    stored = records.set_members(platform.issuer, platform.client_id, launch.context_id, found[:MAX_MEMBERS])
    records.set_roster_synced(platform.issuer, platform.client_id, launch.context_id)
    return stored
