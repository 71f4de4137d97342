"""The tool's signing key: made on first start, kept under the service's data folder (0600).

The platform checks the tool's client assertions (``token``) against the public half,
published at ``/lti/jwks``. The key is an RSA 2048 key (what LTI 1.3 platforms accept: RS256),
made by ``cryptography`` and written as PKCS#8 PEM with ``O_CREAT | O_EXCL`` and mode 0600,
so two processes starting at once end with one key. Its ``kid`` is the RFC 7638 thumbprint
of the public key, so the same key always has the same id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("mpgrade.service")
KEY_FILE = "tool-key.pem"
ALGORITHM = "RS256"


class KeyFileError(ValueError):
    """The tool's key file cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class ToolKey:
    """The private key (never leaves this process) and its public JWK."""

    private: Any  # cryptography's RSAPrivateKey
    kid: str

    @classmethod
    def load_or_create(cls, folder: Path) -> ToolKey:
        """The key in ``folder``, made there if there is none yet."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / KEY_FILE
        if not path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                pass  # another process made it first: use that one
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(pem)
                log.info("made the LTI tool key %s", path)
        if path.stat().st_mode & 0o077:
            log.warning("the LTI tool key %s was readable by others; it is now mode 0600", path)
            path.chmod(0o600)
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path} is not an unencrypted PEM private key ({exc}); move it away and "
                               "start again to make a new one (platforms then fetch the new key set)") from None
        if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < 2048:
            raise KeyFileError(f"{path} is not an RSA key of 2048 bits or more; move it away to make a new one")
        return cls(private, thumbprint(public_jwk(private)))

    def jwks(self) -> dict[str, Any]:
        """The public key set the platform is given (``/lti/jwks``)."""
        return {"keys": [{**public_jwk(self.private), "kid": self.kid, "alg": ALGORITHM, "use": "sig"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS of ``claims`` (RS256, this key's ``kid`` in the header)."""
        import jwt

        return jwt.encode(claims, self.private, algorithm=ALGORITHM, headers={"kid": self.kid})


def public_jwk(private: Any) -> dict[str, Any]:
    """The public half of an RSA key as a JWK (kty, n, e)."""
    from jwt.algorithms import RSAAlgorithm

    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {"kty": jwk["kty"], "n": jwk["n"], "e": jwk["e"]}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, no spaces, base64url."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
