"""Deadline simulation: how long students wait for the service when a whole class submits at once.

    python bench/deadline.py [--big 80] [--small 20] [--grade-seconds 0.4]      (make bench-deadline)
    python bench/deadline.py --course-batch [60] [--seed 2121]           (make bench-deadline-course)

What it measures. Two courses submit through the HTTP API (`mpgrade serve`'s app, in-process
through FastAPI's TestClient, every request a real POST with a course token): course ``big``
posts all its students' submissions in a two-second burst, course ``small`` starts posting a
second later, spread over three seconds (so in arrival order it is behind most of the burst).
A fifth of the students resubmit once or twice during the run and two of ``big``'s resubmit
every 1.5 s for 20 s (a newer submission replaces the same student's queued one). The same
seeded scenario is replayed against four configurations:

1. the embedded worker (``mpgrade serve`` without ``--broker``, one grading thread);
2. one Celery worker (``mpgrade serve --broker`` with a real redis-server on loopback);
3. two Celery workers;
4. one Celery worker with every job handed to the broker at once (``--dispatch-ahead`` larger
   than the class): the broker's first-in, first-out order, as the service had before its fair
   share reached broker mode. The baseline the fair share is measured against.

Grading is a stand-in: a grader (``jobs.Grader`` with ``grade`` replaced) that sleeps
``--grade-seconds`` and returns a valid result document for the job's files, in the API's
process (embedded) or in each Celery worker's (started by this script, ``worker`` sub-command).
So the run measures the service (queueing, fair share, dispatch, result collection), not the
sandbox (bench/run.py measures that), and takes a few minutes. The stand-in sleeps rather than
computes: on this machine's 2 cores, two workers of a CPU-bound grading would gain less than
two sleeping ones.

For each configuration: throughput (jobs graded per minute, first POST to last result), the
queue wait (POST received to grading started) p50/p95 per course and by the queue position
the POST's answer told the student, how many submissions were superseded, and a plot of wait
against position (bench/deadline.png). Writes its section of bench/RESULTS.md ("Deadline
simulation", the marked section ``deadline``: see bench/sections.py), leaving the rest as it is.

With ``--course-batch [COUNT]``: the deadline with real grading. The batch is bench/course.py's
(its ``make_batch``, default 60 whole-course submissions with seed 2121: correct, wrong, hanging
and hostile ones: issue #21's batch, the one ``make bench-full`` grades; ``--course-batch N``
is ``python bench/course.py --count N``'s). Each submission is one POST with all its files, the whole class at once (one course); grading is real, in the Docker sandbox on the
grading image (built as bench/course.py builds it). Three configurations, each with as many
grading slots as the machine has CPUs, so they compare with ``mpgrade grade --jobs CPUs``: the
embedded worker (CPUs threads), one ``mpgrade worker --concurrency CPUs``, and CPUs ``mpgrade
worker --concurrency 1`` (real ``python -m grader worker`` processes on a redis-server on
loopback). Per configuration: wall time, results per minute, submit-to-result and queue-wait
p50/p95, the wait by the queue position the POST's answer told, how many ended graded / error /
timeout (a hostile submission's result is its own), failed, unfinished or refused; a plot of wait
against position (bench/deadline_course.png) and the section "deadline-course" of
bench/RESULTS.md, written after every configuration. On a 2-core machine the API, Redis, the
workers and the containers all share the two cores. Needs Docker and redis-server.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import assignment as assignment_mod  # noqa: E402
from grader.protocol import results  # noqa: E402
from grader.service import jobs  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import sections  # noqa: E402  (bench/sections.py: each benchmark's part of RESULTS.md)

SECTION = "## Deadline simulation"
COURSE_HELP = "--course-batch:" + __doc__.split("With ``--course-batch [COUNT]``:")[1].replace("``", "`")
POSITION_BUCKETS = ((1, 20), (21, 40), (41, 60), (61, 80), (81, 10**9))
HAMMERS = ("big-000", "big-001")  # the two students who resubmit every 1.5 s


class StandInGrader(jobs.Grader):
    """Grades in ``seconds`` of sleep: a valid, graded result document for the job's files."""

    seconds: float = 0.4

    def grade(self, payload: Any) -> dict[str, Any] | None:
        started = results.now()
        time.sleep(self.seconds)
        assignment = self.assignments[payload["assignment"]["name"]]
        return results.validate(results.error_document(
            assignment, jobs.submission_of(payload).describe(), status="graded",
            message="bench: a stand-in grading", sandbox="local", start_method=assignment.start_method,
            started_at=started))


def stand_in(assignment: assignment_mod.Assignment, seconds: float) -> StandInGrader:
    from grader.sandbox.local import LocalSandbox

    grader = StandInGrader({assignment.name: assignment}, LocalSandbox())
    grader.seconds = seconds
    return grader


