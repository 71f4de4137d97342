"""``mpgrade lti``: register LTI 1.3 platforms (Canvas, Moodle) with ``mpgrade serve``.

The registrations live in ``DATA/lti/platforms.json`` (mode 0600) beside the tool's key; a
running server reads a changed file without a restart. docs/lti.md walks through the LMS side.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from grader.cli.render import done, fail
from grader.cli.service import DEFAULT_DATA, need_service

data_option = click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
                           default=DEFAULT_DATA, show_default=True,
                           help="The service's data folder (as given to mpgrade serve --data).")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def lti() -> None:
    """mpgrade as an LTI 1.3 tool: register the platforms that may launch it (docs/lti.md).

    \b
    Examples:
      mpgrade lti jwks                               # the tool's public key set (also GET /lti/jwks)
      mpgrade lti register --issuer https://canvas.instructure.com --client-id 10000000000123 \\
          --deployment-id 42:8865aa05b4b79b64a91a86042e43af5ea8ae79eb --course cs101 \\
          --assignment multiprocessing-basics --tool-url https://grader.example.edu \\
          --login-url https://sso.canvaslms.com/api/lti/authorize_redirect \\
          --token-url https://sso.canvaslms.com/login/oauth2/token \\
          --jwks-url https://sso.canvaslms.com/api/lti/security/jwks
      mpgrade lti list
      mpgrade lti remove --issuer https://canvas.instructure.com --client-id 10000000000123
    """


@lti.command("register")
@click.option("--issuer", required=True, help="The platform's issuer (iss), e.g. https://canvas.instructure.com.")
@click.option("--client-id", required=True, help="The client id the platform gave the tool.")
@click.option("--deployment-id", "deployment_ids", multiple=True, required=True,
              help="A deployment id launches may come from; repeatable.")
@click.option("--login-url", required=True, help="The platform's OIDC authorization (auth login) URL.")
@click.option("--token-url", required=True, help="The platform's OAuth2 access token URL.")
@click.option("--jwks-url", required=True, help="The platform's public key set URL.")
@click.option("--token-audience", default="", help="The aud of the tool's client assertions, when the platform "
                                                   "wants other than the token URL.")
@click.option("--course", required=True, help="The mpgrade course launches belong to (as in mpgrade token add).")
@click.option("--assignment", "assignments", metavar="NAME", multiple=True, required=True,
              help="An assignment launches may open (custom parameter assignment=NAME); repeatable.")
@click.option("--frame-origin", "frame_origins", metavar="URL", multiple=True,
              help="An origin that may show the launch page in a frame besides the issuer's and the login "
                   "URL's (a self-hosted LMS on another host); repeatable. Canvas's own host comes signed "
                   "with each launch.")
@click.option("--tool-url", required=True, help="Where the platform reaches mpgrade serve, e.g. "
                                               "https://grader.example.edu (launch: TOOL_URL/lti/launch).")
@data_option
def register(issuer: str, client_id: str, deployment_ids: tuple[str, ...], login_url: str, token_url: str,
             jwks_url: str, token_audience: str, course: str, assignments: tuple[str, ...],
             frame_origins: tuple[str, ...], tool_url: str, data_dir: Path) -> None:
    """Register a platform (or replace its registration: same issuer and client id).

    \b
    Example (Moodle; the values are on the tool's "View configuration details" page):
      mpgrade lti register --issuer https://moodle.example.edu --client-id AbC123xYz \\
          --deployment-id 1 --course cs101 --assignment multiprocessing-basics \\
          --tool-url https://grader.example.edu \\
          --login-url https://moodle.example.edu/mod/lti/auth.php \\
          --token-url https://moodle.example.edu/mod/lti/token.php \\
          --jwks-url https://moodle.example.edu/mod/lti/certs.php
    """
    need_jose()
    from grader.service.lti.registry import Platform, Registry, RegistryError

    try:
        platform = Platform(issuer=issuer, client_id=client_id, deployment_ids=tuple(deployment_ids),
                            auth_login_url=login_url, token_url=token_url, jwks_url=jwks_url, course=course,
                            assignments=tuple(dict.fromkeys(assignments)), tool_url=tool_url,
                            token_audience=token_audience, frame_origins=tuple(frame_origins))
        new = Registry(data_dir / "lti").register(platform)
    except (RegistryError, OSError) as exc:
        fail(str(exc))
    base = tool_url.rstrip("/")
    done(f"{'registered' if new else 'updated'} {issuer} (client {client_id}) for course {course} in "
         f"{data_dir / 'lti' / 'platforms.json'}; give the platform: login {base}/lti/login, "
         f"launch (redirect) {base}/lti/launch, key set {base}/lti/jwks")


@lti.command("list")
@data_option
def list_platforms(data_dir: Path) -> None:
    """The registered platforms, as JSON (no secrets: a registration has none)."""
    from grader.service.lti.registry import Registry, RegistryError

    try:
        platforms = Registry(data_dir / "lti").platforms()
    except RegistryError as exc:
        fail(str(exc))
    click.echo(json.dumps([p.to_dict() for p in platforms], indent=2))


@lti.command("remove")
@click.option("--issuer", required=True)
@click.option("--client-id", required=True)
@data_option
def remove(issuer: str, client_id: str, data_dir: Path) -> None:
    """Remove a registration: its launches are refused from now on."""
    from grader.service.lti.registry import Registry, RegistryError

    try:
        gone = Registry(data_dir / "lti").remove(issuer, client_id)
    except (RegistryError, OSError) as exc:
        fail(str(exc))
    if not gone:
        fail(f"no registration of {issuer} with client id {client_id}")
    done(f"removed {issuer} (client {client_id})")


@lti.command("jwks")
@click.option("--pem", is_flag=True, help="Print the public key as PEM instead (for a pasted-key field).")
@data_option
def jwks(pem: bool, data_dir: Path) -> None:
    """Print the tool's public key set (made now if the data folder has no key yet).

    Platforms that take a pasted key rather than a URL (Moodle's "Public key" field) need
    the key itself: ``mpgrade lti jwks --pem`` prints it as PEM.
    """
    need_jose()
    from grader.service.lti.keys import ToolKey

    try:
        key = ToolKey.load_or_create(data_dir / "lti")
    except (OSError, ValueError) as exc:
        fail(str(exc))
    if pem:
        from cryptography.hazmat.primitives import serialization

        click.echo(key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode().rstrip())
        return
    click.echo(json.dumps(key.jwks(), indent=2))


def need_jose() -> None:
    """One line instead of an ImportError when PyJWT or cryptography is missing."""
    need_service()
    try:
        import cryptography  # noqa: F401
        import jwt  # noqa: F401
    except ImportError as exc:
        fail(f"the LTI tool needs extra packages ({exc.name} is missing): pip install 'mpgrade[service]'")
