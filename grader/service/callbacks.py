"""POSTing a finished job to the callback URL an LMS gave with the submission.

The server makes an outgoing HTTP request to whatever http(s) URL a course's token holder
supplies: that is the point of a callback, and also why only http and https are accepted,
redirects are not followed, the body is only ever the result (or an LTI AGS score object),
and the attempt is bounded in time. Operators who must keep the server away from internal
addresses should filter its egress (README "Grading as a service", security notes).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

FORMATS = ("result", "lti")
ATTEMPTS = 3
TIMEOUT = 10.0
MAX_URL = 2000


def check_url(url: str) -> str | None:
    """Why a callback URL is refused, or None."""
    if len(url) > MAX_URL:
        return f"the callback URL is longer than {MAX_URL} characters"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"the callback URL cannot be parsed ({exc})"
    if parts.scheme not in ("http", "https"):
        return "the callback URL must be http:// or https://"
    if not parts.hostname:
        return "the callback URL has no host"
    if parts.username or parts.password:
        return "the callback URL must not carry credentials"
    return None


def body(document: dict[str, Any], fmt: str) -> tuple[dict[str, Any], str]:
    """What is POSTed and its content type: the result document, or an LTI AGS Score."""
    if fmt == "lti":
        from grader.export import lti_score

        return lti_score(document), "application/vnd.ims.lis.v1.score+json"
    return document, "application/json"


def post(url: str, document: dict[str, Any], fmt: str = "result", *, attempts: int = ATTEMPTS,
         timeout: float = TIMEOUT, backoff: float = 1.0) -> str:
    """Deliver once (retrying 5xx and network errors); a short status for the job record."""
    import httpx

    payload, content_type = body(document, fmt)
    last = "not sent"
    for attempt in range(attempts):
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                response = client.post(url, json=payload, headers={"Content-Type": content_type,
                                                                   "User-Agent": "mpgrade"})
            last = f"HTTP {response.status_code}"
            if response.status_code < 500:
                return ("delivered: " if response.is_success else "refused: ") + last
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {str(exc)[:200]}"
        if attempt + 1 < attempts:
            time.sleep(backoff * 2 ** attempt)
    return "failed: " + last
