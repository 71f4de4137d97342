"""Registered platforms: who may launch the tool, and where the tool reaches them.

One JSON file (``DATA/lti/platforms.json``, mode 0600, written atomically by ``mpgrade lti
register``), re-read when it changes so a running server needs no restart. A platform is
known by its ``issuer`` and the ``client_id`` it gave the tool; it names the deployments it
may launch from, its OIDC login, token and JWK set URLs, the mpgrade course its launches
belong to (the course of the tokens file, whose results the launch page shows) and the
assignments that course may use, and ``tool_url``: the address the platform reaches this
tool at (launch URLs must be under it).

Endpoints must be https; http is accepted for loopback hosts only (a platform on the same
machine, as in the tests). Reaching a private or loopback address still needs the server's
``--callback-allow``, like every other outgoing request.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from grader.atomic import write_atomic

FILE = "platforms.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX = 2000


class RegistryError(ValueError):
    """A registration that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class Platform:
    issuer: str
    client_id: str
    deployment_ids: tuple[str, ...]
    auth_login_url: str
    token_url: str
    jwks_url: str
    course: str
    assignments: tuple[str, ...]
    tool_url: str
    token_audience: str = ""  # the client assertion's aud when it is not the token URL
    frame_origins: tuple[str, ...] = ()  # more origins that may frame the launch page (the LMS's own host)

    def __post_init__(self) -> None:
        for name in ("issuer", "client_id"):
            value = getattr(self, name)
            if not value or len(value) > 500 or any(ord(c) < 32 for c in value):
                raise RegistryError(f"{name}: 1 to 500 printable characters")
        if not self.deployment_ids or any(not d or len(d) > 255 for d in self.deployment_ids):
            raise RegistryError("name at least one deployment id (--deployment-id), each 1 to 255 characters")
        for name in ("auth_login_url", "token_url", "jwks_url", "tool_url"):
            why = endpoint_problem(getattr(self, name))
            if why:
                raise RegistryError(f"{name}: {why}")
        for origin in self.frame_origins:
            parts = urlsplit(origin)
            if endpoint_problem(origin) or parts.path not in ("", "/") or parts.query or parts.fragment:
                raise RegistryError(f"frame origin {origin[:100]!r}: an https:// origin (scheme and host, no path)")
        if not _NAME.fullmatch(self.course):
            raise RegistryError(f"course {self.course!r}: letters, digits, '.', '_' and '-' (at most 64)")
        if not self.assignments or not all(_NAME.fullmatch(a) for a in self.assignments):
            raise RegistryError("name the assignments the course may use (--assignment NAME)")

    @property
    def audience(self) -> str:
        """The ``aud`` of the tool's client assertions."""
        return self.token_audience or self.token_url

    def launch_url(self) -> str:
        return self.tool_url.rstrip("/") + "/lti/launch"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["deployment_ids"], data["assignments"] = list(self.deployment_ids), list(self.assignments)
        data["frame_origins"] = list(self.frame_origins)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Platform:
        try:
            return cls(**{**data, "deployment_ids": tuple(map(str, data["deployment_ids"])),
                          "assignments": tuple(map(str, data["assignments"])),
                          "frame_origins": tuple(map(str, data.get("frame_origins", ())))})
        except (KeyError, TypeError) as exc:
            raise RegistryError(f"a registration is incomplete ({exc})") from None


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be a platform endpoint or the tool's address, or None."""
    if not url or len(url) > _MAX or any(ord(c) < 33 for c in url):
        return "an absolute URL without spaces"
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "no credentials in the URL"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return None
    return "must be https:// (http:// only for a loopback host)"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Registry:
    """The platforms file, re-read when it changes (``mpgrade lti register`` needs no restart)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / FILE
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._platforms: tuple[Platform, ...] = ()

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def platforms(self) -> tuple[Platform, ...]:
        with self._lock:
            stamp = self._stat()
            if stamp != self._stamp:
                self._platforms = self._read() if stamp is not None else ()
                self._stamp = stamp
            return self._platforms

    def _read(self) -> tuple[Platform, ...]:
        try:
            data = json.loads(self.path.read_text())
            return tuple(Platform.from_dict(p) for p in data.get("platforms", []))
        except (OSError, ValueError, AttributeError) as exc:
            raise RegistryError(f"{self.path} is not an LTI platforms file ({exc})") from None

    def find(self, issuer: str, client_id: str | None = None) -> Platform | None:
        """The platform of ``issuer`` and ``client_id``; without a client id (a login initiation
        may leave it out) the issuer's only registration, None when it has several."""
        found = [p for p in self.platforms() if p.issuer == issuer
                 and (client_id is None or p.client_id == client_id)]
        return found[0] if len(found) == 1 else None

    def register(self, platform: Platform) -> bool:
        """Add ``platform`` or replace the one with its issuer and client id; whether it is new."""
        with self._lock:
            current = list(self._read()) if self.path.exists() else []
            kept = [p for p in current if (p.issuer, p.client_id) != (platform.issuer, platform.client_id)]
            self._write([*kept, platform])
            return len(kept) == len(current)

    def remove(self, issuer: str, client_id: str) -> bool:
        with self._lock:
            current = list(self._read()) if self.path.exists() else []
            kept = [p for p in current if (p.issuer, p.client_id) != (issuer, client_id)]
            self._write(kept)
            return len(kept) != len(current)

    def _write(self, platforms: list[Platform]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, json.dumps({"platforms": [p.to_dict() for p in platforms]}, indent=2).encode()
                     + b"\n")  # mkstemp: mode 0600
        self.path.chmod(0o600)
