"""``mpgrade serve``, ``mpgrade worker``, ``mpgrade token``: a thin CLI over ``grader.service``.

Like the rest of the CLI: examples in every ``--help``, one-line errors on stderr with exit
code 2. The service's libraries (FastAPI, uvicorn, Celery) are imported only when one of
these commands runs, so ``mpgrade check`` works without the ``service`` extra.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from grader.cli.common import load_assignment, make_sandbox
from grader.cli.render import done, fail, local_sandbox_warning
from grader.sandbox.base import Sandbox

DEFAULT_DATA = Path(".mpgrade") / "service"

assignments_option = click.option(
    "--assignment", "assignment_dirs", metavar="DIR", multiple=True,
    help="Folder with an assignment.toml; repeat for several assignments (default: the current "
         "folder or the nearest one above). The assignment's name comes from its manifest.")
broker_help = "Celery broker, e.g. redis://127.0.0.1:6379/0 (also the result backend)."
visibility_option = click.option(
    "--visibility-timeout", type=click.FloatRange(1, None), default=3600.0, show_default=True,
    help="Seconds before Redis hands an unacknowledged job (its worker died) to another worker; "
         "must be longer than the longest grading. (The API sends a dead worker's job again "
         "sooner, once the worker's lease has run out, and never re-sends a job still queued.)")


def need_service() -> None:
    """One line instead of an ImportError when the ``service`` extra is not installed."""
    try:
        import celery  # noqa: F401
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        fail(f"the service needs extra packages ({exc.name} is missing): pip install 'mpgrade[service]' "
             "(make venv installs them)")


def load_assignments(dirs: tuple[str, ...]) -> dict[str, Any]:
    loaded = [load_assignment(d) for d in (dirs or (None,))]
    by_name: dict[str, Any] = {}
    for a in loaded:
        if a.name in by_name and by_name[a.name].root != a.root:
            fail(f"two assignments are named {a.name!r} ({by_name[a.name].root} and {a.root})")
        by_name[a.name] = a
    return by_name


def sandbox_for(kind: str, assignments: dict[str, Any], image: str | None, slots: int) -> Sandbox:
    """The sandbox of ``slots`` gradings at once, each with a container (or process) started
    ahead, as ``mpgrade grade --jobs N`` keeps them: a job then skips the container's start
    (about 0.13 s, bench/RESULTS.md). Only for one assignment: started-ahead containers are
    of one shape (the assignment's limits), and jobs of two assignments taking turns would
    each find the other's, drop them on its own time and start cold."""
    from grader.sandbox.base import SandboxUnavailable

    try:
        box = make_sandbox(kind, next(iter(assignments.values())), image,
                           warm=slots if len(assignments) == 1 else 0)
    except SandboxUnavailable as exc:
        fail(str(exc))
    if kind == "local":
        local_sandbox_warning()
    return box


def check_broker(broker: str) -> None:
    need_service()
    if not broker.startswith(("redis://", "rediss://")):
        fail(f"--broker {shown(broker)!r}: only Redis brokers are supported (redis://HOST:PORT/DB)")


def shown(broker: str) -> str:
    """The broker URL as printed: without its password (redis://:**@host:6379/0)."""
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(broker))


def ping_or_fail(broker: str, app: Any) -> None:
    from grader.service.tasks import ping

    try:
        ping(app)
    except ConnectionError as exc:
        fail(f"{shown(broker)}: {exc}")


def client_for(broker: str, visibility_timeout: float = 3600.0) -> Any:
    check_broker(broker)
    from grader.service.tasks import Client

    client = Client(broker, visibility_timeout=visibility_timeout)
    ping_or_fail(broker, client.app)
    return client


def remote_grader(broker: str, assignment: Any, options: Any, *, force: bool, sandbox: str,
                  stop: threading.Event) -> Callable[[Any], dict[str, Any] | None]:
    """For ``mpgrade grade --broker``: a ``grade_one`` that sends a job and waits for its result."""
    client = client_for(broker)
    return client.grade_function(assignment, options, force=force, sandbox_name=sandbox, stop=stop)


