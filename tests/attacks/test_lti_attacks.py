"""Attacks on the LTI 1.3 tool (``/lti/login``, ``/lti/launch``, and what a launch makes it fetch).

Whoever can reach the tool can POST any id_token; whoever runs a registered platform (or
breaks into one) chooses the URLs in its launches. So: a token that is not RS256 by the
platform's registered key is refused however it names its key (``alg: none``, HS256 keyed
with the public key, a ``jku``/``x5u`` to the attacker's server, which is never fetched, an
embedded ``jwk``), a launch cannot point the browser or the tool anywhere but the tool, names
and messages on the launch page stay text, oversized tokens are refused before parsing, and
gradebook or roster URLs pointing inside the network are refused by the egress policy.
Nothing here sends traffic anywhere but 127.0.0.1 (and the guard below fails a test that tries).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from tests.lti_helpers import fresh_state, launch, login, lti, platform, tiny  # noqa: F401 - fixtures
from tests.lti_platform import AGS, CLAIM, NRPS, SCOPE_LINEITEM, SCOPE_SCORE, new_key
from tests.service_helpers import wait_for
from tests.test_service import finished, serve, submit, tokens  # noqa: F401 - fixtures

INJECTION = '<script>window.__pwned=1</script>"><img src=x onerror=alert(1)>'


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail the test if anything connects to an address that is not loopback."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a connection to {address!r} was attempted")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


class KeyServer:
    """The attacker's server on loopback: serves the attacker's key set and counts requests."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.hits.append(self.path)
                data = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def post_launch(client, token: str, state: str):
    return client.post("/lti/launch", data={"id_token": token, "state": state})


def test_alg_none_is_refused(lti, platform):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    for alg in ("none", "None", "NONE"):
        response = post_launch(client, unsigned({"alg": alg, "typ": "JWT", "kid": platform.kid},
                                                platform.claims(nonce)), state)
        assert response.status_code == 401 and "RS256" in response.json()["detail"], response.text
    assert post_launch(client, platform.sign(platform.claims(nonce)), state).status_code == 200  # state unspent


def test_hs256_keyed_with_the_platforms_public_key_is_refused(lti, platform):  # noqa: F811
    """The classic key confusion: HMAC with the public key (which anyone can fetch) as secret."""
    client = lti()
    state, nonce = fresh_state(client, platform)
    public_pem = platform.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": platform.kid}
    body = unsigned(header, platform.claims(nonce)).rsplit(".", 1)[0]
    token = body + "." + b64(hmac.new(public_pem, body.encode(), hashlib.sha256).digest())
    response = post_launch(client, token, state)
    assert response.status_code == 401 and "RS256" in response.json()["detail"]


@pytest.mark.parametrize("how", ["jku", "x5u", "jwk", "jku-known-kid"])
def test_a_token_that_names_its_own_key_is_refused_and_the_key_never_fetched(lti, platform, how):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    attacker = new_key()
    attacker_jwk = {**RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True), "kid": "evil", "alg": "RS256"}
    server = KeyServer({"keys": [attacker_jwk]})
    try:
        headers: dict[str, Any] = {"kid": "evil"}
        if how in ("jku", "x5u"):
            headers[how] = server.url
        elif how == "jwk":
            headers["jwk"] = attacker_jwk
        else:
            headers = {"kid": platform.kid, "jku": server.url}
        response = post_launch(client, platform.sign(platform.claims(nonce), key=attacker, headers=headers), state)
        assert response.status_code == 401, response.text
        assert server.hits == []  # never fetched
        # without the header, the attacker's key is simply not the platform's
        plain = post_launch(client, platform.sign(platform.claims(nonce), key=attacker), state)
        assert plain.status_code == 401 and "signature" in plain.json()["detail"]
        assert server.hits == []
    finally:
        server.close()


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
def test_even_the_platforms_own_signature_is_refused_with_a_key_in_the_header(lti, platform, header):  # noqa: F811
    """A header that brings its own key is refused outright, not merely ignored: the tool
    trusts the registered key set only, and says so rather than guessing what was meant."""
    client = lti()
    state, nonce = fresh_state(client, platform)
    value: Any = {"kty": "RSA", "n": "AQAB", "e": "AQAB"} if header == "jwk" else (
        ["MIIB"] if header == "x5c" else "http://127.0.0.1:9/keys")
    response = post_launch(client, platform.sign(platform.claims(nonce), headers={header: value}), state)
    assert response.status_code == 401 and "its own key" in response.json()["detail"], response.text


def test_tokens_with_random_kids_do_not_make_the_tool_hammer_the_platform(lti, platform):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    attacker = new_key()
    for n in range(8):
        forged = platform.sign(platform.claims(nonce), key=attacker, headers={"kid": f"rotated-{n}"})
        assert post_launch(client, forged, state).status_code == 401
    assert platform.requests.count(("GET", "/jwks")) <= 2


