"""An LTI 1.3 platform of the tests' own, on 127.0.0.1, following the specs it stands in for.

What a real platform (Canvas, Moodle) does for a tool, and only that:

- **OIDC authorization** (IMS Security Framework 5.1.1.2): :meth:`Platform.authorize` takes the
  URL the tool redirected the browser to, checks it (``scope=openid``, ``response_type=id_token``,
  ``response_mode=form_post``, ``prompt=none``, the registered client id and redirect URI) and
  returns the form the browser would POST back: an RS256 id_token with the tool's nonce, and the state.
- **Its JWK set** at ``/jwks``.
- **The token endpoint** at ``/token`` (Security Framework 4.1): client credentials with a JWT
  client assertion, verified against the tool's published key set (``tool_jwks``), its
  ``iss``/``sub`` the client id, ``aud`` the token URL, ``exp``, and a ``jti`` never seen before.
- **NRPS 2.0** at ``/nrps/<context>``: the roster, two members a page with ``Link: rel="next"``.
- **AGS 2.0** at ``/ags/<context>/lineitems`` (GET with ``resource_id``, POST) and
  ``.../lineitems/<n>/scores``: the bearer token's scopes checked, media types checked, and a
  gradebook that behaves as Canvas's does: a Score ``FullyGraded`` with ``scoreGiven`` sets the
  grade, any other Score sets it to nil (the destructive case the tool must never trigger).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
TOOL = "http://localhost"  # the tool's URL as the platform knows it (TestClient takes any host)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Platform:
    """A platform on loopback: ``with Platform() as p:``; ``p.issuer`` is its URL."""

    client_id = "mpgrade-tool-17"
    deployment_id = "deployment-1"
    context_id = "course-context-9"

    def __init__(self, members: list[dict[str, Any]] | None = None) -> None:
        self.key = new_key()
        self.kid = "platform-key-1"
        self.tool_jwks: dict[str, Any] = {"keys": []}
        self.members = members if members is not None else [
            {"user_id": "lti-user-alice", "lis_person_sourcedid": "s-alice", "name": "Alice",
             "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"], "status": "Active"},
            {"user_id": "lti-user-bob", "lis_person_sourcedid": "s-bob", "name": "Bob", "status": "Active",
             "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]},
            {"user_id": "lti-user-teacher", "name": "T", "status": "Active",
             "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"]},
        ]
        self.lineitems: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []  # every Score POST accepted (and the refused ones' statuses)
        self.grades: dict[tuple[str, str], float | None] = {}  # (line item id, userId) -> the gradebook
        self.score_statuses: list[int] = []  # statuses to answer score POSTs with first (e.g. [500])
        self.tokens: dict[str, set[str]] = {}
        self.jtis: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.refusals: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                outer._handle(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Platform:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ what a registration needs

    @property
    def token_url(self) -> str:
        return self.issuer + "/token"

    def registration(self, **overrides: Any) -> dict[str, Any]:
        return {"issuer": self.issuer, "client_id": self.client_id, "deployment_ids": [self.deployment_id],
                "auth_login_url": self.issuer + "/authorize", "token_url": self.token_url,
                "jwks_url": self.issuer + "/jwks", "course": "cs101", "assignments": ["tiny"],
                "tool_url": TOOL, **overrides}

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    # ------------------------------------------------------------------ launches

    def claims(self, nonce: str, sub: str = "lti-user-alice", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        base = f"{self.issuer}/ags/{self.context_id}"
        return {
            "iss": self.issuer, "aud": self.client_id, "sub": sub, "iat": now, "exp": now + 300, "nonce": nonce,
            "name": "Alice Example", "email": "alice@example.edu",
            CLAIM + "message_type": "LtiResourceLinkRequest", CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": self.deployment_id, CLAIM + "target_link_uri": TOOL + "/lti/launch",
            CLAIM + "resource_link": {"id": "link-1", "title": "Multiprocessing"},
            CLAIM + "context": {"id": self.context_id, "title": "CS 101"},
            CLAIM + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
            CLAIM + "custom": {"assignment": "tiny"},
            CLAIM + "lis": {"person_sourcedid": "s-alice"},
            CLAIM + "launch_presentation": {"document_target": "iframe",
                                             "return_url": "https://school.example.edu/courses/1/modules"},
            AGS: {"scope": [SCOPE_LINEITEM, SCOPE_SCORE], "lineitems": base + "/lineitems"},
            NRPS: {"context_memberships_url": f"{self.issuer}/nrps/{self.context_id}", "service_versions": ["2.0"]},
            **extra,
        }

    def sign(self, claims: dict[str, Any], key: Any = None, headers: dict[str, Any] | None = None,
             algorithm: str = "RS256") -> str:
        return jwt.encode(claims, key if key is not None else self.key, algorithm=algorithm,
                          headers={"kid": self.kid, **(headers or {})})

    def authorize(self, location: str, **claims: Any) -> dict[str, str]:
        """The platform's answer to the tool's authorization redirect: the form_post fields."""
        assert location.startswith(self.issuer + "/authorize?"), location
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        expected = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post",
                    "prompt": "none", "client_id": self.client_id, "redirect_uri": TOOL + "/lti/launch"}
        for name, value in expected.items():
            assert query.get(name) == value, (name, query.get(name))
        assert query.get("state") and query.get("nonce") and query.get("login_hint")
        return {"id_token": self.sign(self.claims(query["nonce"], **claims)), "state": query["state"]}

    # ------------------------------------------------------------------ the HTTP side

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, parts.path))
        try:
            status, headers, payload = self._route(method, parts.path, parse_qs(parts.query), request.headers, body)
        except Refused as exc:
            with self._lock:
                self.refusals.append(str(exc))
            status, headers, payload = exc.status, {}, {"error": str(exc)}
        data = json.dumps(payload).encode() if payload is not None else b""
        request.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _bearer(self, headers: Any, scope: str) -> None:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            raise Refused(401, "no valid bearer token")
        if scope not in self.tokens[auth[7:]]:
            raise Refused(403, f"the token lacks {scope}")

    def _route(self, method: str, path: str, query: dict[str, list[str]], headers: Any,
               body: bytes) -> tuple[int, dict[str, str], Any]:
        if method == "GET" and path == "/jwks":
            return 200, {}, self.jwks()
        if method == "POST" and path == "/token":
            return self._token(headers, body)
        if method == "GET" and path == f"/nrps/{self.context_id}":
            self._bearer(headers, SCOPE_NRPS)
            if headers.get("Accept") != "application/vnd.ims.lti-nrps.v2.membershipcontainer+json":
                raise Refused(406, "NRPS answers its membership container media type only")
            page = int(query.get("page", ["0"])[0])
            chunk = self.members[page * 2:page * 2 + 2]
            extra = {}
            if (page + 1) * 2 < len(self.members):
                extra["Link"] = f'<{self.issuer}/nrps/{self.context_id}?page={page + 1}>; rel="next"'
            return 200, {"Content-Type": "application/vnd.ims.lti-nrps.v2.membershipcontainer+json", **extra}, {
                "id": f"{self.issuer}/nrps/{self.context_id}", "context": {"id": self.context_id},
                "members": chunk}
        base = f"/ags/{self.context_id}/lineitems"
        if path == base and method == "GET":
            self._bearer(headers, SCOPE_LINEITEM)
            wanted = query.get("resource_id", [None])[0]
            return 200, {"Content-Type": "application/vnd.ims.lis.v2.lineitemcontainer+json"}, [
                i for i in self.lineitems if wanted is None or i.get("resourceId") == wanted]
        if path == base and method == "POST":
            self._bearer(headers, SCOPE_LINEITEM)
            if headers.get("Content-Type") != "application/vnd.ims.lis.v2.lineitem+json":
                raise Refused(415, "a line item is application/vnd.ims.lis.v2.lineitem+json")
            item = json.loads(body)
            if not isinstance(item.get("scoreMaximum"), int | float) or item["scoreMaximum"] <= 0 or not item.get(
                    "label"):
                raise Refused(400, "a line item needs a label and a positive scoreMaximum")
            with self._lock:
                item["id"] = f"{self.issuer}{base}/{len(self.lineitems) + 1}"
                self.lineitems.append(item)
            return 201, {"Content-Type": "application/vnd.ims.lis.v2.lineitem+json"}, item
        if method == "POST" and path.startswith(base + "/") and path.endswith("/scores"):
            return self._score(path, headers, body)
        raise Refused(404, f"no {method} {path}")

    def _token(self, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            raise Refused(400, "unsupported_grant_type")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            raise Refused(400, "the client assertion type is not jwt-bearer")
        assertion = form.get("client_assertion", "")
        try:
            kid = jwt.get_unverified_header(assertion).get("kid")
            jwk = next(k for k in self.tool_jwks["keys"] if k.get("kid") == kid)
            claims = jwt.decode(assertion, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=self.token_url,
                                issuer=self.client_id, options={"require": ["exp", "iat", "jti", "sub"]})
        except (StopIteration, jwt.PyJWTError) as exc:
            raise Refused(401, f"invalid_client: {type(exc).__name__}") from None
        if claims["sub"] != self.client_id:
            raise Refused(401, "invalid_client: sub")
        with self._lock:
            if claims["jti"] in self.jtis:
                raise Refused(401, "invalid_client: jti replayed")
            self.jtis.add(claims["jti"])
            token = secrets.token_urlsafe(24)
            self.tokens[token] = set(form.get("scope", "").split())
        return 200, {}, {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                         "scope": form.get("scope", "")}

    def _score(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        self._bearer(headers, SCOPE_SCORE)
        if headers.get("Content-Type") != "application/vnd.ims.lis.v1.score+json":
            raise Refused(415, "a score is application/vnd.ims.lis.v1.score+json")
        item_id = self.issuer + path.removesuffix("/scores")
        if not any(i["id"] == item_id for i in self.lineitems):
            raise Refused(404, "no such line item")
        score = json.loads(body)
        with self._lock:
            if self.score_statuses:
                status = self.score_statuses.pop(0)
                self.scores.append({"status": status, **score})
                return status, {}, {"error": "scripted failure"}
            self.scores.append({"status": 200, **score})
            # Canvas: FullyGraded with a score sets it; anything else sets the grade to nil
            full = score.get("gradingProgress") == "FullyGraded" and "scoreGiven" in score
            self.grades[(item_id, score["userId"])] = score["scoreGiven"] if full else None
        return 200, {}, {}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