def database_for(data_dir: Path, database: str | None) -> Path | str:
    """``--database`` as the store takes it: a PostgreSQL URL (psycopg must be there), a SQLite
    file, or DATA/service.db; a folder or a missing driver is one line and exit code 2."""
    from grader.service.store import is_postgres_url

    if database and is_postgres_url(database):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            fail("a postgresql:// database needs psycopg: pip install 'mpgrade[service]'")
        return database
    if database:
        if Path(database).is_dir():
            fail(f"--database {database!r} is a folder: give a SQLite file or a postgresql:// URL")
        return Path(database)
    return data_dir / "service.db"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@assignments_option
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA,
              show_default=True, help="Folder for the database and the tokens file.")
@click.option("--database", metavar="FILE|URL", default=None,
              help="Jobs and results: a SQLite file (default: DATA/service.db) or a PostgreSQL URL "
                   "(postgresql://USER@HOST/DB) shared by several API processes.")
@click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Tokens file from `mpgrade token add` (default: DATA/tokens.json).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--broker", metavar="URL", default=None,
              help=broker_help + " Without it, grading runs in this process (embedded worker).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Embedded worker threads: submissions graded at once without --broker.")
@click.option("--sandbox", type=click.Choice(["docker", "local"]), default="docker", show_default=True,
              help="Embedded worker's sandbox; local is NOT a security boundary (trusted code only).")
@click.option("--image", default=None, help="Grading image (default: the one `mpgrade image build` makes).")
@click.option("--max-body-mib", type=click.FloatRange(0.01, 1024), default=5.0, show_default=True,
              help="Largest request body in MiB; larger ones get 413 before they are read.")
@click.option("--timeout", type=click.FloatRange(1, None), default=None,
              help="Seconds one whole submission may take (default: the assignment's).")
@click.option("--callback-allow", "callback_allow", metavar="CIDR", multiple=True,
              help="A network callbacks may reach although it is not public (an LMS on a private "
                   "network: 10.0.0.0/8, 192.168.1.20/32); repeatable. Without it, callbacks to "
                   "loopback, private, link-local (metadata) and reserved addresses are refused.")
@click.option("--header-timeout", type=click.FloatRange(0.5, 600), default=10.0, show_default=True,
              help="Seconds a client has for its request line and headers (a slow or stalled client "
                   "gets 408 and is disconnected).")
@click.option("--body-timeout", type=click.FloatRange(0.5, 3600), default=30.0, show_default=True,
              help="Seconds a request body may stall between two chunks before the connection is closed.")
@click.option("--keep-alive", type=click.FloatRange(1, 600), default=5.0, show_default=True,
              help="Seconds an idle kept-alive connection stays open.")
@click.option("--max-connections", type=click.IntRange(1, 100000), default=256, show_default=True,
              help="Connections and requests at once; more are answered 503 at once.")
@click.option("--min-free-mib", type=click.FloatRange(0, None), default=64.0, show_default=True,
              help="Free space needed on the database's and the uploads' disks to take a job; "
                   "below it a submission gets 503 and /v1/ready fails.")
@click.option("--metrics/--no-metrics", default=False, show_default=True,
              help="Serve Prometheus metrics at /metrics (no token: keep it off the public side of the proxy).")
@click.option("--dispatch-ahead", type=click.IntRange(1, 10000), default=4, show_default=True,
              help="With --broker: jobs handed to the broker that no worker has taken yet, at most. "
                   "The rest wait in the database and are sent by fair share between courses as "
                   "workers take jobs; raise it to about the workers' total --concurrency when "
                   "gradings take under a few seconds.")