def test_a_script_in_the_name_claim_or_the_feedback_stays_text(lti, platform, tokens):  # noqa: F811
    client = lti()
    source = f"def add(a, b):\n    raise ValueError({INJECTION!r})\n"
    response = submit(client, tokens["cs101"], "tiny", {"add.py": source.encode()}, student="s-alice")
    finished(client, tokens["cs101"], response.json()["job_id"])
    page = launch(client, platform, name=INJECTION)
    assert page.status_code == 200, page.text
    assert "<script>window.__pwned" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page.text  # the name, shown
    assert page.text.count("<script") == 0 and "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("target", [
    "https://evil.example/lti/launch", "http://localhost.evil.example/lti/launch",
    "http://localhost@evil.example/lti/launch", "http://localhost:8080/lti/launch",
    "https://localhost/lti/launch", "javascript:alert(1)", "//evil.example/", "http://localhost/../x",
])
def test_a_login_whose_target_is_off_site_is_refused_without_a_redirect(lti, platform, target):  # noqa: F811
    client = lti()
    response = login(client, platform, target_link_uri=target)
    assert response.status_code == 400 and "location" not in response.headers, response.text
    assert "target_link_uri" in response.json()["detail"]


def test_a_signed_launch_whose_target_is_off_site_is_refused(lti, platform):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    claims = platform.claims(nonce, **{CLAIM + "target_link_uri": "https://evil.example/phish"})
    response = post_launch(client, platform.sign(claims), state)
    assert response.status_code == 400 and "target_link_uri" in response.json()["detail"]


def test_an_oversized_token_is_refused_before_it_is_parsed(lti, platform):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    huge = platform.sign(platform.claims(nonce, padding="x" * 200_000))
    response = post_launch(client, huge, state)
    assert response.status_code == 413, response.text
    assert post_launch(client, platform.sign(platform.claims(nonce)), state).status_code == 200  # unspent


@pytest.mark.parametrize("sub", ["alice\nx", "a" * 300, "", "\u0000"])
def test_a_sub_that_is_not_a_short_plain_string_is_refused(lti, platform, sub):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    response = post_launch(client, platform.sign(platform.claims(nonce, sub=sub)), state)
    assert response.status_code in (400, 401), response.text


def test_gradebook_and_roster_urls_inside_the_network_are_refused(lti, platform, tokens):  # noqa: F811
    """A platform (or whoever holds its key) names the URLs the tool then sends its bearer
    tokens and scores to; pointed at cloud metadata or a private address they are refused,
    and the launch page still works."""
    client = lti()
    page = launch(client, platform, **{
        AGS: {"scope": [SCOPE_LINEITEM, SCOPE_SCORE], "lineitems": "http://169.254.169.254/latest/meta-data/"},
        NRPS: {"context_memberships_url": "http://10.0.0.1/roster", "service_versions": ["2.0"]},
        CLAIM + "lis": {"person_sourcedid": "s-alice"}})
    assert page.status_code == 200, page.text
    response = submit(client, tokens["cs101"], "tiny", {"add.py": b"def add(a, b):\n    return a + b\n"},
                      student="s-alice")
    job_id = finished(client, tokens["cs101"], response.json()["job_id"])["job_id"]
    records = client.app.state.lti.records
    [entry] = wait_for(lambda: records.scores(job_id), 30, what="the refused score's record")
    assert entry["status"].startswith("failed: blocked: ") and "169.254.169.254" in entry["status"], entry
    assert platform.scores == []


def test_a_launch_for_an_assignment_the_course_may_not_use_is_refused(lti, platform):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    claims = platform.claims(nonce, **{CLAIM + "custom": {"assignment": "../../etc/passwd"}})
    response = post_launch(client, platform.sign(claims), state)
    assert response.status_code == 400 and "assignment" in response.json()["detail"]


def test_a_second_platform_cannot_launch_with_the_first_ones_login(lti, platform):  # noqa: F811
    """A state is bound to the platform it was issued for: another registered issuer's
    token (signed by its own, valid key) does not fit it."""
    from tests.lti_platform import Platform

    with Platform() as other:
        client = lti()
        from grader.service.lti.registry import Platform as Registration

        client.app.state.lti.registry.register(Registration.from_dict(other.registration()))
        state, nonce = fresh_state(client, platform)
        response = post_launch(client, other.sign(other.claims(nonce)), state)
        assert response.status_code == 401, response.text


@pytest.mark.parametrize("return_url", [
    "https://lms.example;script-src *", "https://lms.example,evil.example", "https://*.example/",
    "https://lms.example 'unsafe-inline'", "javascript:alert(1)", "data:text/html,x",
])
def test_a_return_url_cannot_widen_the_launch_pages_policy(lti, platform, return_url):  # noqa: F811
    client = lti()
    page = launch(client, platform, **{CLAIM + "launch_presentation": {"return_url": return_url}})
    assert page.status_code == 200, page.text
    policy = page.headers["content-security-policy"]
    assert policy.endswith(f"frame-ancestors {platform.issuer}"), policy
    assert "script-src" not in policy and "unsafe-inline'" not in policy.split("style-src")[0]


def test_a_flood_of_logins_is_capped(lti, platform, monkeypatch):  # noqa: F811
    """``/lti/login`` takes no token: each call stores a state, so their number is capped."""
    from grader.service.lti import records

    monkeypatch.setattr(records, "MAX_STATES", 3)
    client = lti()
    assert [login(client, platform).status_code for _ in range(4)] == [302, 302, 302, 503]
    assert "too many logins" in login(client, platform).json()["detail"]
