"""Starting ``mpgrade serve`` with its LTI tool next to the tests' platform, and launching it."""

from __future__ import annotations

from typing import Any

import pytest

from grader.service.lti.registry import Platform as Registration
from grader.service.lti.registry import Registry

from .lti_platform import TOOL, Platform


@pytest.fixture
def platform():
    with Platform() as p:
        yield p


@pytest.fixture
def lti(serve, platform, tmp_path):
    """``lti(**config) -> TestClient``: the service with its LTI tool, the platform registered
    (as ``mpgrade lti register`` does) and given the tool's key set (as an admin pastes its URL)."""

    def start(registration: dict[str, Any] | None = None, **overrides: Any):
        folder = tmp_path / "lti"
        Registry(folder).register(Registration.from_dict(registration or platform.registration()))
        client = serve(lti_dir=folder, **overrides)
        platform.tool_jwks = client.get("/lti/jwks").json()
        return client

    return start


def login(client, platform: Platform, **params: str):
    """The platform starts the OIDC login; the tool's answer (a redirect, or a refusal)."""
    query = {"iss": platform.issuer, "login_hint": "opaque-hint-1", "target_link_uri": TOOL + "/lti/launch",
             "client_id": platform.client_id, "lti_message_hint": "m1", **params}
    return client.get("/lti/login", params=query, follow_redirects=False)


def launch(client, platform: Platform, **claims: Any):
    """A whole launch as the browser makes it: login, the platform's authorization, the POST back."""
    started = login(client, platform)
    assert started.status_code == 302, started.text
    return client.post("/lti/launch", data=platform.authorize(started.headers["location"], **claims))


def fresh_state(client, platform: Platform) -> tuple[str, str]:
    """A login's (state, nonce), for tokens the test makes itself."""
    from urllib.parse import parse_qs, urlsplit

    started = login(client, platform)
    assert started.status_code == 302, started.text
    query = parse_qs(urlsplit(started.headers["location"]).query)
    return query["state"][0], query["nonce"][0]
