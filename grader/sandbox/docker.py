"""The Docker sandbox: one fresh, locked-down container per job.

Inputs go in through a read-only bind mount of an owner-only folder; the result comes out as
the container's stdout (the harness writes nothing else there), capped by the log driver and
by this module. The host never copies files out of the container and never unpickles
anything. Every container is labelled, removed in a ``finally``, and swept at start-up if a
crashed run left one behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from grader.sandbox.base import PYTHON, Job, Outcome, SandboxUnavailable, write_files

LABEL = "mpgrade.grader"
BATCH_LABEL = "mpgrade.batch"
IMAGE_PYTHON = "/opt/mpgrade/bin/python"
# Student code runs as a uid of its own per container: process limits (RLIMIT_NPROC) are counted
# per uid across the whole kernel, so a shared uid would let one fork bomb starve every other
# submission graded at the same time.
STUDENT_UIDS = (200_000, 2_000_000_000)
# Only what privilege separation inside needs, all for the supervisor (student processes run as
# another user and lose every capability at the switch): switch to the student user
# (SETUID/SETGID), hand it scratch folders (CHOWN, FOWNER), read back and clean up what its
# processes wrote there (DAC_OVERRIDE), and kill its processes (KILL).
CAPABILITIES = ["SETUID", "SETGID", "CHOWN", "FOWNER", "DAC_OVERRIDE", "KILL"]


def connect(timeout: float = 10.0) -> Any:
    """A Docker client that answers, or SandboxUnavailable with the one-line fix."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - docker is a dependency
        raise SandboxUnavailable("the 'docker' Python package is missing: pip install docker") from None
    try:
        client = docker.from_env(timeout=timeout, max_pool_size=64)
        client.ping()
        return client
    except DockerException as exc:
        raise SandboxUnavailable(
            "no Docker engine answers (start it, e.g. `sudo systemctl start docker`, or grade with "
            f"--sandbox local on trusted code only): {str(exc).splitlines()[0][:200]}"
        ) from None


def sweep(client: Any, batch: str | None = None) -> int:
    """Remove containers of ours that an earlier, crashed run left behind."""
    filters = {"label": [LABEL] if batch is None else [LABEL, f"{BATCH_LABEL}={batch}"]}
    removed = 0
    for container in client.containers.list(all=True, filters=filters):
        try:
            container.remove(force=True)
            removed += 1
        except Exception:  # already gone
            pass
    return removed


class DockerSandbox:
    name = "docker"

    def __init__(self, image: str, client: Any = None, batch_id: str | None = None,
                 workdir: Path | None = None) -> None:
        self.client = client or connect()
        self.image = image
        self.batch_id = batch_id or os.urandom(6).hex()
        self.workdir = workdir
        self._running: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(image)
        except ImageNotFound:
            raise SandboxUnavailable(
                f"the grading image {image} is not built yet: run `mpgrade image build` "
                "(or `mpgrade image build --offline` without a registry)") from None

    def _create(self, job: Job, jobdir: Path) -> Any:
        from docker.types import LogConfig, Ulimit

        limits = job.limits
        uid = secrets.SystemRandom().randrange(*STUDENT_UIDS)
        command = [IMAGE_PYTHON if a == PYTHON and i == 0 else a for i, a in enumerate(job.command)]
        return self.client.containers.create(
            self.image,
            command=command,
            working_dir="/job",
            user="0:0",
            environment={
                "HOME": "/tmp",
                "TMPDIR": "/tmp",
                "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
                "MPGRADE_SANDBOX": "docker",
                "MPGRADE_STUDENT_USER": f"{uid}:{uid}",
                "MPGRADE_PRIVATE": "/run/mpgrade",
                "MPGRADE_CGROUP": "/sys/fs/cgroup",
                # The student user gets most of the pids budget, never all of it: the supervisor
                # must still be able to start a thread to report a fork bomb.
                "MPGRADE_STUDENT_NPROC": str(max(16, limits.pids - 64)),
                **job.env,
                **job.secret_env,
            },
            volumes={str(jobdir): {"bind": "/job", "mode": "ro"}},
            network_mode="none",
            read_only=True,
            tmpfs={
                "/tmp": f"size={limits.tmpfs},mode=1777,nosuid,nodev",
                "/run/mpgrade": "size=16m,mode=0700,nosuid,nodev,noexec",
            },
            shm_size=limits.shm,
            mem_limit=limits.memory,
            memswap_limit=limits.memory,
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            cap_drop=["ALL"],
            cap_add=CAPABILITIES,
            security_opt=["no-new-privileges"],
            init=True,
            ulimits=[
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(name="fsize", soft=limits.fsize, hard=limits.fsize),
            ],
            log_config=LogConfig(type="json-file", config={
                "max-size": str(max(limits.output, 1024 * 1024)), "max-file": "1"}),
            labels={LABEL: "1", BATCH_LABEL: self.batch_id, **job.labels},
            detach=True,
            stdin_open=False,
        )

    def run(self, job: Job) -> Outcome:
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import ReadTimeout

        stats: dict[str, float] = {}
        t0 = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix="mpgrade-job-", dir=self.workdir))
        container = None
        try:
            jobdir = tmp / "job"
            jobdir.mkdir(mode=0o700)
            write_files(jobdir, job.files)
            with self._lock:
                if self._closed:
                    return Outcome(exit_status=None, stdout=b"", cancelled=True)
            container = self._create(job, jobdir)
            with self._lock:
                cancelled_before_start = self._closed  # Ctrl-C came while it was being created
                if not cancelled_before_start:
                    self._running[container.id] = container
            if cancelled_before_start:
                return Outcome(exit_status=None, stdout=b"", cancelled=True)
            stats["create"] = time.monotonic() - t0
            t1 = time.monotonic()
            container.start()
            stats["start"] = time.monotonic() - t1
            timed_out = False
            status: int | None = None
            try:
                status = int(container.wait(timeout=job.limits.wall_timeout)["StatusCode"])
            except (ReadTimeout, RequestsConnectionError):
                timed_out = True
                self._kill(container)
            with self._lock:
                cancelled = self._closed and container.id not in self._running
            t2 = time.monotonic()
            stdout = container.logs(stdout=True, stderr=False)[: job.limits.output]
            stderr = container.logs(stdout=False, stderr=True, tail=50)[-65536:]
            container.reload()
            state = container.attrs.get("State", {})
            stats["collect"] = time.monotonic() - t2
            return Outcome(
                exit_status=None if timed_out or cancelled else status,
                stdout=stdout,
                stderr_tail=stderr,
                timed_out=timed_out,
                oom_killed=bool(state.get("OOMKilled")),
                cancelled=cancelled and not timed_out,
                stats=stats,
            )
        finally:
            t3 = time.monotonic()
            if container is not None:
                with self._lock:
                    self._running.pop(container.id, None)
                try:
                    container.remove(force=True)
                except Exception:
                    pass
            shutil.rmtree(tmp, ignore_errors=True)
            stats["remove"] = time.monotonic() - t3
            stats["wall"] = time.monotonic() - t0

    @staticmethod
    def _kill(container: Any) -> None:
        try:
            container.kill()
        except Exception:  # it ended on its own in the meantime
            pass

    def close(self) -> None:
        """Ctrl-C: kill every container still running; ``run`` removes them as it unwinds."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
            self._running.clear()
        for container in running:
            self._kill(container)
