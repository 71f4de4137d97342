"""OIDC login initiation and the launch: the id_token checked before anything is believed.

LTI 1.3's launch is an OpenID Connect implicit flow started by the platform
(IMS Security Framework 1.0 section 5.1.1):

1. The platform sends the browser to ``/lti/login`` with ``iss``, ``login_hint``,
   ``target_link_uri`` (and maybe ``client_id``, ``lti_message_hint``, ``lti_deployment_id``).
   :func:`begin` checks that the issuer is registered and that the target is this tool, makes
   a random ``state`` and ``nonce`` (stored, usable once, for ten minutes) and answers with the
   redirect to the platform's authorization URL.
2. The platform POSTs ``id_token`` and ``state`` to ``/lti/launch``. :func:`validate` refuses
   an oversized token, a state it did not issue (or issued and already used), a header that
   is not plain RS256 (``alg: none``, HS256 with the public key as secret) or that carries its
   own key (``jwk``, ``jku``, ``x5u``, ``x5c``: never followed), a signature that is not the
   platform's key (from its registered JWK set), a wrong ``iss``, an ``aud`` without this
   tool's client id (and an ``azp`` that is not it when there are several audiences), an
   expired or future token, a nonce that is not the state's or was seen before, a deployment
   the registration does not name, a message that is not a resource link launch of LTI
   1.3.0, and a ``target_link_uri`` that is not under the tool's registered URL.

PyJWT checks the signature and the registered claims; this module decides which key, which
algorithm and which values, and checks the LTI claims.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from grader.service.lti.platform_keys import PlatformKeys
from grader.service.lti.records import Launch, Records, State
from grader.service.lti.registry import Platform, Registry
from grader.service.lti.transport import PlatformError

MAX_TOKEN = 64 * 1024  # characters; real launches are a few kB
LEEWAY = 60  # seconds of clock difference allowed for exp and iat
CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit")
_MAX_ID = 255


class LaunchError(Exception):
    """A login or launch that is refused: ``status`` (400, 401, 413) and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Accepted:
    """A validated launch: what is recorded, and what the launch page shows."""

    launch: Launch
    platform: Platform
    name: str
    roles: tuple[str, ...]
    student_ids: tuple[str, ...]
    claims: dict[str, Any] = field(repr=False)
    framed_by: tuple[str, ...] = ()  # the origin of the launch's return URL (the LMS page around the tool)


def on_site(url: str, platform: Platform) -> bool:
    """Whether ``url`` is this tool: same scheme, host and port as ``tool_url``, path under it."""
    try:
        target, tool = urlsplit(url), urlsplit(platform.tool_url)
        same = (target.scheme, target.hostname, target.port) == (tool.scheme, tool.hostname, tool.port)
    except ValueError:
        return False
    prefix = tool.path.rstrip("/") + "/"
    return same and not target.username and (target.path + "/").startswith(prefix) and ".." not in target.path


def begin(params: dict[str, str], registry: Registry, records: Records) -> str:
    """Step 1: the URL of the platform's authorization endpoint to redirect the browser to."""
    issuer, hint, target = params.get("iss", ""), params.get("login_hint", ""), params.get("target_link_uri", "")
    if not issuer or not hint or not target:
        raise LaunchError(400, "a login initiation needs iss, login_hint and target_link_uri")
    platform = registry.find(issuer, params.get("client_id") or None)
    if platform is None:
        raise LaunchError(400, "no platform with this issuer (and client_id) is registered: "
                               "mpgrade lti register (docs/lti.md)")
    deployment = params.get("lti_deployment_id")
    if deployment and deployment not in platform.deployment_ids:
        raise LaunchError(400, "this deployment id is not registered for the platform")
    if not on_site(target, platform):
        raise LaunchError(400, "target_link_uri is not this tool (it must be under the registered tool URL)")
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    if not records.add_state(State(state, nonce, platform.issuer, platform.client_id, target)):
        raise LaunchError(503, "too many logins are in progress; try again in a few minutes")
    query = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
             "client_id": platform.client_id, "redirect_uri": platform.launch_url(), "login_hint": hint,
             "state": state, "nonce": nonce}
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    separator = "&" if urlsplit(platform.auth_login_url).query else "?"
    return platform.auth_login_url + separator + urlencode(query)


