"""The Docker sandbox: one fresh, locked-down container per job.

Inputs go in through a read-only bind mount of an owner-only folder; the result comes out as
the container's stdout (the harness writes nothing else there), capped by the log driver and
by this module. The host never copies files out of the container and never unpickles
anything. Every container is labelled with the process that made it, removed in a
``finally``, and swept at start-up if that process crashed and left it behind.

With ``warm=N`` the sandbox keeps N containers started ahead of their jobs (the pool of
``grader.sandbox.warm``; inside, ``grader.harness.warmstart``): each still serves one job and is
removed after it, but creating and starting it, and the interpreter importing pytest, happen
while earlier jobs run. A warm container is made for the shape of the last job (command,
environment, limits), so a batch, where every job has the same shape, takes one almost every
time; a job of another shape, or one that finds no live warm container, gets a cold one as
before. This module says only how to start, check and remove one warm container.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.sandbox import owner
from grader.sandbox.base import PYTHON, Job, Outcome, Sandbox, SandboxUnavailable, write_files
from grader.sandbox.warm import WarmPool, hand_over, idle_env, stub_command

LABEL = "mpgrade.grader"
BATCH_LABEL = "mpgrade.batch"
WARM_LABEL = "mpgrade.warm"
OWNER_LABEL = "mpgrade.owner"
# Another host's stopped containers are swept once they are this old (seconds).
FOREIGN_STALE = 24 * 3600.0
IMAGE_PYTHON = "/opt/mpgrade/bin/python"
# The same interpreter, execute-only for the student user: the kernel makes every student
# process non-dumpable from exec on (see grader.harness.boundary.sealed_from_exec).
IMAGE_STUDENT_PYTHON = "/opt/mpgrade/bin/python-student"
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


def sweep(client: Any, batch: str | None = None, *, now: float | None = None) -> int:
    """Remove containers of ours that a crashed run left behind: those whose owner process is
    gone (see grader.sandbox.owner). Containers of a batch, service or worker still running on
    this engine stay. Another host's are removed only once they have stopped and are older
    than ``FOREIGN_STALE`` seconds: their owner cannot be checked from here, but no run keeps a
    stopped container that long (a grader in a recreated container, or a renamed host, would
    otherwise leave them for good)."""
    filters = {"label": [LABEL] if batch is None else [LABEL, f"{BATCH_LABEL}={batch}"]}
    now = time.time() if now is None else now
    removed = 0
    # The low-level listing: containers.list() also inspects every container it found, and
    # raises NotFound for one removed in between (another batch's, finishing).
    for entry in client.api.containers(all=True, filters=filters):
        try:
            owner_runs = owner.alive((entry.get("Labels") or {}).get(OWNER_LABEL))
            if owner_runs is None:
                owner_runs = entry.get("State") == "running" or now - entry.get("Created", now) < FOREIGN_STALE
        except Exception:  # an owner we cannot judge: keeping a container is the safe mistake
            continue
        if owner_runs:
            continue
        try:
            client.api.remove_container(entry["Id"], force=True)
            removed += 1
        except Exception:  # already gone
            pass
    return removed


@dataclass
class _Warm:
    """A container started ahead of its job, and the host folder mounted at its /job."""

    container: Any
    tmp: Path
    jobdir: Path


class DockerSandbox(Sandbox):
    """One fresh container per job (see the module); ``with DockerSandbox(...) as box:``."""

    name = "docker"

    def __init__(self, image: str, client: Any = None, batch_id: str | None = None,
                 workdir: Path | None = None, warm: int = 0) -> None:
        self.client = client or connect()
        self.image = image
        self.batch_id = batch_id or os.urandom(6).hex()
        self.workdir = workdir
        self.warm = max(0, warm)
        self._running: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._pool: WarmPool[_Warm] = WarmPool(
            self.warm, self._start_warm, self._warm_running, self._discard, name="mpgrade-warm")
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(image)
        except ImageNotFound:
            raise SandboxUnavailable(
                f"the grading image {image} is not built yet: run `mpgrade image build` "
                "(or `mpgrade image build --offline` without a registry)") from None

    def _create(self, job: Job, jobdir: Path, *, command: list[str] | None = None,
                env: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> Any:
        from docker.types import LogConfig, Ulimit

        limits = job.limits
        uid = secrets.SystemRandom().randrange(*STUDENT_UIDS)
        if command is None:
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
                "MPGRADE_STUDENT_PYTHON": IMAGE_STUDENT_PYTHON,
                "MPGRADE_PRIVATE": "/run/mpgrade",
                "MPGRADE_CGROUP": "/sys/fs/cgroup",
                # The student user gets most of the pids budget, never all of it: the supervisor
                # must still be able to start a thread to report a fork bomb.
                "MPGRADE_STUDENT_NPROC": str(max(16, limits.pids - 64)),
                **job.env,
                **(job.secret_env if env is None else env),
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
            labels={LABEL: "1", BATCH_LABEL: self.batch_id, **(job.labels if labels is None else labels),
                    OWNER_LABEL: owner.label_for(os.getpid())},
            detach=True,
            stdin_open=False,
        )

    def run(self, job: Job) -> Outcome:
        """Run the job in a warm container of its shape if one waits, else in a fresh one."""
        stats: dict[str, float] = {}
        t0 = time.monotonic()
        waiting = self._pool.for_job(job, stats)
        if waiting is not None:
            return self._run_warm(job, waiting, stats, t0)
        return self._run_cold(job, stats, t0)

    def _run_cold(self, job: Job, stats: dict[str, float], t0: float) -> Outcome:
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
            if not self._register(container):  # Ctrl-C came while it was being created
                return Outcome(exit_status=None, stdout=b"", cancelled=True)
            stats["create"] = time.monotonic() - t0
            t1 = time.monotonic()
            container.start()
            stats["start"] = time.monotonic() - t1
            with self._lock:
                stopped_meanwhile = self._closed  # close() came between _register and start()
            if stopped_meanwhile:
                self._kill(container)
            return self._finish(container, job, stats)
        finally:
            self._cleanup(container, tmp, stats, t0)

    def _run_warm(self, job: Job, ready: _Warm, stats: dict[str, float], t0: float) -> Outcome:
        """Hand the job to a container that is already running: its files, then the go file."""
        try:
            if not self._register(ready.container):
                return Outcome(exit_status=None, stdout=b"", cancelled=True)
            t1 = time.monotonic()
            hand_over(ready.jobdir, job)
            stats["warm"] = 1.0
            stats["dispatch"] = time.monotonic() - t1
            return self._finish(ready.container, job, stats)
        finally:
            self._cleanup(ready.container, ready.tmp, stats, t0)

    def _register(self, container: Any) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._running[container.id] = container
            return True

    def _finish(self, container: Any, job: Job, stats: dict[str, float]) -> Outcome:
        """Wait for a started container within the job's wall time, then read what it wrote."""
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import ReadTimeout

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

    def _cleanup(self, container: Any, tmp: Path, stats: dict[str, float], t0: float) -> None:
        t3 = time.monotonic()
        if container is not None:
            with self._lock:
                self._running.pop(container.id, None)
            self._remove(container)
        shutil.rmtree(tmp, ignore_errors=True)
        stats["remove"] = time.monotonic() - t3
        stats["wall"] = time.monotonic() - t0

    @staticmethod
    def _remove(container: Any) -> None:
        try:
            container.remove(force=True)
        except Exception:  # already gone
            pass

    # -- warm containers ---------------------------------------------------------------------

    def _start_warm(self, job: Job) -> _Warm | None:
        """Create and start one container for jobs of this one's shape, waiting for its go file
        (None when the sandbox closed meanwhile: nothing is left of it)."""
        tmp = Path(tempfile.mkdtemp(prefix="mpgrade-warm-", dir=self.workdir))
        jobdir = tmp / "job"
        jobdir.mkdir(mode=0o700)
        made = _Warm(None, tmp, jobdir)
        try:
            made.container = self._create(job, jobdir, command=stub_command(IMAGE_PYTHON, job),
                                          env=idle_env(), labels={WARM_LABEL: "1"})
            if not self._closed:  # else Ctrl-C came while it was created: never start it
                made.container.start()
                return made
        except BaseException:
            self._discard(made)
            raise
        self._discard(made)
        return None

    @staticmethod
    def _warm_running(waiting: _Warm) -> bool:
        """Still waiting for its go file: a container that exited (idle, killed) cannot take a job."""
        waiting.container.reload()
        return bool(waiting.container.status == "running")

    def _discard(self, waiting: _Warm) -> None:
        """Remove a warm container and its job folder; it never ran a job, or its job is done."""
        if waiting.container is not None:
            self._remove(waiting.container)
        shutil.rmtree(waiting.tmp, ignore_errors=True)

    @staticmethod
    def _kill(container: Any) -> None:
        try:
            container.kill()
        except Exception:  # it ended on its own in the meantime
            pass

    def close(self) -> None:
        """Ctrl-C: kill every container still running (``run`` removes them as it unwinds), and
        remove the warm ones, waiting for those still being started."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
            self._running.clear()
        for container in running:
            self._kill(container)
        self._pool.close()