# --------------------------------------------------------------------------- the scenario


@dataclass(frozen=True)
class Post:
    at: float  # seconds after the start
    course: str
    student: str
    version: int  # 0: first submission; n: the n-th resubmission (other files)


def scenario(big: int, small: int, seed: int = 22) -> list[Post]:
    """The deadline, the same for every configuration (seeded)."""
    rng = random.Random(seed)
    posts = [Post(rng.uniform(0, 2), "big", f"big-{i:03d}", 0) for i in range(big)]
    posts += [Post(rng.uniform(1, 4), "small", f"small-{i:03d}", 0) for i in range(small)]
    firsts = list(posts)
    for first in firsts:
        if rng.random() < 0.2:  # fixes something and submits again, once or twice
            for n in range(1, rng.choice((1, 2)) + 1):
                posts.append(Post(first.at + rng.uniform(2, 15) * n, first.course, first.student, n))
    for hammer in HAMMERS:  # resubmits every 1.5 s for 20 s
        posts += [Post(1.5 * k, "big", hammer, 100 + k) for k in range(1, 14)]
    return sorted(posts, key=lambda p: p.at)


def source(post: Post) -> bytes:
    return f"# {post.student} version {post.version}\nimport multiprocessing\n".encode()


# --------------------------------------------------------------------------- one run


@dataclass
class Outcome:
    name: str
    jobs: list[dict[str, Any]] = field(default_factory=list)  # graded: course, position, wait, ...
    superseded: int = 0
    failed: int = 0
    wall: float = 0.0
    note: str = ""
    burst: float = 0.0  # seconds the POSTs took, first to last
    unfinished: int = 0  # jobs not done when the patience ran out (strict=False)
    post_errors: list[str] = field(default_factory=list)  # refused POSTs (strict=False)
    slots: int = 0  # grading slots (course mode)


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def replay(name: str, config_kwargs: dict[str, Any], posts: list[Post], assignment: assignment_mod.Assignment,
           work: Path, *, grader: jobs.Grader | None = None,
           files_of: Callable[[Post], list[tuple[str, bytes]]] | None = None,
           patience: float = 900.0, strict: bool = True) -> Outcome:
    """Post the scenario to a fresh API, wait until every job is finished, read the numbers.

    ``grader``: the embedded worker's, in place of the one the app made from its sandbox (the
    stand-in). ``files_of``: a POST's files (default: one module, ``source``). ``strict``: a
    refused POST or jobs unfinished after ``patience`` seconds raise; else they are counted in
    the outcome (``post_errors``, ``unfinished``) and the jobs that did finish are read."""
    from fastapi.testclient import TestClient

    from grader.service import auth
    from grader.service.api import ServiceConfig, create_app

    folder = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    tokens_file = folder / "tokens.json"
    heads = {c: {"Authorization": f"Bearer {auth.add_token(tokens_file, c, [assignment.name])}"}
             for c in sorted({p.course for p in posts})}
    config = ServiceConfig(assignments={assignment.name: assignment}, tokens_file=tokens_file,
                           database=folder / "service.db", min_free=0, **config_kwargs)
    app = create_app(config)
    if grader is not None:  # the embedded worker grades with this one (the Grader is its seam)
        app.state.dispatcher.grader = grader
    posted: list[tuple[str, Post, int | None]] = []
    out = Outcome(name)
    file_name = assignment.submitted_files[0]
    files_of = files_of or (lambda post: [(file_name, source(post))])
    with TestClient(app) as client:
        start = time.monotonic()
        for post in posts:
            time.sleep(max(0.0, start + post.at - time.monotonic()))
            try:
                response = client.post(f"/v1/assignments/{assignment.name}/submissions", headers=heads[post.course],
                                       data={"student": post.student},
                                       files=[("file", f) for f in files_of(post)])
                refused = None if response.status_code in (200, 202) else \
                    f"answered {response.status_code}: {response.text[:300]}"
            except Exception as exc:  # the API raised: that POST is lost, not the run
                refused = f"raised {type(exc).__name__}: {str(exc)[:300]}"
            if refused:
                if strict:
                    raise RuntimeError(f"{name}: POST {refused}")
                out.post_errors.append(f"{post.student}: {refused}")
                continue
            body = response.json()
            posted.append((body["job_id"], post, (body.get("queue") or {}).get("position")))
        out.burst = time.monotonic() - start
        store = config.store
        deadline = time.monotonic() + patience
        while any(store.job(job_id).status not in ("done", "failed") for job_id, _, _ in posted):
            if time.monotonic() > deadline:
                if strict:
                    raise RuntimeError(f"{name}: jobs still unfinished after {patience / 60:.0f} minutes")
                break
            time.sleep(0.25)
        out.wall = time.monotonic() - start
        for job_id, post, position in posted:
            job = store.job(job_id)
            doc = store.result(job_id) if job.status in ("done", "failed") else None
            if job.status not in ("done", "failed"):
                out.unfinished += 1
                continue
            if job.status == "failed" and (strict or doc is None):
                if "superseded" in (job.message or ""):
                    out.superseded += 1
                else:
                    out.failed += 1
                continue
            received = _stamp(job.created_at)
            out.jobs.append({"course": post.course, "student": post.student, "position": position or 1,
                             "again": bool(post.version), "told": position, "status": doc.get("status"),
                             "score": doc.get("score"), "max_score": doc.get("max_score"),
                             "wait": _stamp(doc["started_at"]) - received,
                             "total": _stamp(doc["finished_at"]) - received,
                             "result": _stamp(job.finished_at or doc["finished_at"]) - received,
                             "received": received, "finished": _stamp(doc["finished_at"])})
    return out