def validate(id_token: str, state_value: str, registry: Registry, records: Records, keys: PlatformKeys,
             assignments: frozenset[str]) -> Accepted:
    """Step 2: the launch, if every check passes (see the module's docstring); LaunchError if not.

    The state is consumed and the nonce remembered only once the signature and claims are
    good, so a forged token cannot spend a real student's login."""
    import jwt

    if len(id_token) > MAX_TOKEN:
        raise LaunchError(413, f"the id_token is larger than {MAX_TOKEN} characters")
    state = records.state(state_value) if 0 < len(state_value) <= 200 else None
    if state is None:
        raise LaunchError(400, "unknown or expired state: start the launch again from the LMS")
    platform = registry.find(state.issuer, state.client_id)
    if platform is None:
        raise LaunchError(400, "the platform of this login is no longer registered")
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.DecodeError as exc:
        raise LaunchError(400, f"the id_token is not a JWT ({exc})") from None
    if header.get("alg") != "RS256":
        raise LaunchError(401, f"the id_token must be signed with RS256, not {str(header.get('alg'))[:20]!r}")
    carried = sorted(k for k in _KEY_HEADERS if k in header)
    if carried:
        raise LaunchError(401, f"the id_token names its own key or extensions ({', '.join(carried)}): only the "
                               "platform's registered key set is trusted")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 200):
        raise LaunchError(401, "the id_token's kid is not a short string")
    try:
        key = keys.key(platform.jwks_url, kid)
    except PlatformError as exc:
        raise LaunchError(401, f"no key of the platform to check the id_token with: {exc}") from None
    try:
        claims = jwt.decode(id_token, key, algorithms=["RS256"], audience=platform.client_id,
                            issuer=platform.issuer, leeway=LEEWAY,
                            options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]})
    except jwt.ExpiredSignatureError:
        raise LaunchError(401, "the id_token has expired") from None
    except jwt.InvalidAudienceError:
        raise LaunchError(401, "the id_token is not for this tool (aud is not its client id)") from None
    except jwt.InvalidIssuerError:
        raise LaunchError(401, "the id_token's issuer is not the platform of this login") from None
    except jwt.InvalidSignatureError:
        raise LaunchError(401, "the id_token's signature is not the platform's") from None
    except jwt.PyJWTError as exc:
        raise LaunchError(401, f"the id_token is not valid ({type(exc).__name__}: {str(exc)[:200]})") from None
    accepted = _lti_claims(claims, platform, assignments)
    if not isinstance(claims["nonce"], str) or not hmac.compare_digest(claims["nonce"].encode(), state.nonce.encode()):
        raise LaunchError(401, "the id_token's nonce is not the one sent with this login")
    if not records.consume_state(state.state):
        raise LaunchError(400, "this login was already used: start the launch again from the LMS")
    if not records.use_nonce(platform.issuer, claims["nonce"], int(claims["exp"])):
        raise LaunchError(401, "the id_token's nonce was used before (a replayed launch)")
    return accepted


def _text(claims: dict[str, Any], name: str, most: int = _MAX_ID) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > most or any(ord(c) < 32 for c in value):
        raise LaunchError(400, f"the launch's {name.removeprefix(CLAIM)} is missing or not a short string")
    return value


def _url(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 2000:
        return None
    return value if urlsplit(value).scheme in ("http", "https") else None


def _lti_claims(claims: dict[str, Any], platform: Platform, assignments: frozenset[str]) -> Accepted:
    """The LTI claims of a signed id_token: which deployment, place, person and assignment."""
    if claims.get(CLAIM + "message_type") != "LtiResourceLinkRequest":
        raise LaunchError(400, "only resource link launches (LtiResourceLinkRequest) are taken")
    if claims.get(CLAIM + "version") != "1.3.0":
        raise LaunchError(400, "the launch is not LTI 1.3.0")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != platform.client_id:
        raise LaunchError(401, "the id_token has several audiences and its azp is not this tool")
    deployment = _text(claims, CLAIM + "deployment_id")
    if deployment not in platform.deployment_ids:
        raise LaunchError(401, "the launch's deployment id is not registered for the platform")
    sub = _text(claims, "sub")
    target = _text(claims, CLAIM + "target_link_uri", 2000)
    if not on_site(target, platform):
        raise LaunchError(400, "target_link_uri is not this tool (it must be under the registered tool URL)")
    link = claims.get(CLAIM + "resource_link")
    context = claims.get(CLAIM + "context") or {}
    custom = claims.get(CLAIM + "custom") or {}
    if not isinstance(link, dict) or not isinstance(context, dict) or not isinstance(custom, dict):
        raise LaunchError(400, "the launch's resource_link, context or custom claim is not an object")
    link_id = _text(link, "id")
    context_id = _text(context, "id") if "id" in context else "link:" + link_id
    assignment = custom.get("assignment")
    if assignment is None and len(platform.assignments) == 1:
        assignment = platform.assignments[0]
    if not isinstance(assignment, str) or assignment not in platform.assignments or assignment not in assignments:
        raise LaunchError(400, "the launch names no assignment of this course: set the custom parameter "
                               "assignment=NAME in the LMS (docs/lti.md)")
    ags = claims.get(AGS_CLAIM) if isinstance(claims.get(AGS_CLAIM), dict) else {}
    nrps = claims.get(NRPS_CLAIM) if isinstance(claims.get(NRPS_CLAIM), dict) else {}
    scopes = tuple(s for s in ags.get("scope", []) if isinstance(s, str))[:10] if isinstance(
        ags.get("scope"), list) else ()
    roles = tuple(r for r in claims.get(CLAIM + "roles", []) if isinstance(r, str))[:50] if isinstance(
        claims.get(CLAIM + "roles"), list) else ()
    lis = claims.get(CLAIM + "lis") if isinstance(claims.get(CLAIM + "lis"), dict) else {}
    others = [v for v in (lis.get("person_sourcedid"), claims.get("email"))
              if isinstance(v, str) and 0 < len(v) <= _MAX_ID]
    name = claims.get("name") or " ".join(str(claims.get(k, "")) for k in ("given_name", "family_name")).strip()
    launch = Launch(platform.issuer, platform.client_id, deployment, context_id, sub, platform.course, assignment,
                    link_id, _url(ags.get("lineitems")), _url(ags.get("lineitem")), scopes,
                    _url(nrps.get("context_memberships_url")))
    presentation = claims.get(CLAIM + "launch_presentation")
    back = _url(presentation.get("return_url")) if isinstance(presentation, dict) else None
    return Accepted(launch, platform, str(name)[:200], roles, tuple(dict.fromkeys([sub, *others])), claims,
                    (back,) if back else ())
