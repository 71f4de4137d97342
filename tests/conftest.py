"""Shared fixtures of the grader's own tests."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from grader import assignment as assignment_mod

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def course() -> assignment_mod.Assignment:
    """The bundled multiprocessing assignment."""
    return assignment_mod.load(REPO)


@pytest.fixture
def make_module(tmp_path: Path):
    """Write a student module into a fresh folder: ``make_module("name", source) -> folder``."""

    def make(name: str, source: str) -> Path:
        folder = tmp_path / "student"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.py").write_text(source)
        return folder

    return make


@pytest.fixture
def course_copy(tmp_path: Path) -> Path:
    """A throwaway copy of the course repository's assignment (manifest, exercises, solutions)."""
    dest = tmp_path / "course"
    dest.mkdir()
    shutil.copy(REPO / "assignment.toml", dest)
    shutil.copytree(REPO / "exercises", dest / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "solutions", dest / "solutions", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="session")
def docker_client():
    """A Docker client; skipped without an engine, except under CI=true where that is a failure."""
    from grader.sandbox.base import SandboxUnavailable
    from grader.sandbox.docker import connect

    try:
        return connect(timeout=30)
    except SandboxUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but Docker is not usable: {exc}")
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="session")
def grading_image(docker_client) -> str:
    """The grading image for the current sources, built offline if it is missing."""
    from grader import image

    root = image.checkout_root(REPO)
    tag = image.image_tag(root)
    if not image.image_exists(docker_client, tag):
        if not IN_CI and not os.environ.get("MPGRADE_BUILD_IMAGE"):
            pytest.skip(f"grading image {tag} not built (make image, or set MPGRADE_BUILD_IMAGE=1)")
        image.build_image(root, offline=True, client=docker_client)
    return tag


_DATABASES = itertools.count(1)


def _pg_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries (initdb, pg_ctl): $MPGRADE_PG_BIN, Debian's
    /usr/lib/postgresql/N/bin (newest), or the PATH."""
    if os.environ.get("MPGRADE_PG_BIN"):
        return Path(os.environ["MPGRADE_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server of our own (never the distro's cluster), on 127.0.0.1 and
    a free port, trust authentication, stopped and deleted at the end: yields a URL without a
    database name. Skipped without PostgreSQL binaries or psycopg, except under CI=true."""
    import socket
    import subprocess
    import tempfile

    def unavailable(why: str):
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL tests cannot run: {why}")
        pytest.skip(why)

    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[service]')")
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        unavailable("no PostgreSQL server binaries (apt-get install postgresql, or set MPGRADE_PG_BIN)")

    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="mpgrade-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres system user
        import pwd

        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            unavailable("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=timeout)

    with socket.socket() as s:  # a free port (the kernel picks it)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = False
    try:
        done = run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--no-sync", "--no-instructions")
        assert done.returncode == 0, f"initdb failed:\n{done.stdout}\n{done.stderr}"
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=60 -c shared_buffers=16MB")
        done = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                   "-w", "-t", "60", "start", timeout=90)
        started = True
        assert done.returncode == 0, (f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n"
                                      f"{log.read_text() if log.exists() else ''}")
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        if started:
            try:
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop",
                    timeout=45)
            except subprocess.TimeoutExpired:
                pass
            pid_file = data / "postmaster.pid"
            if pid_file.exists():  # pg_ctl could not stop it: the postmaster's own pid, killed
                import signal

                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    pass
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A fresh, empty database on the test server, for one test: its URL."""
    import re

    import psycopg

    name = f"t{next(_DATABASES)}_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True, connect_timeout=10) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"