@visibility_option
def serve(assignment_dirs: tuple[str, ...], data_dir: Path, database: str | None, tokens_file: Path | None,
          host: str, port: int, broker: str | None, workers: int, sandbox: str, image: str | None,
          max_body_mib: float, timeout: float | None, callback_allow: tuple[str, ...],
          header_timeout: float, body_timeout: float, keep_alive: float, max_connections: int,
          min_free_mib: float, metrics: bool, dispatch_ahead: int, visibility_timeout: float) -> None:
    """Run the HTTP API for LMSs: submit files, get a job id, read the JSON result.

    Without --broker, grading runs in this process (threads, Docker sandbox) and jobs and
    results are kept in SQLite: a small course needs nothing else. With --broker the API
    sends jobs to Celery workers (mpgrade worker) on any number of hosts and keeps the
    results in its own database. The OpenAPI spec is at /openapi.json, docs at /docs.
    It is also an LTI 1.3 tool for Canvas and Moodle (mpgrade lti register, docs/lti.md):
    /lti/login, /lti/launch and /lti/jwks, its key made in DATA/lti/ on the first start.

    \b
    Examples:
      mpgrade token add cs101 --assignment multiprocessing-basics   # prints a course token
      mpgrade serve                                  # http://127.0.0.1:8000, grades here in Docker
      mpgrade serve --host 0.0.0.0 --workers 2 --assignment course-a/ --assignment course-b/
      mpgrade serve --broker redis://127.0.0.1:6379/0   # graders: mpgrade worker on other hosts
      mpgrade serve --broker redis://127.0.0.1:6379/0 --dispatch-ahead 16   # 16 worker slots, short gradings
      mpgrade serve --sandbox local                  # trusted code only (demos)
      mpgrade serve --callback-allow 10.20.0.0/16    # the LMS that gets callbacks is on 10.20.x.x
      mpgrade serve --broker redis://127.0.0.1:6379/0 --database postgresql://mpgrade@db-host/mpgrade

    Put it behind a TLS-terminating reverse proxy: tokens travel in the Authorization header.
    Slow clients are cut off (--header-timeout, --body-timeout, --keep-alive, --max-connections);
    the proxy should still buffer requests and limit connections per client address.
    """
    need_service()
    import uvicorn

    from grader.service.api import ServiceConfig, create_app
    from grader.service.auth import Tokens, TokensError
    from grader.service.callbacks import networks
    from grader.service.serving import ClientLimits, server_config
    from grader.service.store import is_postgres_url, redacted, scrubbed

    try:
        networks(callback_allow)
    except ValueError as exc:
        fail(str(exc))
    assignments = load_assignments(assignment_dirs)
    tokens_path = tokens_file or data_dir / "tokens.json"
    try:
        Tokens.load(tokens_path)
    except TokensError as exc:
        fail(str(exc))
    where = database_for(data_dir, database)
    box = None
    if broker:
        check_broker(broker)
    else:
        box = sandbox_for(sandbox, assignments, image, workers)
    config = ServiceConfig(
        assignments=assignments, tokens_file=tokens_path, database=where,
        sandbox=box, broker=broker, workers=workers, max_body=int(max_body_mib * 1024 * 1024),
        visibility_timeout=visibility_timeout, timeout=timeout, callback_allow=callback_allow,
        min_free=int(min_free_mib * 1024 * 1024), metrics=metrics, lti_dir=data_dir / "lti",
        dispatch_ahead=dispatch_ahead)
    try:
        app = create_app(config)
    except Exception as exc:
        from grader.service.lti.keys import KeyFileError

        if isinstance(exc, KeyFileError):
            fail(str(exc))
        if not is_postgres_url(where):
            raise
        fail(f"cannot use the database {redacted(where)}: {type(exc).__name__}: "
             f"{scrubbed(str(exc).strip(), where)[:500]}")
    if broker:
        ping_or_fail(broker, app.state.dispatcher.client.app)
    mode = f"jobs go to the workers of {shown(broker)}" if broker else f"{workers} embedded worker(s), {sandbox} sandbox"
    done(f"mpgrade serve: {', '.join(sorted(assignments))} on http://{host}:{port} ({mode}); "
         f"database {redacted(config.database)}")
    limits = ClientLimits(header_timeout=header_timeout, body_timeout=body_timeout, keep_alive=keep_alive,
                          max_connections=max_connections)
    try:
        uvicorn.Server(server_config(app, host, port, limits, log_level="info")).run()
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--broker", metavar="URL", required=True, help=broker_help)
@assignments_option
@click.option("--sandbox", type=click.Choice(["docker", "local"]), default="docker", show_default=True,
              help="docker: one locked-down container per submission. local: NOT a security boundary.")
