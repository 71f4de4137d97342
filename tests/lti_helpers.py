"""Starting ``mpgrade serve`` with its LTI tool next to the tests' platform, and launching it."""

from __future__ import annotations

from typing import Any

import pytest

from grader.service.lti.registry import Platform as Registration
from grader.service.lti.registry import Registry

from .lti_platform import TOOL, Platform
from .service_helpers import make_tiny_course


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The service tests' one-function assignment, worth 100 points here (40 public, 60 hidden),
    so "graded 100" reads as it does in the issue. Overrides ``tests.test_service.tiny`` for
    the modules that import this one."""
    from grader import assignment as assignment_mod

    root = make_tiny_course(tmp_path_factory.mktemp("tiny100"))
    manifest = root / "assignment.toml"
    manifest.write_text(manifest.read_text().replace("points = 10\n", "points = 100\n"))
    for path, before, after in ((root / "exercises" / "01_add" / "test_public.py", "points(4)", "points(40)"),
                                (root / "solutions" / "01_add" / "test_hidden.py", "points(6)", "points(60)")):
        assert before in path.read_text()
        path.write_text(path.read_text().replace(before, after))
    loaded = assignment_mod.load(root)
    assert loaded.max_score == 100
    return loaded


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