# --------------------------------------------------------------------------- Celery


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A throwaway redis-server on loopback, no persistence."""

    def __init__(self, folder: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        r = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(150):
            try:
                if r.ping():
                    break
            except Exception:
                time.sleep(0.1)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def stand_in_worker(broker: str, seconds: float, name: str) -> list[str]:
    """The command of a Celery worker grading with the stand-in (this script's ``worker``)."""
    return [sys.executable, str(Path(__file__).resolve()), "worker", "--broker", broker,
            "--grade-seconds", str(seconds), "--name", name]


def real_worker(broker: str, concurrency: int, name: str, image_tag: str) -> list[str]:
    """The command of a real `mpgrade worker` on this course, in the Docker sandbox."""
    return [sys.executable, "-m", "grader", "worker", "--broker", broker, "--assignment", str(ROOT),
            "--sandbox", "docker", "--image", image_tag, "--concurrency", str(concurrency), "--name", name]


def start_workers(commands: list[list[str]], folder: Path) -> list[subprocess.Popen]:
    """Start each command (a Celery worker) and wait until it says it is ready."""
    procs: list[subprocess.Popen] = []
    try:
        for i, command in enumerate(commands):
            log = folder / f"worker-{i}.log"
            proc = subprocess.Popen(command, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                    start_new_session=True)
            procs.append(proc)
            deadline = time.monotonic() + 120
            while "ready" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {i} did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
    except BaseException:
        stop_workers(procs)
        raise
    return procs


def stop_workers(procs: list[subprocess.Popen], grace: float = 0.0) -> None:
    """Kill the workers; with ``grace``, ask first (SIGTERM: a real worker then closes its
    sandbox, removing its containers) and kill those still running after ``grace`` seconds."""
    if grace:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait(timeout=30)


def worker_main(broker: str, seconds: float, name: str) -> None:
    """A Celery worker (one at a time, as `mpgrade worker --concurrency 1`) grading with the stand-in."""
    from grader.service.tasks import make_celery

    assignment = assignment_mod.load(ROOT)
    app = make_celery(broker, grader=stand_in(assignment, seconds))
    app.worker_main(["worker", "--pool=threads", "--concurrency=1", "--loglevel=INFO", "--without-gossip",
                     "--without-mingle", "--without-heartbeat", "--queues=mpgrade", f"--hostname={name}"])


# --------------------------------------------------------------------------- numbers and the report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def throughput(out: Outcome) -> float:
    """Jobs graded per minute while the burst's backlog lasted: from the first POST until every
    first submission (not a resubmission) was graded, so the rate of the resubmissions that
    trickle in afterwards does not dilute it."""
    firsts = [j for j in out.jobs if not j["again"]]
    if not firsts:
        return 0.0
    t0, t1 = min(j["received"] for j in out.jobs), max(j["finished"] for j in firsts)
    done = sum(1 for j in out.jobs if j["finished"] <= t1)
    return 60.0 * done / (t1 - t0) if t1 > t0 else 0.0


def table(outcomes: list[Outcome]) -> list[str]:
    lines = ["| configuration | graded | superseded | wall (s) | graded per minute (burst) | big wait p50 / p95 (s) "
             "| small wait p50 / p95 (s) | small's last started (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for out in outcomes:
        cells = []
        for course in ("big", "small"):
            waits = [j["wait"] for j in out.jobs if j["course"] == course]
            cells.append(f"{pct(waits, 50):.1f} / {pct(waits, 95):.1f}")
        small_max = max((j["wait"] for j in out.jobs if j["course"] == "small"), default=float("nan"))
        lines.append(f"| {out.name} | {len(out.jobs)} | {out.superseded} | {out.wall:.1f} | "
                     f"{throughput(out):.1f} | {cells[0]} | {cells[1]} | {small_max:.1f} |")
    return lines


def position_table(outcomes: list[Outcome], buckets: tuple[tuple[int, int], ...] = POSITION_BUCKETS) -> list[str]:
    heads = [(f"{lo}" if lo == hi else f"{lo}-{hi}") if hi < 10**9 else f"{lo}+" for lo, hi in buckets]
    lines = ["| configuration | " + " | ".join(f"position {h}: p50 / p95 (s)" for h in heads) + " |",
             "|---|" + "---:|" * len(heads)]
    for out in outcomes:
        cells = []
        for lo, hi in buckets:
            waits = [j["wait"] for j in out.jobs if lo <= j["position"] <= hi]
            cells.append(f"{pct(waits, 50):.1f} / {pct(waits, 95):.1f} (n={len(waits)})" if waits else "-")
        lines.append(f"| {out.name} | " + " | ".join(cells) + " |")
    return lines


GROUP_COLOURS = {"big": "tab:blue", "small": "tab:orange", "correct": "tab:green", "wrong": "tab:orange",
                 "hanging": "tab:purple", "hostile": "tab:red"}


def plot(outcomes: list[Outcome], path: Path, key: str = "course", label: str = "course {}") -> bool:
    """Queue wait against the position told, one panel per configuration, the points coloured
    by ``key`` of each job (its course, or in course mode its kind of submission)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.2 * len(outcomes), 3.8), sharey=True, squeeze=False)
    for ax, out in zip(axes[0], outcomes, strict=True):
        order = list(GROUP_COLOURS)
        groups = sorted({j[key] for o in outcomes for j in o.jobs},
                        key=lambda g: (order.index(g) if g in order else len(order), g))
        for group in groups:
            pts = [(j["position"], j["wait"]) for j in out.jobs if j[key] == group]
            if pts:
                ax.scatter(*zip(*pts, strict=True), s=10, alpha=0.7, color=GROUP_COLOURS.get(group),
                           label=label.format(group))
        ax.set_title(out.name, fontsize=9)
        ax.set_xlabel("queue position when submitted")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("queue wait (s)")
    if any(o.jobs for o in outcomes):
        axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def findings(outcomes: list[Outcome], posts: list[Post]) -> list[str]:
    """The comparisons the tables hold, in words, with this run's numbers."""
    by = {out.name: out for out in outcomes}

    def last_small(out: Outcome) -> float:
        return max((j["wait"] for j in out.jobs if j["course"] == "small"), default=float("nan"))

    def waits(out: Outcome, course: str) -> list[float]:
        return [j["wait"] for j in out.jobs if j["course"] == course]

    out = []
    fair, fifo = by.get("1 Celery worker"), by.get("1 Celery worker, broker order (no fair share)")
    embedded, two = by.get("embedded worker (1 thread)"), by.get("2 Celery workers")
    if fair and fifo:
        out.append(
            f"- **Fair share with Celery.** With one worker, course small's last submission started "
            f"{last_small(fair):.1f} s after it arrived (median wait {pct(waits(fair, 'small'), 50):.1f} s); "
            f"in the broker's arrival order it waited {last_small(fifo):.1f} s (median "
            f"{pct(waits(fifo, 'small'), 50):.1f} s), behind the whole burst. Fair share is an equal share, "
            f"not a priority: small's own {sum(1 for p in posts if p.course == 'small' and not p.version)} first "
            f"submissions in 3 s come faster than half a worker grades them, so they queue among themselves. Course big pays for it: median {pct(waits(fair, 'big'), 50):.1f} s "
            f"instead of {pct(waits(fifo, 'big'), 50):.1f} s.")
    if fair and embedded:
        out.append(
            f"- **Broker mode shares like the embedded worker.** One Celery worker and the embedded worker "
            f"give the same waits within noise (small p95 {pct(waits(fair, 'small'), 95):.1f} s and "
            f"{pct(waits(embedded, 'small'), 95):.1f} s; {throughput(fair):.0f} and "
            f"{throughput(embedded):.0f} graded per minute): handing Redis one job at a time as the worker "
            f"takes one costs no throughput.")
    if fair and two:
        out.append(
            f"- **Two workers.** {throughput(two):.0f} graded per minute against {throughput(fair):.0f} "
            f"({throughput(two) / throughput(fair):.2f}x) while the burst lasted; the stand-in sleeps, so on "
            f"these 2 cores a CPU-bound grading would gain less. The fair share holds with both workers "
            f"taking from the broker (small p95 {pct(waits(two, 'small'), 95):.1f} s).")
    hammer = [(o.name, sum(1 for j in o.jobs if j["student"] in HAMMERS)) for o in outcomes]
    out.append(
        "- **Resubmissions.** A newer submission replaces the same student's queued one: "
        + ", ".join(f"{n} superseded ({name})" for name, n in ((o.name, o.superseded) for o in outcomes))
        + f". The two students who resubmit every 1.5 s posted {sum(1 for p in posts if p.student in HAMMERS)} "
        "times and held one place each: "
        + ", ".join(f"{n} of their POSTs graded ({name})" for name, n in hammer) + ".")
    out.append(
        "- **Position is not a promise.** The wait grows with the position for the course that burst; "
        "small's submissions, told positions behind the burst, start far sooner than their position "
        "(the plot's orange points): `queue.position` counts every job queued before, and fair share "
        "takes another course's job sooner.")
    return out


def report(outcomes: list[Outcome], args: argparse.Namespace, posts: list[Post], took: float,
           plotted: bool, load: float) -> str:
    resubmissions = sum(1 for p in posts if p.version)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION, "",
        f"Run on {when} with `make bench-deadline` (`python bench/deadline.py --big {args.big} --small "
        f"{args.small} --grade-seconds {args.grade_seconds}`); the whole run took {took / 60:.1f} minutes. "
        f"Machine: {os.cpu_count()} cores, shared with other work while it ran (load average {load:.1f} at the "
        f"start), Python {platform.python_version()}; the API, Redis and the workers all ran on it.",
        "",
        f"The scenario (bench/deadline.py's docstring): course big posts {args.big} submissions in a 2 s burst, "
        f"course small {args.small} spread over 1-4 s; {resubmissions} resubmissions on top (a fifth of the "
        "students once or twice, two of big's every 1.5 s for 20 s), "
        f"{len(posts)} POSTs in all. Grading is a stand-in that sleeps {args.grade_seconds} s and returns a valid "
        "document, so this measures the service's queueing and dispatch, not the sandbox; with a CPU-bound "
        "grading, two workers on these 2 cores would gain less than the stand-in's two. Wait is from the "
        "POST's arrival to the start of its grading; position is what the POST's answer said "
        "(`queue.position`).",
        "",
        *table(outcomes), "",
        "Queue wait by the position the student was told (both courses):", "",
        *position_table(outcomes), "",
    ]
    for out in outcomes:
        if out.note:
            lines.append(f"- {out.name}: {out.note}")
    if plotted:
        lines += ["", "![queue wait against queue position](deadline.png)", ""]
    lines += ["What it shows:", "", *findings(outcomes, posts), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the deadline with real grading

COURSE_SECTION = "## The deadline with real grading (the whole-course batch)"
COURSE_COUNT, COURSE_SEED = 60, 2121  # issue #21's batch: bench/course.py --count 60 (make bench-full), its seed
COURSE_BUCKETS = ((0, 0), (1, 1), (2, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 60), (61, 10**9))
KINDS = ("correct", "wrong", "hanging", "hostile")


def course_outcome_row(out: Outcome) -> str:
    if not out.jobs:
        return (f"| {out.name} | {out.slots} | 0 (0) / 0 / 0 | {out.failed} / {out.unfinished} / "
                f"{len(out.post_errors)} | - | - | - | - | - |")
    first = min(j["received"] for j in out.jobs)
    last = max(j["received"] + j["result"] for j in out.jobs)
    wall = last - first
    by = {s: sum(1 for j in out.jobs if j["status"] == s) for s in ("graded", "error", "timeout")}
    other = len(out.jobs) - sum(by.values())
    full = sum(1 for j in out.jobs if j["status"] == "graded" and j["score"] is not None
               and j["score"] == j["max_score"])
    results_ = [j["result"] for j in out.jobs]
    waits = [j["wait"] for j in out.jobs]
    last_wait = max(waits)
    return (f"| {out.name} | {out.slots} | {by['graded']} ({full}) / {by['error']} / {by['timeout']}"
            f"{f' (+{other} other)' if other else ''} | {out.failed} / {out.unfinished} / {len(out.post_errors)} | "
            f"{wall:.1f} | {60.0 * len(out.jobs) / wall if wall > 0 else 0.0:.1f} | "
            f"{pct(results_, 50):.1f} / {pct(results_, 95):.1f} | {pct(waits, 50):.1f} / {pct(waits, 95):.1f} | "
            f"{last_wait:.1f} |")


def course_wall(out: Outcome) -> float:
    """First POST received to the last result stored (the store's own times)."""
    if not out.jobs:
        return float("nan")
    return max(j["received"] + j["result"] for j in out.jobs) - min(j["received"] for j in out.jobs)


def grade_reference(count: int) -> tuple[float, int] | None:
    """`mpgrade grade --jobs CPUs` (Docker) on the same batch, from bench/course.py's last run
    (bench/out/course/headline.json), when that run graded a batch of this size."""
    import json

    path = ROOT / "bench" / "out" / "course" / "headline.json"
    try:
        head = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if head.get("count") != count:
        return None
    cpus = os.cpu_count() or 1
    for c in head.get("configs", []):
        if c.get("config") == f"mpgrade docker --jobs {cpus}" and c.get("n") == count:
            return float(c["wall"]), count
    return None


def course_findings(outcomes: list[Outcome], count: int) -> list[str]:
    out = []
    done = [o for o in outcomes if o.jobs]
    if len(done) >= 2:
        base = done[0]
        rates = [(o, 60.0 * len(o.jobs) / course_wall(o)) for o in done]
        out.append("- **Throughput.** " + "; ".join(f"{o.name}: {r:.1f} per minute" for o, r in rates)
                   + f" ({', '.join(f'{r / rates[0][1]:.2f}x' for _, r in rates[1:])} of {base.name}'s). "
                   "Every configuration has the same grading slots, so a difference is the dispatch's cost "
                   "(Celery's round trips, the API polling the broker) and the CPU the extra processes take "
                   "from the containers on these 2 cores, not more grading at once.")
    ref = grade_reference(count)
    if ref and done:
        wall, n = ref
        out.append(f"- **Against `mpgrade grade --jobs {os.cpu_count()}`.** bench/course.py's last run graded "
                   f"the same {n} submissions in {wall:.1f} s; through the service: "
                   + ", ".join(f"{o.name} {course_wall(o):.1f} s ({course_wall(o) / wall:.2f}x)" for o in done)
                   + ". Each keeps a warm container per slot, as `mpgrade grade` does.")
    for o in done:
        firsts = [j for j in o.jobs if j["position"] <= 1]
        lasts = sorted(o.jobs, key=lambda j: j["position"])[-max(1, len(o.jobs) // 10):]
        if firsts and lasts and len(o.jobs) > 2:
            out.append(f"- **{o.name}: the queue.** Told position 0-1 (graded at once, or next), a student waited "
                       f"{statistics.median(j['wait'] for j in firsts):.1f} s to grading start; the last tenth "
                       f"(positions {lasts[0]['position']}-{lasts[-1]['position']}) waited "
                       f"{statistics.median(j['wait'] for j in lasts):.1f} s and had the result after "
                       f"{statistics.median(j['result'] for j in lasts):.1f} s: about "
                       f"{course_wall(o) / len(o.jobs):.1f} s of wait per place, the batch's wall time over its "
                       "size. A hanging submission holds its slot until its time limits, so the places behind "
                       "it wait for that too.")
    quick = [(o, [j for j in o.jobs if j["wait"] < 2.0]) for o in done]
    if quick and any(q for _, q in quick):
        out.append("- **What position means.** Started within 2 s of their POST: " + "; ".join(
            f"{o.name} {len(q)}, told position{'s' if len(q) > 1 else ''} "
            f"{', '.join(str(p) for p in sorted({j['position'] for j in q}))}" for o, q in quick if q)
            + ". The embedded worker's threads take a job as soon as it is stored (position 0: already being "
            "graded when the POST was answered); with Celery a job the API has handed to the broker still "
            "counts as queued, so the first students are told 1, 2, ... and graded at once.")
    for o in outcomes:
        if o.note:
            out.append(f"- **{o.name}:** {o.note}")
        if o.post_errors:
            out.append(f"- **{o.name}: {len(o.post_errors)} POSTs refused**, e.g. {o.post_errors[0][:200]}")
    return out


def course_report(outcomes: list[Outcome], args: argparse.Namespace, plan: dict[str, dict], took: float,
                  plotted: bool, load: float, burst: float) -> str:
    cpus = os.cpu_count() or 1
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    count = len(plan)
    kinds = ", ".join(f"{sum(1 for p in plan.values() if p['kind'] == k)} {k}" for k in KINDS)
    command = f"python bench/deadline.py --course-batch {count}" + (
        f" --seed {args.seed}" if args.seed != COURSE_SEED else "")
    lines = [COURSE_SECTION, ""]
    if count != COURSE_COUNT or args.seed != COURSE_SEED:
        lines += [f"**Trial run** ({count} submissions, seed {args.seed}; the benchmark is "
                  f"{COURSE_COUNT} with seed {COURSE_SEED}, `make bench-deadline-course`): these numbers only "
                  "show that the mode works end to end, they are not the benchmark's.", ""]
    lines += [
        f"Run on {when} with `{command}`; the whole run took {took / 60:.1f} minutes. Machine: "
        f"**{cpus} cores**; the API (in this process), Redis, the Celery workers and the grading "
        f"containers all share them (load average {load:.1f} at the start), Python "
        f"{platform.python_version()}.",
        "",
        f"The batch is bench/course.py's (`make_batch`, {count} whole-course submissions, seed {args.seed}: "
        f"{kinds}), the same as `python bench/course.py --count {count} --seed {args.seed}` grades "
        f"(`make bench-full`: 60). Every submission is one POST to the service's API "
        f"(`mpgrade serve`'s app, in-process through FastAPI's TestClient, a course token) with all its "
        f"files, the whole class at once as at a deadline: the {count} POSTs took {burst:.1f} s, one after "
        "the other. Grading is real: the Docker sandbox on the grading image `make image` builds. Each "
        f"configuration has {cpus} grading slots, as many as the machine has CPUs, so it compares with "
        f"`mpgrade grade --jobs {cpus}`: the embedded worker with {cpus} threads (`mpgrade serve --workers "
        f"{cpus}`), one `mpgrade worker --concurrency {cpus}`, {cpus} `mpgrade worker --concurrency 1` "
        "(real processes, on a redis-server on loopback; the API hands the broker at most "
        f"{args.dispatch_ahead} jobs ahead).",
        "",
        "Wall: first POST received to the last result stored. Per minute: results over that wall time. "
        "Submit to result: the POST's arrival to its result stored in the service; queue wait: to its "
        "grading's start. Position: what the POST's answer told the student (`queue.position`; 0 when "
        "the answer already said it was being graded). Results: graded (with full marks) / error / "
        "timeout, by the document's status (a hostile submission's error or timeout is its own result; a "
        "wrong, hanging or contained hostile one is graded, below full marks); failed: jobs that "
        "ended without a result document; unfinished: still not done when the run gave up; refused: POSTs "
        "the API did not accept.",
        "",
        "| configuration | slots | graded (full marks) / error / timeout | failed / unfinished / refused | wall (s) "
        "| results per minute | submit to result p50 / p95 (s) | queue wait p50 / p95 (s) | last one's wait (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[course_outcome_row(o) for o in outcomes], "",
        "Queue wait by the position the student was told:", "",
        *position_table(outcomes, COURSE_BUCKETS), "",
    ]
    if plotted:
        lines += ["![queue wait against queue position, the whole-course batch](deadline_course.png)", ""]
    lines += ["What it shows:", "", *course_findings(outcomes, count), ""]
    return "\n".join(lines)


def course_main(args: argparse.Namespace) -> int:
    """The deadline with real grading: bench/course.py's batch through the API, three configurations."""
    import course as course_bench  # bench/course.py: make_batch, the batch it grades

    from grader import image
    from grader.sandbox.docker import DockerSandbox, connect, sweep

    started, load = time.monotonic(), os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="deadline-course-", dir=args.out))
    course = assignment_mod.load(ROOT)
    subs = work / "submissions"
    plan = course_bench.make_batch(course, args.course_batch, subs, args.seed)
    files = {sid: [(f.name, f.read_bytes()) for f in sorted((subs / sid).iterdir())] for sid in plan}
    posts = [Post(0.0, "class", sid, 0) for sid in plan]  # all at t=0: the POSTs go one after the other
    client = connect()
    tag = image.build_image(ROOT, offline=True, client=client, log=lambda m: None)
    print(f"{len(plan)} whole-course submissions (seed {args.seed}), image {tag}; {cpus} grading slots per "
          f"configuration, as `mpgrade grade --jobs {cpus}`", flush=True)
    outcomes: list[Outcome] = []
    burst = [0.0]
    plot_path = args.results.parent / "deadline_course.png"

    def save() -> None:
        """The section after every configuration: a failed or cut-short run keeps what it measured."""
        plotted = plot(outcomes, plot_path, key="kind", label="{}")
        text = course_report(outcomes, args, plan, time.monotonic() - started, plotted, load, burst[0])
        sections.write("deadline-course", text, args.results)

    def run(name: str, slots: int, fn: Callable[[], Outcome]) -> None:
        print(f"-- {name}", flush=True)
        t = time.monotonic()
        try:
            out = fn()
        except Exception as exc:  # this configuration failed: say so, keep the others' numbers
            out = Outcome(name, note=f"the configuration failed: {type(exc).__name__}: {str(exc)[:400]}")
        out.slots = slots
        for j in out.jobs:
            j["kind"] = plan[j["student"]]["kind"]
            j["position"] = j["told"] if j["told"] is not None else 0  # 0: already being graded
        burst[0] = max(burst[0], out.burst)
        outcomes.append(out)
        print(f"   {time.monotonic() - t:.1f} s: {len(out.jobs)} results, {out.failed} failed, "
              f"{out.unfinished} unfinished, {len(out.post_errors)} refused{'; ' + out.note if out.note else ''}",
              flush=True)
        save()

    def replay_course(name: str, config_kwargs: dict[str, Any]) -> Outcome:
        return replay(name, config_kwargs, posts, course, work, files_of=lambda post: files[post.student],
                      patience=args.patience, strict=False)

    def embedded() -> Outcome:
        box = DockerSandbox(tag, client=client, warm=cpus)  # as `mpgrade serve --workers CPUs` makes it
        try:
            return replay_course(f"embedded worker ({cpus} threads)", {"sandbox": box, "workers": cpus})
        finally:
            box.close()

    run(f"embedded worker ({cpus} threads)", cpus, embedded)
    try:
        redis = Redis(work)
    except FileNotFoundError as exc:
        redis = None
        for name, slots in ((f"1 Celery worker (--concurrency {cpus})", cpus),
                            (f"{cpus} Celery workers (--concurrency 1 each)", cpus)):
            outcomes.append(Outcome(name, note=f"skipped: {exc}", slots=slots))
        save()
    if redis is not None:
        try:
            for name, shape in ((f"1 Celery worker (--concurrency {cpus})", [cpus]),
                                (f"{cpus} Celery workers (--concurrency 1 each)", [1] * cpus)):
                def celery(name: str = name, shape: list[int] = shape) -> Outcome:
                    redis.flush()
                    procs = start_workers([real_worker(redis.url, n, f"bench-{i}@deadline-course", tag)
                                           for i, n in enumerate(shape)], work)
                    try:
                        return replay_course(name, {"broker": redis.url, "poll_interval": 0.2,
                                                    "dispatch_ahead": args.dispatch_ahead})
                    finally:
                        stop_workers(procs, grace=60)

                run(name, sum(shape), celery)
        finally:
            redis.close()
            sweep(client)  # containers a killed worker left (their owner is gone)
    print(Path(args.results).read_text().split("<!-- section:deadline-course -->")[1]
          .split("<!-- /section:deadline-course -->")[0])
    shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=COURSE_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker", help="(used by the simulation) a Celery worker grading with the stand-in")
    w.add_argument("--broker", required=True)
    w.add_argument("--grade-seconds", type=float, default=0.4)
    w.add_argument("--name", default="bench@deadline")
    parser.add_argument("--big", type=int, default=80, help="students of the course that bursts (default 80)")
    parser.add_argument("--small", type=int, default=20, help="students of the other course (default 20)")
    parser.add_argument("--grade-seconds", type=float, default=0.4, help="the stand-in grading's time (0.4)")
    parser.add_argument("--course-batch", type=int, nargs="?", const=COURSE_COUNT, default=None, metavar="COUNT",
                        help=f"the deadline with real grading: bench/course.py's batch of COUNT whole-course "
                             f"submissions (default {COURSE_COUNT}, as make bench-full) through the API, graded in "
                             "Docker by the embedded worker and by 1 and 2 real Celery workers (see below)")
    parser.add_argument("--seed", type=int, default=COURSE_SEED,
                        help=f"with --course-batch: the batch's seed (default {COURSE_SEED}, as bench/course.py)")
    parser.add_argument("--dispatch-ahead", type=int, default=4,
                        help="with --course-batch: jobs the API hands the broker ahead of the workers (4)")
    parser.add_argument("--patience", type=float, default=3600.0,
                        help="with --course-batch: seconds a configuration may take before its unfinished "
                             "jobs are counted as such (3600)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "deadline")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.command == "worker":
        worker_main(args.broker, args.grade_seconds, args.name)
        return 0
    if args.course_batch is not None:
        return course_main(args)

    started, load = time.monotonic(), os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="deadline-", dir=args.out))
    assignment = assignment_mod.load(ROOT)
    posts = scenario(args.big, args.small)
    print(f"{len(posts)} POSTs, {args.grade_seconds} s per grading", flush=True)
    grader = stand_in(assignment, args.grade_seconds)
    outcomes = [replay("embedded worker (1 thread)", {"sandbox": grader.sandbox}, posts, assignment, work,
                       grader=grader)]
    print(f"  {outcomes[-1].name}: {outcomes[-1].wall:.1f} s", flush=True)
    try:
        redis = Redis(work)
    except FileNotFoundError as exc:
        print(f"  Celery configurations skipped: {exc}", flush=True)
        redis = None
    if redis is not None:
        celery = (("1 Celery worker", 1, 4), ("2 Celery workers", 2, 4),
                  ("1 Celery worker, broker order (no fair share)", 1, 100000))
        try:
            for name, count, ahead in celery:
                redis.flush()
                procs = start_workers([stand_in_worker(redis.url, args.grade_seconds, f"bench-{i}@deadline")
                                       for i in range(count)], work)
                try:
                    outcomes.append(replay(name, {"broker": redis.url, "poll_interval": 0.2,
                                                  "dispatch_ahead": ahead}, posts, assignment, work))
                finally:
                    stop_workers(procs)
                outcomes[-1].note = f"--dispatch-ahead {ahead}"
                print(f"  {outcomes[-1].name}: {outcomes[-1].wall:.1f} s", flush=True)
        finally:
            redis.close()
    plotted = plot(outcomes, args.results.parent / "deadline.png")
    text = report(outcomes, args, posts, time.monotonic() - started, plotted, load)
    sections.write("deadline", text, args.results)
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