@click.option("--image", default=None, help="Grading image (default: the one `mpgrade image build` makes).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 256), default=None,
              help="Submissions graded at once on this host (default: the number of CPUs / 2, at least 1).")
@click.option("--name", default=None, help="Worker name (default: mpgrade-<pid>@<host>).")
@visibility_option
def worker(broker: str, assignment_dirs: tuple[str, ...], sandbox: str, image: str | None,
           concurrency: int | None, name: str | None, visibility_timeout: float) -> None:
    """Grade jobs from a Celery broker, in this host's Docker engine, like `mpgrade grade`.

    Start one per grading host (each with Docker and the grading image). A job is
    acknowledged only when its result is stored, so a worker killed mid-job loses nothing:
    its lease on the job runs out (15 s without a heartbeat) and the API sends the job again.
    A job is graded once: a redelivered job that already has a result is answered from it,
    and a copy that arrives while another worker holds the job's lease is dropped.

    \b
    Examples:
      mpgrade image build --offline                  # once per host
      mpgrade worker --broker redis://queue.example:6379/0
      mpgrade worker --broker redis://10.0.0.5:6379/0 --concurrency 4 --assignment course/
      mpgrade worker --broker redis://127.0.0.1:6379/0 --sandbox local   # trusted code only
    """
    check_broker(broker)
    from grader.service import jobs
    from grader.service.tasks import make_celery

    assignments = load_assignments(assignment_dirs)
    n = concurrency or max(1, (os.cpu_count() or 2) // 2)
    box = sandbox_for(sandbox, assignments, image, n)
    try:  # from here on the sandbox is ours to close, however the worker ends
        app = make_celery(broker, visibility_timeout=visibility_timeout, grader=jobs.Grader(assignments, box))
        ping_or_fail(broker, app)
        done(f"mpgrade worker: {', '.join(sorted(assignments))}, {n} at once, {sandbox} sandbox, "
             f"broker {shown(broker)}")
        app.worker_main(["worker", "--pool=threads", f"--concurrency={n}", "--loglevel=INFO",
                         "--without-gossip", "--without-mingle", "--without-heartbeat",
                         "--queues=mpgrade", f"--hostname={name or f'mpgrade-{os.getpid()}@%h'}"])
    finally:
        box.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def token() -> None:
    """Course tokens for `mpgrade serve`.

    \b
    Example:
      mpgrade token add cs101 --assignment multiprocessing-basics
    """


@token.command("add")
@click.argument("course")
@click.option("--assignment", "assignments", metavar="NAME", multiple=True, required=True,
              help="An assignment (its manifest name) the course may use; repeat for several.")
@click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_DATA / "tokens.json", show_default=True, help="Tokens file to add to.")
def token_add(course: str, assignments: tuple[str, ...], tokens_file: Path) -> None:
    """Make a new bearer token for COURSE and print it (only its hash is stored).

    The token can submit to and read results of the named assignments, and sees only the
    jobs its course created. A running server picks up new tokens without a restart.

    \b
    Examples:
      mpgrade token add cs101 --assignment multiprocessing-basics
      mpgrade token add cs202 --assignment multiprocessing-basics --tokens /srv/mpgrade/tokens.json
    """
    from grader.service.auth import TokensError, add_token

    try:
        secret = add_token(tokens_file, course, list(assignments))
    except (TokensError, OSError) as exc:
        fail(str(exc))
    done(f"token for course {course} added to {tokens_file}; it is shown only once:")
    click.echo(secret)
