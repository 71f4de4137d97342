"""The Docker sandbox: one fresh, locked-down container per job.

Inputs go in through a read-only bind mount of an owner-only folder; the result comes out as
the container's stdout (the harness writes nothing else there), capped by the log driver and
by this module. The host never copies files out of the container and never unpickles
anything. Every container is labelled with the process that made it, removed in a
``finally``, and swept at start-up if that process crashed and left it behind.

With ``warm=N`` the sandbox keeps N containers started ahead of their jobs (see
``grader.harness.warmstart``): each still serves one job and is removed after it, but creating
and starting it, and the interpreter importing pytest, happen while earlier jobs run. A warm
container is made for the shape of the last job (command, environment, limits), so a batch,
where every job has the same shape, takes one almost every time; a job of another shape, or
one that finds no live warm container, gets a cold one as before.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.protocol.wire import GO_FILE, IDLE_ENV
from grader.sandbox import owner
from grader.sandbox.base import PYTHON, Job, Outcome, SandboxUnavailable, warm_shape, write_files

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
WARMSTART = "grader.harness.warmstart"
# A warm container nobody sends a job to exits after this long (the host may have died).
WARM_IDLE = 900.0
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
    started: float = 0.0  # time.monotonic() when it was started


class DockerSandbox:
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
        self._pool: list[tuple[tuple, Future[_Warm | None]]] = []
        self._starter = ThreadPoolExecutor(self.warm, "mpgrade-warm") if self.warm else None
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
        stats: dict[str, float] = {}
        t0 = time.monotonic()
        shape = warm_shape(job) if self.warm else None
        warm = self._take(shape, stats) if shape is not None else None
        if shape is not None:
            try:
                self._refill(shape, job)
            except BaseException:
                if warm is not None:  # taken from the pool but not handed a job yet: ours to remove
                    self._discard(warm)
                raise
        if warm is not None:
            return self._run_warm(job, warm, stats, t0)
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

    def _run_warm(self, job: Job, warm: _Warm, stats: dict[str, float], t0: float) -> Outcome:
        """Hand the job to a container that is already running: its files, then the go file."""
        try:
            reserved = {GO_FILE, GO_FILE + ".tmp"}
            if any(os.path.normpath(rel) in reserved for rel in job.files):
                raise ValueError(f"job file {GO_FILE!r} is reserved for the sandbox")
            if not self._register(warm.container):
                return Outcome(exit_status=None, stdout=b"", cancelled=True)
            t1 = time.monotonic()
            write_files(warm.jobdir, job.files)
            go = warm.jobdir / (GO_FILE + ".tmp")
            fd = os.open(go, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(dict(job.secret_env), f)
            os.rename(go, warm.jobdir / GO_FILE)  # last, and atomically: the files are all there
            stats["warm"] = 1.0
            stats["dispatch"] = time.monotonic() - t1
            return self._finish(warm.container, job, stats)
        finally:
            self._cleanup(warm.container, warm.tmp, stats, t0)

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

    def _take(self, shape: tuple, stats: dict[str, float]) -> _Warm | None:
        """The oldest warm container of this shape that is still running, if there is one."""
        while True:
            with self._lock:
                index = next((i for i, (s, _) in enumerate(self._pool) if s == shape), None)
                if index is None or self._closed:
                    return None
                _, future = self._pool.pop(index)
            t = time.monotonic()
            try:
                warm = future.result(timeout=60)
            except TimeoutError:  # the daemon is slow: go on without it, and remove it when it is up
                future.add_done_callback(self._discard_future)
                continue
            except Exception:  # it could not be started: try the next one, or go cold
                continue
            stats["warm_wait"] = stats.get("warm_wait", 0.0) + time.monotonic() - t
            if warm is None:
                continue
            try:
                # Not one about to give up waiting (WARM_IDLE): the job would find it gone.
                warm.container.reload()
                alive = (warm.container.status == "running"
                         and time.monotonic() - warm.started < WARM_IDLE - 60)
            except Exception:
                alive = False
            if alive:
                return warm
            self._discard(warm)

    def _refill(self, shape: tuple, job: Job) -> None:
        """Start containers for this shape until ``warm`` of them wait; drop other shapes'."""
        stale: list[Future[_Warm | None]] = []
        with self._lock:
            if self._closed or self._starter is None:
                return
            stale = [f for s, f in self._pool if s != shape]
            self._pool = [(s, f) for s, f in self._pool if s == shape]
            for _ in range(self.warm - len(self._pool)):
                self._pool.append((shape, self._starter.submit(self._start_warm, job)))
        for future in stale:
            future.add_done_callback(self._discard_future)

    def _start_warm(self, job: Job) -> _Warm | None:
        with self._lock:
            if self._closed:
                return None
        tmp = Path(tempfile.mkdtemp(prefix="mpgrade-warm-", dir=self.workdir))
        jobdir = tmp / "job"
        jobdir.mkdir(mode=0o700)
        warm = _Warm(None, tmp, jobdir)
        try:
            command = [IMAGE_PYTHON, "-m", WARMSTART, *job.command[2:]]
            warm.container = self._create(job, jobdir, command=command, env={IDLE_ENV: str(WARM_IDLE)},
                                          labels={WARM_LABEL: "1"})
            with self._lock:
                closed = self._closed
            if not closed:
                warm.container.start()
                warm.started = time.monotonic()
                with self._lock:
                    closed = self._closed
            if closed:
                self._discard(warm)
                return None
            return warm
        except BaseException:
            self._discard(warm)
            raise

    def _discard(self, warm: _Warm) -> None:
        if warm.container is not None:
            self._remove(warm.container)
        shutil.rmtree(warm.tmp, ignore_errors=True)

    def _discard_future(self, future: Future[_Warm | None]) -> None:
        try:
            warm = future.result()
        except Exception:
            return
        if warm is not None:
            self._discard(warm)

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
        while True:  # one at a time, so a second Ctrl-C in here leaves the rest to the next close()
            with self._lock:
                if not self._pool:
                    break
                _, future = self._pool.pop()
            if future.cancel():  # still queued: it never made a container
                continue
            try:
                future.result(timeout=120)
            except TimeoutError:
                future.add_done_callback(self._discard_future)
                continue
            except Exception:
                continue
            self._discard_future(future)
        if self._starter is not None:
            self._starter.shutdown(wait=True, cancel_futures=True)
